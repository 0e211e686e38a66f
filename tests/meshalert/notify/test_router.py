from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import Notification, Severity
from meshalert.notify.base import SendResult
from meshalert.notify.router import Router, RoutingConfig

ROUTES_YAML = """
- match: {severity: [critical], service: "production/*"}
  channels: [slack, sns]
- match: {severity: [warning]}
  channels: [slack]
- match: {service: ["staging/*", "dev/*"]}
  channels: []
- match: {class: [endpoints]}
  channels: [sns]
"""


class Recorder:
    def __init__(self, name: str, ok: bool = True, delay: float = 0.0) -> None:
        self.name, self.ok, self.delay = name, ok, delay
        self.sent: list[tuple[str, float]] = []
        self.threads: list[str] = []

    def send(self, notification: Notification, *, deadline_s: float) -> SendResult:
        self.threads.append(threading.current_thread().name)
        time.sleep(self.delay)
        self.sent.append((notification.dedup_key, deadline_s))
        return SendResult(
            self.name,
            self.ok,
            notification.dedup_key,
            1,
            self.delay,
            error=None if self.ok else "down",
        )


class Exploding:
    def send(self, notification: Notification, *, deadline_s: float) -> SendResult:
        raise RuntimeError("bug")


def _router(**channels: object) -> Router:
    return Router(channels, RoutingConfig.from_text(ROUTES_YAML))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("severity", "service", "alert_class", "expected"),
    [
        (Severity.CRITICAL, "production/checkout", AlertClass.LATENCY, ("slack", "sns")),
        (Severity.WARNING, "production/checkout", AlertClass.LATENCY, ("slack",)),
        (Severity.CRITICAL, "staging/checkout", AlertClass.LATENCY, ()),
        (Severity.CRITICAL, "checkout", AlertClass.ENDPOINTS, ("sns",)),
        (Severity.INFO, "checkout", AlertClass.LATENCY, ("slack", "sns", "console")),
    ],
)
def test_first_matching_route_decides(
    make_notification: Callable[..., Notification],
    severity: Severity,
    service: str,
    alert_class: AlertClass,
    expected: tuple[str, ...],
) -> None:
    router = _router(slack=Recorder("x"), sns=Recorder("x"), console=Recorder("x"))
    note = make_notification(
        severity=severity,
        service=service,
        evidence={"service": service, "alert_class": alert_class},
        alert_class=alert_class,
    )
    assert router.channels_for(note) == expected


def test_json_and_mapping_forms_parse_the_same() -> None:
    as_json = RoutingConfig.from_text(
        '{"routes": [{"match": {"severity": ["critical"], "service": "production/*"},'
        ' "channels": ["slack", "sns"]}]}'
    )
    as_yaml = RoutingConfig.from_text(ROUTES_YAML)
    assert as_json.routes[0] == as_yaml.routes[0]
    assert RoutingConfig.from_text("").routes == ()


def test_bad_config_names_the_problem() -> None:
    with pytest.raises(ValueError, match=r"routes\[0\]\.channels.*pagerduty"):
        Router({"slack": Recorder("s")}, RoutingConfig.from_text('[{"channels": ["pagerduty"]}]'))
    with pytest.raises(ValidationError, match="severity"):
        RoutingConfig.from_text('[{"match": {"severity": ["loud"]}, "channels": []}]')
    with pytest.raises(ValidationError, match="colour"):
        RoutingConfig.from_text('[{"match": {"colour": "red"}, "channels": []}]')
    with pytest.raises(ValueError, match="neither JSON nor YAML"):
        RoutingConfig.from_text("[{unclosed")


def test_dispatch_sends_to_each_channel_independently_and_in_parallel(
    make_notification: Callable[..., Notification],
) -> None:
    slack = Recorder("slack", ok=False, delay=0.4)
    sns = Recorder("sns", delay=0.4)
    router = _router(slack=slack, sns=sns, console=Exploding())
    deadline = time.monotonic() + 5
    started = time.monotonic()
    results = router.dispatch(make_notification(), deadline)
    elapsed = time.monotonic() - started
    assert [(r.channel, r.ok) for r in results] == [("slack", False), ("sns", True)]
    assert elapsed < 0.75, "channels were sent one after the other"
    assert slack.sent[0][1] == deadline and sns.sent[0][1] == deadline
    assert slack.threads != sns.threads
    assert router.counts == {("slack", "failed"): 1, ("sns", "sent"): 1}


def test_crashing_notifier_becomes_a_failed_result(
    make_notification: Callable[..., Notification],
) -> None:
    other = Recorder("other")
    router = Router({"broken": Exploding(), "other": other})
    results = router.dispatch(make_notification(), time.monotonic() + 1)
    assert [(r.channel, r.ok) for r in results] == [("broken", False), ("other", True)]
    assert results[0].error == "notifier raised RuntimeError"
    assert len(other.sent) == 1


def test_route_to_nothing_sends_nothing(make_notification: Callable[..., Notification]) -> None:
    slack = Recorder("slack")
    router = _router(slack=slack, sns=Recorder("sns"), console=Recorder("c"))
    note = make_notification(service="dev/api", evidence={"service": "dev/api"})
    assert router.dispatch(note, time.monotonic() + 1) == []
    assert slack.sent == []
