"""Slack incoming-webhook notifier: Block Kit message plus plain-text fallback."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

import structlog
from pydantic import SecretStr

from meshalert.alerts.model import Notification, NotificationKind
from meshalert.notify import render
from meshalert.notify.base import SendResult, secret
from meshalert.notify.grouping import NotificationGroup
from meshalert.notify.http import post_json
from meshalert.notify.outcome import Retrier
from meshalert.notify.retry import AttemptOutcome, RetryPolicy
from meshalert.safe_text import printable, slack_mrkdwn

# Slack Block Kit limits (characters).
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
MAX_FIELDS = 10
FALLBACK_MAX = 3000
GROUP_LISTED_MAX = 20
"""Members named in a grouped message; the rest are counted ("and N more")."""

_STYLE = {
    NotificationKind.FIRING: (":rotating_light:", "#d1242f"),
    NotificationKind.REMINDER: (":repeat:", "#e36209"),
    NotificationKind.RESOLVED: (":white_check_mark:", "#1a7f37"),
}

log = structlog.get_logger("meshalert.notify.slack")


def slack_payload(notification: Notification, runbook_url: str | None = None) -> dict[str, Any]:
    """The webhook body. The coloured attachment makes FIRING (red), STILL FIRING (orange)
    and RESOLVED (green) tell apart at a glance; ``text`` is what notifications and
    screen readers show."""
    emoji, colour = _STYLE[notification.kind]
    # The top-level text is read as mrkdwn: names in it could otherwise mention or link.
    fallback = render.truncate(_escape(render.summary(notification)), FALLBACK_MAX)
    if runbook_url:
        fallback = render.truncate(f"{fallback} | runbook: {runbook_url}", FALLBACK_MAX)
    header = {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": render.truncate(f"{emoji} {printable(render.title(notification))}", HEADER_MAX),
            "emoji": True,
        },
    }
    return {
        "text": fallback,
        "blocks": [header],
        "attachments": [
            {
                "color": colour,
                "fallback": fallback,
                "blocks": _detail_blocks(notification, runbook_url),
            }
        ],
    }


def slack_group_payload(group: NotificationGroup) -> dict[str, Any]:
    """A storm as one message: counts by class and state, the worst members first (at most
    :data:`GROUP_LISTED_MAX`, and only as many as fit one section), "and N more", and where
    to see them all. Every name is escaped for mrkdwn."""
    firing = any(n.kind is not NotificationKind.RESOLVED for n in group.members)
    kind = NotificationKind.FIRING if firing else NotificationKind.RESOLVED
    emoji, colour = _STYLE[kind]
    title = render.group_title(group)
    counts = render.group_counts(group)
    fallback = render.truncate(
        _escape(f"[{group.severity.value}] {title} ({counts})"), FALLBACK_MAX
    )
    header = {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": render.truncate(f"{emoji} {printable(title)}", HEADER_MAX),
            "emoji": True,
        },
    }
    fields = [
        _mrkdwn(render.truncate(f"*{name}*\n{_escape(value)}", FIELD_TEXT_MAX))
        for name, value in (
            ("By class", counts),
            ("Severity", ", ".join(group.severities)),
            ("Alerts", str(len(group.members))),
        )
    ]
    see_all = group.see_all
    pointer = (
        f"<{see_all}|See all>"
        if see_all.startswith(("https://", "http://"))
        else ("See all: " + _code_inline(see_all))
    )
    blocks: list[dict[str, Any]] = [
        {"type": "section", "fields": fields},
        _section(group_list_text(group)),
        {"type": "context", "elements": [_mrkdwn(pointer)]},
    ]
    return {
        "text": fallback,
        "blocks": [header],
        "attachments": [{"color": colour, "fallback": fallback, "blocks": blocks}],
    }


def group_list_text(group: NotificationGroup, limit: int = SECTION_TEXT_MAX) -> str:
    """The members' lines, worst first, ending "and N more" when not all are listed: never
    longer than ``limit``, and no line cut in half."""
    lines: list[str] = []
    total = len(group.members)
    for index, note in enumerate(group.members[:GROUP_LISTED_MAX]):
        line = "\u2022 " + _escape(render.truncate(render.group_line(note), 300))
        rest = total - index - 1
        tail = f"\n_and {rest} more_" if rest else ""
        if len("\n".join([*lines, line])) + len(tail) > limit:
            break
        lines.append(line)
    more = total - len(lines)
    if more:
        lines.append(f"_and {more} more_")
    return "\n".join(lines)


def _detail_blocks(notification: Notification, runbook_url: str | None) -> list[dict[str, Any]]:
    evidence = notification.evidence
    blocks: list[dict[str, Any]] = [
        _section(f"*{_escape(render.comparison(notification))}*"),
        {"type": "section", "fields": _fields(notification)},
        _section("*Query*\n" + _code_block(evidence.query)),
    ]
    if evidence.replay:
        blocks.append(
            {"type": "context", "elements": [_mrkdwn("Replay: " + _code_inline(evidence.replay))]}
        )
    if runbook_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Runbook"},
                        "url": runbook_url,
                    }
                ],
            }
        )
    return blocks


def _fields(notification: Notification) -> list[dict[str, str]]:
    evidence = notification.evidence
    pairs: list[tuple[str, str]] = [
        ("State", render.kind_label(notification)),
        ("Class", notification.alert_class.value),
        ("Service", notification.service),
        ("Severity", notification.severity.value),
        ("Window", evidence.window),
        ("Samples", f"{evidence.samples:.6g}"),
        ("Previous state", evidence.previous_state.value),
    ]
    pairs.extend((str(k), "n/a" if v is None else str(v)) for k, v in evidence.detail.items())
    return [
        _mrkdwn(render.truncate(f"*{_escape(name)}*\n{_escape(value)}", FIELD_TEXT_MAX))
        for name, value in pairs[:MAX_FIELDS]
    ]


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(render.truncate(text, SECTION_TEXT_MAX))}


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _code_block(text: str) -> str:
    # Room for the "*Query*\n" heading and the fences inside one section's limit.
    escaped = "\n".join(_escape(line) for line in text.splitlines())
    body = render.truncate(escaped.replace("```", "`\u200b``"), SECTION_TEXT_MAX - 20)
    return f"```{body}```"


def _code_inline(text: str) -> str:
    if "`" in text:
        # Inline code cannot hold a backtick, and replacing it would change a shell
        # command's quoting (the replay line is pasted into a shell): fence it instead.
        return _code_block(text)
    return "`" + render.truncate(_escape(text), 2000) + "`"


def _escape(text: str) -> str:
    return slack_mrkdwn(text)


class SlackWebhookNotifier:
    """Posts to a Slack incoming webhook; the URL is kept as a ``SecretStr``."""

    channel = "slack"

    def __init__(
        self,
        url: str | SecretStr,
        runbook_url: str | None = None,
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._url = secret(url)
        self._runbook_url = runbook_url
        self._retrier = Retrier(policy or RetryPolicy(), clock, sleep, rand)

    def __repr__(self) -> str:
        return f"SlackWebhookNotifier(url={self._url!r}, runbook_url={self._runbook_url!r})"

    def send(self, notification: Notification, *, deadline_s: float) -> SendResult:
        body = slack_payload(notification, self._runbook_url)
        return self._post(body, notification, deadline_s)

    def send_group(self, group: NotificationGroup, *, deadline_s: float) -> SendResult:
        return self._post(slack_group_payload(group), group, deadline_s)

    def _post(
        self,
        payload: dict[str, Any],
        subject: Notification | NotificationGroup,
        deadline_s: float,
    ) -> SendResult:
        body = json.dumps(payload).encode("utf-8")

        def attempt(timeout_s: float) -> AttemptOutcome:
            return post_json(self._url, body, timeout_s)

        return self._retrier.send(self.channel, subject, attempt, deadline_s=deadline_s, log=log)
