"""``meshalert silence``: add, list, expire and audit silences in the state store.

Silences live in the state store (SQLite file or DynamoDB table), so ``meshalert run`` and
the Lambda functions reading the same store honour them from their next cycle.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import time
from datetime import datetime
from typing import Any

from meshalert.alert_classes import SERVICE_CLASSES, AlertClass
from meshalert.safe_text import printable
from meshalert.suppression import Silence, SilenceEvent
from meshalert_cli.arguments import Parser, add_command, duration_ms
from meshalert_cli.commands.status import add_state_option, open_existing_state, state_url
from meshalert_cli.views import dumps, iso, table

MAX_REASON_CHARS = 500


def default_author() -> str:
    """Who runs the command: $MESHALERT_AUTHOR, else the login name."""
    from meshalert.settings import CliSettings

    if author := CliSettings.from_env().author:
        return author
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def instant_ms(text: str) -> int:
    """An ISO 8601 time with its offset (``2026-12-01T22:00:00+01:00``, ``...Z``) or ``now``."""
    if text.strip().lower() == "now":
        return int(time.time() * 1000)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-12-01T22:00:00+01:00)"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no offset: write the zone explicitly (+01:00 or Z)"
        )
    return round(moment.timestamp() * 1000)


def _matcher(text: str) -> str:
    if not text or any(c.isspace() for c in text) or not text.isprintable():
        raise argparse.ArgumentTypeError("a service key or glob without spaces, e.g. 'prod/*'")
    return text


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = add_command(
        sub,
        "silence",
        "hold back notifications of matching alerts for a while (add, list, expire, audit)",
        [
            "meshalert silence add --service production/checkout --for 2h --reason deploy",
            "meshalert silence add --service 'staging/*' --class latency "
            "--start 2026-12-01T22:00:00+01:00 --end 2026-12-02T02:00:00+01:00 --reason load-test",
            "meshalert silence list",
            "meshalert silence expire 3f9c2a1b",
            "meshalert silence audit",
        ],
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    actions.required = True

    add = actions.add_parser("add", help="add a silence", formatter_class=p.formatter_class)
    add.add_argument(
        "--service", required=True, type=_matcher, metavar="KEY", help="service key or glob"
    )
    add.add_argument(
        "--class",
        dest="alert_class",
        choices=[c.value for c in SERVICE_CLASSES],
        help="only this alert class (default: every class)",
    )
    add.add_argument("--for", dest="for_ms", type=duration_ms, metavar="DURATION", help="length")
    add.add_argument("--start", type=instant_ms, metavar="TIME", help="ISO time (default: now)")
    add.add_argument("--end", type=instant_ms, metavar="TIME", help="ISO time (instead of --for)")
    add.add_argument("--reason", required=True, help="why (shown with every held notification)")
    add.add_argument("--author", help="who adds it (default: $MESHALERT_AUTHOR, else $USER)")
    add_state_option(add)
    add.set_defaults(handler=run_add)

    lst = actions.add_parser("list", help="list silences", formatter_class=p.formatter_class)
    lst.add_argument("--all", action="store_true", help="also those that ended (with who ended)")
    lst.add_argument("--json", action="store_true", help="a JSON list")
    add_state_option(lst)
    lst.set_defaults(handler=run_list)

    exp = actions.add_parser("expire", help="end a silence now", formatter_class=p.formatter_class)
    exp.add_argument("id", help="the silence id (see silence list)")
    exp.add_argument("--author", help="who ends it (default: $MESHALERT_AUTHOR, else $USER)")
    add_state_option(exp)
    exp.set_defaults(handler=run_expire)

    aud = actions.add_parser(
        "audit", help="who added and expired what", formatter_class=p.formatter_class
    )
    aud.add_argument("--json", action="store_true", help="a JSON list")
    add_state_option(aud)
    aud.set_defaults(handler=run_audit)


def run_add(args: argparse.Namespace) -> int:
    from meshalert.backends.urls import parse_state_url
    from meshalert.wiring import open_state

    now = int(time.time() * 1000)
    start = args.start if args.start is not None else now
    if (args.for_ms is None) == (args.end is None):
        raise ValueError("give exactly one of --for and --end")
    end = args.end if args.end is not None else start + args.for_ms
    if end <= start:
        raise ValueError("the silence must end after it starts (--end/--for)")
    if end <= now:
        raise ValueError("the silence would already be over (--end/--for)")
    reason = " ".join(args.reason.split())
    if not reason or len(reason) > MAX_REASON_CHARS:
        raise ValueError(f"--reason must be 1-{MAX_REASON_CHARS} characters")
    silence = Silence(
        id=secrets.token_hex(4),
        service=args.service,
        alert_class=AlertClass(args.alert_class) if args.alert_class else None,
        start_ms=start,
        end_ms=end,
        reason=reason,
        author=args.author or default_author(),
        created_ms=now,
    )
    store = open_state(parse_state_url(state_url(args)))  # adding may create the state
    try:
        store.add_silence(silence)
    finally:
        store.close()
    print(
        f"silence {silence.id} added: {printable(silence.service)} "
        f"({silence.alert_class.value if silence.alert_class else 'every class'}) "
        f"from {iso(silence.start_ms)} until {iso(silence.end_ms)}"
    )
    return 0


def silence_view(silence: Silence, now_ms: int) -> dict[str, Any]:
    return {
        "id": silence.id,
        "service": silence.service,
        "class": silence.alert_class.value if silence.alert_class else None,
        "start": iso(silence.start_ms),
        "end": iso(silence.end_ms),
        "reason": silence.reason,
        "author": silence.author,
        "created": iso(silence.created_ms),
        "expired": iso(silence.expired_ms),
        "expired_by": silence.expired_by,
        "status": _status(silence, now_ms),
    }


def _status(silence: Silence, now_ms: int) -> str:
    if silence.active(now_ms):
        return "active"
    if now_ms < silence.start_ms:
        return "pending"
    return "expired" if silence.expired_ms is not None else "ended"


def run_list(args: argparse.Namespace) -> int:
    now = int(time.time() * 1000)
    store = open_existing_state(state_url(args))
    try:
        found = store.silences(now_ms=now, include_ended=args.all)
    finally:
        store.close()
    if args.json:
        print(dumps([silence_view(s, now) for s in found]))
        return 0
    if not found:
        print("no silences" + ("" if args.all else " in force or scheduled"))
        return 0
    rows = [
        [
            s.id,
            _status(s, now),
            s.service,
            s.alert_class.value if s.alert_class else "*",
            iso(s.start_ms) or "-",
            iso(s.ends_ms) or "-",
            s.author + (f" (expired by {s.expired_by})" if s.expired_by else ""),
            s.reason,
        ]
        for s in found
    ]
    print(table(rows, ["ID", "STATUS", "SERVICE", "CLASS", "START", "END", "AUTHOR", "REASON"]))
    return 0


def run_expire(args: argparse.Namespace) -> int:
    from meshalert.state.protocols import SilenceEndedError, UnknownSilenceError

    store = open_existing_state(state_url(args))
    try:
        expired = store.expire_silence(
            args.id, author=args.author or default_author(), now_ms=int(time.time() * 1000)
        )
    except UnknownSilenceError:
        raise ValueError(f"no silence with id {printable(args.id)!r}") from None
    except SilenceEndedError as err:
        raise ValueError(str(err)) from None
    finally:
        store.close()
    print(f"silence {expired.id} expired by {printable(expired.expired_by or '')}")
    return 0


def event_view(event: SilenceEvent) -> dict[str, Any]:
    return {
        "at": iso(event.at_ms),
        "silence": event.silence_id,
        "action": event.action,
        "author": event.author,
    }


def run_audit(args: argparse.Namespace) -> int:
    store = open_existing_state(state_url(args))
    try:
        events = store.silence_audit()
    finally:
        store.close()
    if args.json:
        print(dumps([event_view(e) for e in events]))
        return 0
    if not events:
        print("no silence was ever added")
        return 0
    rows = [[iso(e.at_ms) or "-", e.silence_id, e.action, e.author] for e in events]
    print(table(rows, ["AT", "SILENCE", "ACTION", "AUTHOR"]))
    return 0
