"""meshalert.history_sink: transitions as ``meshalert_alert`` points, and the setting."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertState
from meshalert.history_sink import (
    MAX_TEXT,
    MEASUREMENT,
    history_lines,
    history_point,
)
from meshalert.lineprotocol import decode, sanitize
from meshalert.settings import Settings, SettingsError
from meshalert.state.protocols import HistoryEntry


def _entry(service: str = "production/cart", **evidence: Any) -> HistoryEntry:
    return HistoryEntry(
        at_ms=1_700_000_060_000,
        alert_class=AlertClass.FAILURES,
        service=service,
        from_state=AlertState.PENDING,
        to_state=AlertState.FIRING,
        evidence=evidence,
        dedup_key="k",
    )


def test_a_transition_becomes_one_point_tagged_like_the_linkerd_series() -> None:
    entry = _entry(
        observed=0.25,
        threshold={"name": "failure_ratio", "value": 0.05, "source": "file:rules.yaml"},
        suppressed="silence s-1 (deploy)",
    )
    point = decode(history_lines([entry])[0])
    assert point.measurement == MEASUREMENT
    assert point.timestamp_ms == entry.at_ms
    assert point.tag_dict() == {
        "class": "failures",
        "namespace": "production",
        "service": "cart",
        "from_state": "pending",
        "to_state": "firing",
    }
    assert point.field_dict() == {
        "state_code": 2,
        "value": 0.25,
        "threshold": 0.05,
        "threshold_source": "file:rules.yaml",
        "suppressed": "silence s-1 (deploy)",
    }


def test_state_codes_order_the_states() -> None:
    codes = {
        state: history_point(
            HistoryEntry(0, AlertClass.LATENCY, "a", AlertState.OK, state, {})
        ).field_dict()["state_code"]
        for state in AlertState
    }
    assert codes == {AlertState.OK: 0, AlertState.PENDING: 1, AlertState.FIRING: 2}


@pytest.mark.parametrize("observed", [None, math.nan, math.inf, "high", True])
def test_evidence_without_a_usable_value_leaves_the_field_out(observed: object) -> None:
    fields = history_point(_entry(observed=observed, threshold={"value": -math.inf})).field_dict()
    assert fields == {"state_code": 2}


def test_a_key_without_a_namespace_has_no_namespace_tag() -> None:
    assert history_point(_entry("web")).tag_dict()["service"] == "web"
    assert "namespace" not in history_point(_entry("web")).tag_dict()
    assert history_point(_entry("ns/")).tag_dict()["service"] == "ns/"


_evidence_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=400),
)


@given(
    service=st.text(min_size=1, max_size=80),
    observed=_evidence_values,
    limit=_evidence_values,
    source=st.text(max_size=40),
    reason=st.text(max_size=400),
)
def test_odd_names_and_evidence_never_break_line_protocol(
    service: str, observed: object, limit: object, source: str, reason: str
) -> None:
    entry = _entry(
        service, observed=observed, threshold={"value": limit, "source": source}, suppressed=reason
    )
    [line] = history_lines([entry])
    assert "\n" not in line and "\r" not in line
    point = decode(line)  # the project's own parser reads back exactly what was meant
    tags = point.tag_dict()
    namespace, sep, name = service.partition("/")
    if not sep or not name:
        namespace, name = "", service
    assert tags["service"] == sanitize(name)
    assert tags.get("namespace", "") == sanitize(namespace)
    fields = point.field_dict()
    assert fields["state_code"] == 2
    for key, raw in (("value", observed), ("threshold", limit)):
        usable = isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw)
        assert (key in fields) == usable
        if usable:
            assert fields[key] == float(raw)  # type: ignore[arg-type]
    if reason:
        cut = reason.replace("\r", " ").replace("\n", " ")[:MAX_TEXT]
        assert fields["suppressed"] == cut


@pytest.mark.parametrize(
    ("value", "embedded", "expected"),
    [
        (None, True, True),
        (None, False, False),
        ("auto", False, False),
        ("on", False, True),
        ("TRUE", False, True),
        ("1", False, True),
        ("off", True, False),
        ("no", True, False),
    ],
)
def test_the_setting_defaults_to_on_only_for_the_embedded_store(
    value: str | None, embedded: bool, expected: bool
) -> None:
    env = {} if value is None else {"MESHALERT_HISTORY_TO_STORE": value}
    if not embedded:
        env["MESHALERT_STORE"] = "influxdb2://db:8086?org=o&bucket=b"
    assert Settings.from_env(env).history_enabled() is expected


def test_a_bad_setting_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="MESHALERT_HISTORY_TO_STORE: write on, off or auto"):
        Settings.from_env({"MESHALERT_HISTORY_TO_STORE": "maybe"})
