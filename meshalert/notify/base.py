"""The notifier seam: one ``send`` per channel, bounded by a deadline, never raising."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pydantic import SecretStr

from meshalert.alerts.model import Notification

if TYPE_CHECKING:
    from meshalert.notify.grouping import NotificationGroup

REDACTED = "***"


@dataclass(frozen=True)
class SendResult:
    """How one channel fared with one notification (after all its retries)."""

    channel: str
    ok: bool
    dedup_key: str
    attempts: int
    elapsed_s: float
    status: int | None = None
    """HTTP status of the last answer, when there was one."""
    error: str | None = None
    """Why it failed, with every secret already removed."""


class Notifier(Protocol):
    def send(self, notification: Notification, *, deadline_s: float) -> SendResult:
        """Deliver ``notification``; finish (retries included) before ``time.monotonic()``
        reaches ``deadline_s``. Failures come back as ``SendResult(ok=False)``."""
        ...


class GroupNotifier(Notifier, Protocol):
    """A notifier that can also send a storm of notifications as one message
    (:mod:`meshalert.notify.grouping`); a channel without ``send_group`` gets singles."""

    def send_group(self, group: NotificationGroup, *, deadline_s: float) -> SendResult: ...


def secret(value: str | SecretStr) -> SecretStr:
    """A webhook URL or token as pydantic's ``SecretStr`` (its repr and str are masked, so
    it cannot leak through logs or exception messages by accident); empty is an error."""
    wrapped = value if isinstance(value, SecretStr) else SecretStr(value)
    if not wrapped.get_secret_value():
        raise ValueError("secret value is empty")
    return wrapped
