"""``maintenance`` and ``inhibit`` in the rules document: validation naming the field,
the defaults, and a later source replacing a list whole."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.rules import LoadedRules, RulesError, load_rules
from meshalert.suppression import DEFAULT_INHIBIT_RULES


def _load(text: str) -> LoadedRules:
    return load_rules({"MESHALERT_RULES": text}, now_s=0.0)


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def test_defaults_have_no_windows_and_the_default_inhibition() -> None:
    rules = load_rules({}, now_s=0.0)
    assert rules.suppression.maintenance == ()
    assert rules.suppression.inhibit == DEFAULT_INHIBIT_RULES


def test_weekly_and_one_off_windows() -> None:
    rules = load_rules(
        {
            "MESHALERT_RULES": """
maintenance:
  - name: patching
    service: "production/*"
    classes: [latency, failures]
    timezone: America/New_York
    weekly: {days: [Saturday, sun], start: "23:30", duration: 90m}
  - name: migration
    service: production/checkout
    start: "2026-12-01T22:00:00+01:00"
    end: "2026-12-02T02:00:00Z"
"""
        },
        now_s=0.0,
    )
    weekly, once = rules.suppression.maintenance
    assert weekly.days == frozenset({5, 6})
    assert weekly.classes == frozenset({AlertClass.LATENCY, AlertClass.FAILURES})
    # Saturday 2026-11-28 23:30 in New York is Sunday 04:30 UTC.
    assert weekly.active(_ms(datetime(2026, 11, 29, 4, 30, tzinfo=UTC)))
    assert weekly.active(_ms(datetime(2026, 11, 29, 5, 59, tzinfo=UTC)))
    assert not weekly.active(_ms(datetime(2026, 11, 29, 6, 0, tzinfo=UTC)))
    assert once.active(_ms(datetime(2026, 12, 1, 21, 0, tzinfo=UTC)))
    assert not once.active(_ms(datetime(2026, 12, 2, 2, 0, tzinfo=UTC)))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            "maintenance: [{name: a, service: x, weekly: {days: [mon], start: '01:00', "
            "duration: 1h}}]",
            "maintenance.0: timezone is required",
        ),
        (
            "maintenance: [{name: a, service: x, timezone: Mars/Olympus, "
            "weekly: {days: [mon], start: '01:00', duration: 1h}}]",
            "maintenance.0.timezone: unknown timezone 'Mars/Olympus'",
        ),
        (
            "maintenance: [{name: a, service: x, timezone: UTC, "
            "weekly: {days: [funday], start: '01:00', duration: 1h}}]",
            "maintenance.0.weekly.days.0: unknown weekday 'funday'",
        ),
        (
            "maintenance: [{name: a, service: x, timezone: UTC, "
            "weekly: {days: [mon], start: '25:00', duration: 1h}}]",
            "maintenance.0.weekly.start: start '25:00' is not a time of day",
        ),
        (
            "maintenance: [{name: a, service: x, timezone: UTC, "
            "weekly: {days: [mon], start: '01:00', duration: 8d}}]",
            "maintenance.0.weekly: duration must be at most 7d",
        ),
        (
            "maintenance: [{name: a, service: x, start: '2026-12-01T22:00:00', "
            "end: '2026-12-02T22:00:00Z'}]",
            "maintenance.0.start: write the time with its offset",
        ),
        (
            "maintenance: [{name: a, service: x, start: '2026-12-02T22:00:00Z', "
            "end: '2026-12-01T22:00:00Z'}]",
            "maintenance.0: end must be after start",
        ),
        ("maintenance: [{name: a, service: 'a b', start: 1, end: 2}]", "maintenance.0.service"),
        ("maintenance: [{name: a, service: x}]", "set either weekly or start and end"),
        ("inhibit: [{source: {class: nope}}]", "inhibit.0.source.class"),
        ("inhibit: [{source: {}, target: {classes: [latency]}, same: true}]", "inhibit.0.same"),
        (
            "inhibit: [{source: {class: endpoints}, target: {classes: [latency, ingest]}}]",
            "inhibit.0.target.classes: ingest: the heartbeat's own alerts are never held back",
        ),
        (
            "maintenance: [{name: a, service: x, classes: [evaluation], start: "
            "'2026-12-01T22:00:00Z', end: '2026-12-02T22:00:00Z'}]",
            "maintenance.0.classes: evaluation: the heartbeat's own alerts",
        ),
    ],
)
def test_errors_name_the_field(document: str, message: str) -> None:
    with pytest.raises(RulesError) as info:
        _load(document)
    assert message in str(info.value)
    assert str(info.value).startswith("env:MESHALERT_RULES: ")


def test_inhibit_rules_replace_the_defaults_and_an_empty_list_turns_them_off(
    tmp_path: Path,
) -> None:
    rules = _load(
        "inhibit:\n"
        "  - name: retries-over-latency\n"
        "    source: {class: retries}\n"
        "    target: {classes: [latency], no_data_only: false}\n"
        "    same_service: true\n"
    )
    (rule,) = rules.suppression.inhibit
    assert (rule.name, rule.source_class, rule.same_service) == (
        "retries-over-latency",
        AlertClass.RETRIES,
        True,
    )
    # A file sets windows, the environment document (higher precedence) turns inhibition
    # off and leaves the file's windows alone.
    path = tmp_path / "rules.yaml"
    path.write_text(
        "maintenance: [{name: m, service: '*', start: '2026-01-01T00:00:00Z', "
        "end: '2026-01-02T00:00:00Z'}]\n"
    )
    both = load_rules(
        {"MESHALERT_RULES_FILE": str(path), "MESHALERT_RULES": "inhibit: []"}, now_s=0.0
    )
    assert both.suppression.inhibit == ()
    assert [w.name for w in both.suppression.maintenance] == ["m"]


def test_an_inhibit_rule_may_take_a_pipeline_alert_as_its_source() -> None:
    (rule,) = _load(
        "inhibit: [{source: {class: ingest, service: 'meshalert/ingest:node-*'}, "
        "target: {no_data_only: true}}]"
    ).suppression.inhibit
    assert (rule.source_class, rule.source_service) == (
        AlertClass.INGEST,
        "meshalert/ingest:node-*",
    )
