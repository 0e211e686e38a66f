"""Grouping (pure planning), the grouped message of every channel, and its configuration."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import Notification, NotificationKind, Severity
from meshalert.notify import render
from meshalert.notify.console import ConsoleNotifier
from meshalert.notify.grouping import (
    GroupingConfig,
    NotificationGroup,
    members_of,
    plan,
)
from meshalert.notify.slack import (
    HEADER_MAX,
    SECTION_TEXT_MAX,
    slack_group_payload,
)
from meshalert.notify.sns import SNS_CLIENT_CONFIG, SnsNotifier, group_attributes
from meshalert.settings import Settings, SettingsError, known_variables
from tests.meshalert.notify.conftest import notification

REGION = "eu-west-1"


def note(
    service: str,
    *,
    severity: Severity = Severity.CRITICAL,
    kind: NotificationKind = NotificationKind.FIRING,
    alert_class: AlertClass = AlertClass.LATENCY,
    observed: float = 612.0,
) -> Notification:
    return notification(
        kind=kind,
        severity=severity,
        evidence={"service": service, "alert_class": alert_class, "observed": observed},
    )


def group_of(notes: list[Notification], see_all: str = "meshalert status") -> NotificationGroup:
    (item,) = plan(notes, GroupingConfig(threshold=1, group_by=(), see_all=see_all))
    assert isinstance(item, NotificationGroup)
    return item


notes_strategy = st.lists(
    st.builds(
        note,
        st.text(min_size=1, max_size=30),
        severity=st.sampled_from(list(Severity)),
        kind=st.sampled_from(list(NotificationKind)),
        alert_class=st.sampled_from(list(AlertClass)),
        observed=st.floats(min_value=0, max_value=1e6),
    ),
    max_size=60,
    unique_by=lambda n: n.dedup_key,
)


@given(
    notes_strategy,
    st.integers(min_value=1, max_value=10),
    st.lists(st.sampled_from(["severity", "class", "state"]), unique=True),
)
def test_plan_sends_every_notification_exactly_once(
    notes: list[Notification], threshold: int, group_by: list[str]
) -> None:
    config = GroupingConfig(threshold=threshold, group_by=tuple(group_by))
    items = plan(notes, config)
    sent = [n.dedup_key for item in items for n in members_of(item)]
    assert sorted(sent) == sorted(n.dedup_key for n in notes)
    if len(notes) <= threshold:
        assert items == notes  # a few alerts: one message each, as before
        return
    keys = {
        tuple(
            {"severity": n.severity.value, "class": n.alert_class.value, "state": n.kind.value}[k]
            for k in group_by
        )
        for n in notes
    }
    assert len(items) == len(keys)  # one message per group key
    for item in items:
        if isinstance(item, NotificationGroup):
            assert len(item.members) > 1
            assert sum(item.by_class.values()) == len(item.members)


def test_a_storm_is_one_group_per_severity_worst_first() -> None:
    notes = [note(f"ns/warn-{i}", severity=Severity.WARNING) for i in range(4)]
    notes += [
        note("ns/slightly", observed=300.0),
        note("ns/resolved", kind=NotificationKind.RESOLVED, observed=5000.0),
        note("ns/far-over", observed=5000.0),
        note("ns/lost-hosts", alert_class=AlertClass.ENDPOINTS, observed=0.01),
    ]
    critical, warning = plan(notes, GroupingConfig())
    assert isinstance(critical, NotificationGroup) and isinstance(warning, NotificationGroup)
    assert critical.key == (("severity", "critical"),)
    # Firing before resolved; then the farthest from its threshold (either side) first.
    assert [n.service for n in critical.members] == [
        "ns/lost-hosts",
        "ns/far-over",
        "ns/slightly",
        "ns/resolved",
    ]
    assert critical.by_class == {"latency": 3, "endpoints": 1}
    assert critical.by_state == {"firing": 3, "resolved": 1}
    assert warning.severity is Severity.WARNING and len(warning.members) == 4


def test_a_retry_of_the_same_members_carries_the_same_group_key() -> None:
    notes = [note(f"ns/svc-{i}") for i in range(8)]
    first = group_of(notes)
    assert group_of(list(reversed(notes))).dedup_key == first.dedup_key
    assert group_of(notes[:7]).dedup_key != first.dedup_key


def test_config_rejects_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        GroupingConfig(threshold=0)
    with pytest.raises(ValueError, match="unknown group key"):
        GroupingConfig(group_by=("service",))


HOSTILE = "prod/<!channel> &evil\u202e\x1b[2J*bold*"


def test_slack_group_is_escaped_bounded_and_says_how_many_more() -> None:
    notes = [note(f"{HOSTILE}-{i:03d}-" + "x" * 200) for i in range(200)]
    group = group_of(notes, see_all="https://status.example/alerts")
    payload = slack_group_payload(group)
    text = json.dumps(payload)
    assert "<!channel>" not in text and "\u202e" not in text and "\x1b" not in text
    assert "&lt;!channel&gt; &amp;evil\\\\u202e\\\\x1b[2J" in text
    assert len(payload["blocks"][0]["text"]["text"]) <= HEADER_MAX
    blocks = payload["attachments"][0]["blocks"]
    listed = blocks[1]["text"]["text"]
    assert len(listed) <= SECTION_TEXT_MAX
    shown = listed.count("\u2022 ")
    assert 0 < shown <= 20
    assert listed.endswith(f"_and {200 - shown} more_")
    assert blocks[2]["elements"][0]["text"] == "<https://status.example/alerts|See all>"
    assert payload["text"].startswith("[critical] 200 critical alerts: 200 FIRING")
    assert len(text.encode()) < 40_000  # Slack's message text limit, with room to spare


def test_slack_group_of_resolved_alerts_is_green_and_points_at_the_command() -> None:
    notes = [note(f"ns/svc-{i}", kind=NotificationKind.RESOLVED) for i in range(3)]
    payload = slack_group_payload(group_of(notes))
    assert payload["attachments"][0]["color"] == "#1a7f37"
    assert payload["attachments"][0]["blocks"][2]["elements"][0]["text"] == (
        "See all: `meshalert status`"
    )
    assert not payload["attachments"][0]["blocks"][1]["text"]["text"].endswith("more_")


def test_console_group_lists_every_member_escaped() -> None:
    stream = io.StringIO()
    notes = [note(f"{HOSTILE}{i}") for i in range(7)]
    result = ConsoleNotifier(stream).send_group(group_of(notes), deadline_s=1e12)
    assert result.ok
    text = stream.getvalue()
    assert "\x1b" not in text and "\u202e" not in text
    assert text.startswith("[critical] 7 critical alerts: 7 FIRING\n")
    assert text.count("dedup: ") == 7
    assert text.rstrip().endswith("see all: meshalert status")


def test_group_json_leaves_members_out_to_fit_and_counts_them() -> None:
    notes = [note(f"ns/svc-{i:04d}") for i in range(500)]
    group = group_of(notes)
    small = json.loads(render.group_to_json(group, max_bytes=50_000))
    assert len(render.group_to_json(group, max_bytes=50_000).encode()) <= 50_000
    assert small["count"] == 500
    assert small["members_not_listed"] == 500 - len(small["members"]) > 0
    full = json.loads(render.group_to_json(group))
    assert len(full["members"]) == 500 and full["members_not_listed"] == 0


@pytest.fixture
def topic(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any, dict[str, str]]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        sns = boto3.client("sns", region_name=REGION, config=SNS_CLIENT_CONFIG)
        sqs = boto3.client("sqs", region_name=REGION)
        arn = sns.create_topic(Name="alerts")["TopicArn"]
        queues = {}
        for name, policy in {
            "latency": {"class": ["latency"]},
            "retries": {"class": ["retries"]},
            "warning": {"severity": ["warning"]},
            "critical_endpoints": {"severity": ["critical"], "class": ["endpoints"]},
        }.items():
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            sns.subscribe(
                TopicArn=arn,
                Protocol="sqs",
                Endpoint=queue_arn["Attributes"]["QueueArn"],
                Attributes={"FilterPolicy": json.dumps(policy)},
            )
            queues[name] = url
        yield arn, sns, queues


def _received(url: str) -> list[dict[str, Any]]:
    got = boto3.client("sqs", region_name=REGION).receive_message(
        QueueUrl=url, MaxNumberOfMessages=10
    )
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


def test_sns_group_of_several_classes_still_filters_by_class_and_severity(
    topic: tuple[str, Any, dict[str, str]],
) -> None:
    arn, client, queues = topic
    notes = [note(f"ns/svc-{i}", alert_class=AlertClass.LATENCY) for i in range(4)]
    notes += [note(f"ns/eps-{i}", alert_class=AlertClass.ENDPOINTS) for i in range(3)]
    group = group_of(notes)
    assert group_attributes(group)["class"] == {
        "DataType": "String.Array",
        "StringValue": '["endpoints", "latency"]',
    }

    result = SnsNotifier(arn, client).send_group(group, deadline_s=1e12)

    assert result.ok and result.dedup_key == group.dedup_key
    (latency,) = _received(queues["latency"])
    assert latency["Subject"] == "[GROUP] 7 critical alerts: 7 FIRING"
    assert json.loads(latency["Message"])["by_class"] == {"latency": 4, "endpoints": 3}
    assert latency["MessageAttributes"]["grouped"]["Value"] == "true"
    assert len(_received(queues["critical_endpoints"])) == 1
    assert _received(queues["retries"]) == []
    assert _received(queues["warning"]) == []


def grouping_config(env: dict[str, str]) -> GroupingConfig:
    return Settings.from_env(env).grouping


def test_grouping_settings_are_validated_and_name_the_variable() -> None:
    assert grouping_config({}) == GroupingConfig(threshold=5, group_by=("severity",))
    config = grouping_config(
        {
            "MESHALERT_GROUP_THRESHOLD": "20",
            "MESHALERT_GROUP_BY": "severity, class",
            "MESHALERT_STATUS_URL": "https://status.example/",
        }
    )
    assert config == GroupingConfig(20, ("severity", "class"), "https://status.example/")
    for env, message in [
        ({"MESHALERT_GROUP_THRESHOLD": "five"}, "MESHALERT_GROUP_THRESHOLD: 'five' is not"),
        ({"MESHALERT_GROUP_THRESHOLD": "0"}, "MESHALERT_GROUP_THRESHOLD: must be at least 1"),
        ({"MESHALERT_GROUP_BY": "severity,service"}, "MESHALERT_GROUP_BY: .*unknown: service"),
        ({"MESHALERT_GROUP_BY": "class,class"}, "MESHALERT_GROUP_BY: write"),
        ({"MESHALERT_STATUS_URL": "javascript:alert(1)"}, "MESHALERT_STATUS_URL: must be"),
    ]:
        with pytest.raises(SettingsError, match=message):
            grouping_config(env)
    assert {
        "MESHALERT_GROUP_THRESHOLD",
        "MESHALERT_GROUP_BY",
        "MESHALERT_STATUS_URL",
    } <= set(known_variables())
