"""A structlog processor that keeps secrets out of every log line.

Put it after ``format_exc_info`` (so rendered tracebacks are cleaned too) and before the
renderer::

    structlog.configure(processors=[..., structlog.processors.format_exc_info,
                                    redact_secrets([token, webhook_url]), renderer])
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from meshalert.notify.base import REDACTED

_SLACK_HOOK = re.compile(r"(hooks\.slack\.com/)[^\s\"'<>|)]+")
_SECRET_KEY = re.compile(r"(token|password|passwd|secret|webhook_url|authorization)", re.I)

EventDict = MutableMapping[str, Any]
Processor = Callable[[Any, str, EventDict], EventDict]


class _Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is removed whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            value = value.replace(secret, REDACTED)
        return _SLACK_HOOK.sub(r"\g<1>" + REDACTED, value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, dict):
            return {k: self.item(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v) for v in value]
        # Any other object (exceptions, URLs, models) is judged by its text form.
        shown = str(value)
        cleaned = self.text(shown)
        return value if cleaned == shown else cleaned

    def item(self, key: str, value: Any) -> Any:
        if _SECRET_KEY.search(key) and value not in (None, ""):
            return REDACTED
        return self.value(value)


def redact_secrets(secrets: Iterable[str]) -> Processor:
    """Return a processor replacing each secret (and any Slack hook path) with ``***``."""
    redactor = _Redactor(secrets)

    def processor(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        for key in list(event_dict):
            if key == "event":
                event_dict[key] = redactor.value(event_dict[key])
            else:
                event_dict[key] = redactor.item(key, event_dict[key])
        return event_dict

    return processor
