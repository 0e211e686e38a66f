from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from meshalert.alerts.model import NoDataPolicy, Severity, ThresholdInForce, Verdict
from meshalert.rules.models import (
    EndpointsRule,
    FailuresRule,
    LatencyRule,
    RetriesRule,
    ServiceRules,
)

finite = st.floats(min_value=0, max_value=1e6, allow_nan=False)
ratios = st.floats(min_value=0, max_value=1, allow_nan=False)


def test_defaults_match_the_documented_values() -> None:
    lat, fail, ep, ret = LatencyRule(), FailuresRule(), EndpointsRule(), RetriesRule()
    assert (lat.percentile, lat.above_ms, lat.window_ms, lat.for_ms, lat.recover_ms) == (
        99,
        500,
        300_000,
        120_000,
        400,
    )
    assert (fail.rate_above, fail.min_requests, fail.window_ms, fail.for_ms) == (
        0.05,
        20,
        300_000,
        60_000,
    )
    assert fail.recover_rate == pytest.approx(0.04)
    assert (ep.available_ratio_below, ep.available_below, ep.window_ms) == (0.7, None, 60_000)
    assert (ret.exhausted_above, ret.ratio_above, ret.anomaly_factor) == (0, 0.2, None)
    assert (lat.enabled, lat.severity, lat.no_data, lat.renotify_ms) == (
        True,
        Severity.CRITICAL,
        NoDataPolicy.KEEP,
        4 * 3_600_000,
    )


def test_for_is_written_for_in_documents_and_for_underscore_in_python() -> None:
    assert LatencyRule.model_validate({"for": "90s"}).for_ms == 90_000
    assert LatencyRule.model_validate({"for_": "1m30s"}).for_ == "90s"
    assert LatencyRule.key_of("for_") == "for"


@pytest.mark.parametrize(
    ("rule", "data", "field"),
    [
        (LatencyRule, {"percentile": 0}, "percentile"),
        (LatencyRule, {"percentile": 100.5}, "percentile"),
        (LatencyRule, {"above_ms": "fast"}, "above_ms"),
        (LatencyRule, {"above_ms": 300, "recover_below_ms": 350}, "recover_below_ms"),
        (LatencyRule, {"window": "5 minutes"}, "window"),
        (LatencyRule, {"window": "0s"}, "window"),
        (LatencyRule, {"window": 300}, "window"),
        (LatencyRule, {"above": 300}, "above"),
        (FailuresRule, {"rate_above": 1.5}, "rate_above"),
        (FailuresRule, {"rate_above": 0.1, "recover_below": 0.2}, "recover_below"),
        (FailuresRule, {"min_requests": -1}, "min_requests"),
        (
            EndpointsRule,
            {"available_ratio_below": None, "expected_ratio_at_most": None},
            "available_below",
        ),
        (EndpointsRule, {"expected": 0}, "expected"),
        (FailuresRule, {"confidence": 1}, "confidence"),
        (RetriesRule, {"router": "out going"}, "router"),
        (EndpointsRule, {"available_below": -2}, "available_below"),
        (RetriesRule, {"anomaly_factor": 0}, "anomaly_factor"),
        (RetriesRule, {"severity": "page"}, "severity"),
        (RetriesRule, {"no_data": "ignore"}, "no_data"),
        (RetriesRule, {"runbook_url": "wiki/retries"}, "runbook_url"),
    ],
)
def test_bad_fields_are_rejected_by_name(
    rule: type[LatencyRule], data: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        rule.model_validate(data)
    assert [e["loc"][0] for e in info.value.errors()] == [field]


def test_renotify_zero_turns_reminders_off() -> None:
    assert LatencyRule(renotify="0s").renotify_ms == 0


def test_rules_are_frozen() -> None:
    rule = LatencyRule()
    with pytest.raises(ValidationError):
        rule.above_ms = 1  # type: ignore[misc]


def test_with_sources_after_use_hands_out_the_new_sources() -> None:
    # The threshold memo of a rule already read must not leak into its sourced copy.
    rule = LatencyRule(above_ms=250, **{"for": "3m"})
    assert rule.primary_threshold().source == "default"
    sourced = rule.with_sources({"above_ms": "file:rules.yaml"})
    assert sourced.primary_threshold().source == "file:rules.yaml"
    assert rule.primary_threshold().source == "default"
    assert sourced.model_dump() == rule.model_dump()
    assert sourced.model_fields_set == rule.model_fields_set == {"above_ms", "for_"}
    assert sourced.for_ms == 180_000


def test_recover_equal_to_above_is_allowed() -> None:
    assert LatencyRule(above_ms=300, recover_below_ms=300).recover_ms == 300


def test_primary_threshold_carries_the_source() -> None:
    rule = LatencyRule(above_ms=250).with_sources({"above_ms": "file:rules.yaml"})
    t = rule.primary_threshold()
    assert (t.name, t.value, t.source) == ("latency.above_ms", 250.0, "file:rules.yaml")
    recover = rule.thresholds()[2]
    assert recover.value == 200
    assert recover.source == "file:rules.yaml (derived from above_ms)"
    assert LatencyRule().primary_threshold().source == "default"


def test_endpoint_primary_threshold_follows_the_condition_in_force() -> None:
    assert EndpointsRule().primary_threshold().name == "endpoints.expected_ratio_at_most"
    ratio = EndpointsRule(expected_ratio_at_most=None)
    assert ratio.primary_threshold().name == "endpoints.available_ratio_below"
    only_count = EndpointsRule(
        available_ratio_below=None, expected_ratio_at_most=None, available_below=7
    )
    assert only_count.primary_threshold().name == "endpoints.available_below"
    assert only_count.primary_threshold().value == 7


def test_latency_hysteresis() -> None:
    rule = LatencyRule(above_ms=500, recover_below_ms=400)
    assert rule.judge(600, 100) == Verdict(breached=True, recovered=False)
    assert rule.judge(450, 100) == Verdict(breached=False, recovered=False)  # hold
    assert rule.judge(399, 100) == Verdict(breached=False, recovered=True)
    assert rule.judge(None, 0) == Verdict(breached=None, recovered=False)


def test_failures_below_min_requests_is_healthy() -> None:
    rule = FailuresRule(rate_above=0.05, min_requests=20, recover_below=0.02)
    assert rule.judge(0.9, 19) == Verdict(breached=False, recovered=True)
    assert rule.judge(0.9, 20) == Verdict(breached=True, recovered=False)
    assert rule.judge(0.03, 100) == Verdict(breached=False, recovered=False)
    assert rule.judge(0.01, 100) == Verdict(breached=False, recovered=True)
    assert rule.judge(None, 0).breached is None


def test_endpoints_judge_ratio_and_count() -> None:
    ratio = EndpointsRule()
    assert ratio.judge(0.5, 3).breached is True
    assert ratio.judge(0.8, 3) == Verdict(breached=False, recovered=True)
    both = EndpointsRule(available_ratio_below=0.5, available_below=7, expected_ratio_at_most=None)
    assert both.judge(0.9, 2, {"min_available": 6}).breached is True
    assert both.judge(0.9, 2, {"min_available": 8}).breached is False
    assert both.judge(0.4, 2, {"min_available": 8}).breached is True
    count = EndpointsRule(
        available_ratio_below=None, expected_ratio_at_most=None, available_below=7
    )
    assert count.judge(0.1, 1, {"available": 9}).breached is False
    assert count.judge(0.9, 1, {}).breached is None  # no count to judge


def test_retries_judge_exhaustion_ratio_and_anomaly() -> None:
    rule = RetriesRule()
    assert rule.judge(0.1, 100, {"budget_exhausted": 1}).breached is True
    assert rule.judge(0.1, 100, {"budget_exhausted": 0}).breached is False
    assert rule.judge(0.3, 100).breached is True
    assert rule.judge(None, 0, {"budget_exhausted": 2}).breached is True
    assert rule.judge(None, 0).breached is None
    assert rule.judge(0.1, 100, {"baseline": 0.01}).breached is False  # anomaly off by default
    anomaly = RetriesRule(anomaly_factor=3)
    assert anomaly.judge(0.1, 100, {"baseline": 0.02}).breached is True
    assert anomaly.judge(0.05, 100, {"baseline": 0.02}).breached is False
    assert anomaly.judge(0.1, 100, {"baseline": 0}).breached is False
    assert "3x" in anomaly.describe()


def test_describe_names_the_thresholds() -> None:
    assert LatencyRule(above_ms=250).describe() == (
        "p99 latency above 250ms for 2m (5m window); recovers below 200ms"
    )
    assert "5%" in FailuresRule().describe()
    assert "below 7" in EndpointsRule(available_below=7).describe()


def test_service_rules_enabled_rules() -> None:
    rules = ServiceRules(service="a", latency=LatencyRule(enabled=False))
    assert [r.alert_class.value for r in rules.enabled_rules()] == [
        "failures",
        "endpoints",
        "retries",
    ]


@st.composite
def latency_rules(draw: st.DrawFn) -> LatencyRule:
    above = draw(st.floats(min_value=1, max_value=1e5, allow_nan=False))
    recover = draw(st.none() | st.floats(min_value=0, max_value=above, allow_nan=False))
    return LatencyRule(above_ms=above, recover_below_ms=recover)


@st.composite
def failure_rules(draw: st.DrawFn) -> FailuresRule:
    above = draw(ratios)
    recover = draw(st.none() | st.floats(min_value=0, max_value=above, allow_nan=False))
    return FailuresRule(
        rate_above=above, recover_below=recover, min_requests=draw(st.integers(0, 50))
    )


@settings(max_examples=150, deadline=None)
@given(rule=latency_rules(), value=finite, samples=finite)
def test_latency_never_breached_and_recovered(
    rule: LatencyRule, value: float, samples: float
) -> None:
    verdict = rule.judge(value, samples)
    assert not (verdict.breached and verdict.recovered)
    assert verdict.breached == (value > rule.above_ms)
    if value < rule.recover_ms:
        assert verdict.recovered


@settings(max_examples=150, deadline=None)
@given(rule=failure_rules(), value=ratios, samples=finite)
def test_failures_never_breached_and_recovered(
    rule: FailuresRule, value: float, samples: float
) -> None:
    """Without line counts (an exact source) the lines are the requests themselves."""
    verdict = rule.judge(value, samples)
    assert not (verdict.breached and verdict.recovered)
    enough = samples >= rule.min_requests and samples >= rule.min_samples
    if enough and value > rule.rate_above and rule.confidence is None:
        assert verdict.breached
    if verdict.breached:
        assert enough and value > rule.rate_above
    if not enough:
        assert verdict == Verdict(breached=False, recovered=True)


@settings(max_examples=100, deadline=None)
@given(
    ratio=st.none() | ratios,
    count=st.none() | st.integers(0, 50),
    value=st.none() | ratios,
    available=st.none() | st.integers(0, 50),
)
def test_endpoints_never_breached_and_recovered(
    ratio: float | None, count: int | None, value: float | None, available: int | None
) -> None:
    if ratio is None and count is None:
        count = 1
    rule = EndpointsRule(
        available_ratio_below=ratio, available_below=count, expected_ratio_at_most=None
    )
    verdict = rule.judge(value, 1, {"min_available": available})
    assert not (verdict.breached and verdict.recovered)
    if ratio is not None and value is not None and value < ratio:
        assert verdict.breached
    if count is not None and available is not None and available < count:
        assert verdict.breached


@settings(max_examples=100, deadline=None)
@given(
    ratio_above=st.floats(0, 2, allow_nan=False),
    value=st.none() | st.floats(0, 3, allow_nan=False),
    exhausted=st.none() | st.floats(0, 10, allow_nan=False),
)
def test_retries_never_breached_and_recovered(
    ratio_above: float, value: float | None, exhausted: float | None
) -> None:
    rule = RetriesRule(ratio_above=ratio_above, confidence=None)
    verdict = rule.judge(value, 100, {"budget_exhausted": exhausted})
    assert not (verdict.breached and verdict.recovered)
    if value is not None and value > ratio_above:
        assert verdict.breached


def test_retry_ratio_needs_min_requests_but_an_exhausted_budget_does_not() -> None:
    rule = RetriesRule(ratio_above=0.2, min_requests=20, confidence=None)
    assert rule.judge(0.25, 4, {"budget_exhausted": 0.0}).breached is False
    assert rule.judge(0.25, 40, {"budget_exhausted": 0.0}).breached is True
    assert rule.judge(0.0, 4, {"budget_exhausted": 3.0}).breached is True


def test_evidence_names_the_condition_that_fired() -> None:
    rule = RetriesRule(ratio_above=0.2, exhausted_above=0)
    observed, threshold = rule.evidence_of(0.146, 100, {"budget_exhausted": 12.0})
    assert (observed, threshold.name, threshold.value) == (12.0, "retries.exhausted_above", 0.0)
    observed, threshold = rule.evidence_of(0.3, 100, {"budget_exhausted": 12.0})
    assert (observed, threshold.name) == (0.3, "retries.ratio_above")
    anomaly = RetriesRule(ratio_above=0.5, anomaly_factor=3)
    observed, threshold = anomaly.evidence_of(0.35, 100, {"baseline": 0.08})
    assert threshold.value == pytest.approx(0.24)
    endpoints = EndpointsRule(
        available_ratio_below=0.5, available_below=7, expected_ratio_at_most=None
    )
    observed, threshold = endpoints.evidence_of(0.6, 3, {"min_available": 6.0})
    assert (observed, threshold.name) == (6.0, "endpoints.available_below")
    observed, threshold = endpoints.evidence_of(0.4, 3, {"min_available": 4.0})
    assert (observed, threshold.name) == (0.4, "endpoints.available_ratio_below")


def test_failures_recover_below_their_trigger_by_default() -> None:
    rule = FailuresRule(rate_above=0.05)
    assert rule.judge(0.049, 100).breached is False
    assert rule.judge(0.049, 100).recovered is False  # between 4% and 5%: hold
    assert rule.judge(0.039, 100).recovered is True


# --- issue 10: sampling guards, the retry budget gauge, expected endpoints -----------


def test_one_sampled_line_never_passes_the_volume_guard() -> None:
    """At sampleRate 0.02 one request line counts as 50 requests: ``min_requests`` passes,
    the lines received do not."""
    rule = FailuresRule()
    detail = {"request_lines": 1.0, "failure_lines": 1.0}
    assert rule.judge(1.0, 50.0, detail) == Verdict(breached=False, recovered=True)
    plenty = {"request_lines": 400.0, "failure_lines": 40.0}
    assert rule.judge(0.1, 20_000.0, plenty).breached is True


def test_a_ratio_fires_only_when_its_lower_confidence_bound_is_above_the_threshold() -> None:
    rule = FailuresRule(rate_above=0.05)
    # 2 failure lines of 20 request lines reads 10 % but could well be 3 %.
    assert rule.judge(0.1, 1000.0, {"request_lines": 20.0, "failure_lines": 2.0}).breached is False
    # 4 of 20 (20 %) is surely above 5 %.
    assert rule.judge(0.2, 1000.0, {"request_lines": 20.0, "failure_lines": 4.0}).breached is True
    # Without the guard the point estimate decides.
    loose = FailuresRule(rate_above=0.05, confidence=None)
    assert loose.judge(0.1, 1000.0, {"request_lines": 20.0, "failure_lines": 2.0}).breached


@settings(max_examples=200, deadline=None)
@given(
    request_lines=st.integers(0, 5000),
    failure_lines=st.integers(0, 5000),
    rate=st.sampled_from([0.01, 0.02, 0.1, 1.0]),
)
def test_the_confidence_guard_only_ever_holds_back(
    request_lines: int, failure_lines: int, rate: float
) -> None:
    """With the guard a rule fires on a subset of what it fires on without it, and it never
    fires on fewer than min_samples request lines, whatever the sample rate."""
    requests, failures = request_lines / rate, failure_lines / rate
    value = failures / requests if requests else None
    detail = {"request_lines": float(request_lines), "failure_lines": float(failure_lines)}
    guarded = FailuresRule().judge(value, requests, detail)
    loose = FailuresRule(confidence=None).judge(value, requests, detail)
    if guarded.breached:
        assert loose.breached
        assert request_lines >= 20


def test_retry_budget_gauge_fires_whatever_the_traffic() -> None:
    rule = RetriesRule()
    assert rule.judge(None, 0.0, {"budget_min": 0.0}).breached is True
    assert rule.judge(0.0, 3.0, {"budget_min": 0.0, "budget_exhausted": 0.0}).breached is True
    assert rule.judge(0.0, 3.0, {"budget_min": 57.0, "budget_exhausted": 0.0}).breached is False
    observed, threshold = rule.evidence_of(0.0, 3.0, {"budget_min": 0.0})
    assert (observed, threshold.name, threshold.value) == (0.0, "retries.budget_below", 1.0)
    off = RetriesRule(budget_below=None)
    assert off.judge(None, 0.0, {"budget_min": 0.0}).breached is False


def test_declared_expected_endpoints_fire_at_seven_of_ten() -> None:
    """The article's example: 10 declared, alert at 7 or fewer available."""
    rule = EndpointsRule(expected=10, available_ratio_below=None)
    assert rule.judge(0.7, 1, {"min_available": 8.0}).breached is False
    assert rule.judge(1.0, 1, {"min_available": 7.0}).breached is True
    observed, threshold = rule.evidence_of(1.0, 1, {"min_available": 7.0})
    assert (observed, threshold.value) == (7.0, 7.0)


def test_learned_expected_endpoints_catch_a_shrinking_service_the_ratio_misses() -> None:
    """Kubernetes drops unready pods from Endpoints, so size falls with available and the
    ratio stays 1.0; the largest recent size (learned) still says 3 of 10 are left."""
    rule = EndpointsRule()
    detail = {"min_available": 3.0, "learned_ratio": 0.3}
    assert rule.judge(1.0, 1, detail).breached is True
    assert EndpointsRule(expected_ratio_at_most=None).judge(1.0, 1, detail).breached is False
    observed, threshold = rule.evidence_of(1.0, 1, detail)
    assert (observed, threshold.name) == (0.3, "endpoints.expected_ratio_at_most")
    assert rule.judge(1.0, 1, {"min_available": 9.0, "learned_ratio": 0.9}).breached is False


# --- what the mutation run (python -m benchmarks.mutation rules_models) found unpinned -------


def _named(thresholds: tuple[ThresholdInForce, ...]) -> list[tuple[str, float, str]]:
    return [(t.name, t.value, t.source) for t in thresholds]


def test_every_class_lists_its_thresholds_in_force_with_sources() -> None:
    file = "file:/etc/rules.yaml"
    lat = LatencyRule(above_ms=800).with_sources({"above_ms": file})
    assert _named(lat.thresholds()) == [
        ("latency.percentile", 99.0, "default"),
        ("latency.above_ms", 800.0, file),
        ("latency.recover_below_ms", 640.0, f"{file} (derived from above_ms)"),
    ]
    fail = FailuresRule(rate_above=0.1, confidence=None).with_sources({"rate_above": file})
    assert _named(fail.thresholds()) == [
        ("failures.rate_above", 0.1, file),
        ("failures.min_requests", 20.0, "default"),
        ("failures.min_samples", 20.0, "default"),
        ("failures.recover_below", pytest.approx(0.08), f"{file} (derived from rate_above)"),
    ]
    ep = EndpointsRule(expected=10, available_ratio_below=None, available_below=2)
    assert _named(ep.thresholds()) == [
        ("endpoints.expected_ratio_at_most", 0.7, "default"),
        ("endpoints.expected", 10.0, "default"),
        ("endpoints.available_below", 2.0, "default"),
    ]
    ret = RetriesRule(budget_below=None, confidence=None, anomaly_factor=3)
    assert _named(ret.thresholds()) == [
        ("retries.exhausted_above", 0.0, "default"),
        ("retries.ratio_above", 0.2, "default"),
        ("retries.min_requests", 20.0, "default"),
        ("retries.min_samples", 20.0, "default"),
        ("retries.anomaly_factor", 3.0, "default"),
    ]
    assert [t.name for t in RetriesRule().thresholds()][:1] == ["retries.budget_below"]
    assert "retries.confidence" in [t.name for t in RetriesRule().thresholds()]


def test_explicit_recovery_thresholds_are_listed_as_set() -> None:
    lat = LatencyRule(above_ms=500, recover_below_ms=100).with_sources({"recover_below_ms": "x"})
    assert _named(lat.thresholds())[-1] == ("latency.recover_below_ms", 100.0, "x")
    fail = FailuresRule(recover_below=0.01)
    assert _named(fail.thresholds())[-1] == ("failures.recover_below", 0.01, "default")
    assert fail.primary_threshold().name == "failures.rate_above"


def test_descriptions_read_as_documented() -> None:
    assert LatencyRule().describe() == (
        "p99 latency above 500ms for 2m (5m window); recovers below 400ms"
    )
    assert FailuresRule().describe() == (
        "failure rate above 5% for 1m (5m window), with at least 20 requests and 20 request "
        "lines, 95% sure; recovers below 4%"
    )
    assert FailuresRule(confidence=None, recover_below=0.01).describe() == (
        "failure rate above 5% for 1m (5m window), with at least 20 requests and 20 request "
        "lines; recovers below 1%"
    )
    assert EndpointsRule().describe() == (
        "available endpoints at most 70% of the recent largest size or below 70% of the load "
        "balancer on any load balancer for 1m (1m window)"
    )
    assert EndpointsRule(expected=10, available_below=3).describe() == (
        "available endpoints at most 70% of the 10 expected or below 70% of the load balancer "
        "or below 3 on any load balancer for 1m (1m window)"
    )
    only_count = EndpointsRule(
        expected_ratio_at_most=None, available_ratio_below=None, available_below=2
    )
    assert only_count.describe() == (
        "available endpoints below 2 on any load balancer for 1m (1m window)"
    )
    assert RetriesRule().describe() == (
        "retry budget below 1, retry budget exhausted more than 0 times or retries above 20% "
        "of requests (at least 20 requests and 20 request lines, 95% sure) for 1m (5m window)"
    )
    assert RetriesRule(budget_below=None, anomaly_factor=3, confidence=None).describe() == (
        "retry budget exhausted more than 0 times or retries above 20% of requests (at least "
        "20 requests and 20 request lines) or above 3x the previous day's median for 1m "
        "(5m window)"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"window": 5}, "write a duration as text such as 500ms, 10s, 5m, 1h"),
        ({"window": "0s"}, "duration must be longer than 0"),
        ({"runbook_url": "ftp://x"}, "runbook_url must start with http:// or https://"),
        ({"router": "a b"}, r"router must be auto, \* or a router label \(no spaces\)"),
        ({"router": ""}, r"router must be auto, \* or a router label \(no spaces\)"),
    ],
)
def test_field_errors_say_what_to_write(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        LatencyRule.model_validate(data)
    assert re.fullmatch(f"Value error, {message}", caught.value.errors()[0]["msg"])


def test_for_may_be_zero_and_urls_may_be_http_or_https() -> None:
    assert LatencyRule.model_validate({"for": "0s"}).for_ms == 0
    for url in ("http://wiki/x", "https://wiki/x"):
        assert LatencyRule.model_validate({"runbook_url": url}).runbook_url == url
    assert LatencyRule.model_validate({"router": "*"}).router == "*"


def test_an_unknown_duration_unit_reports_the_parser_message() -> None:
    with pytest.raises(ValidationError) as caught:
        LatencyRule.model_validate({"window": "5 parsecs"})
    assert "5 parsecs" in caught.value.errors()[0]["msg"]


def test_the_shortest_positive_window_is_one_millisecond() -> None:
    assert LatencyRule(window="1ms").window_ms == 1


def test_endpoints_evidence_without_a_breach_is_the_default_test() -> None:
    rule = EndpointsRule(expected=10, available_below=2)
    # 8 of 10 expected (above 7), 90% of the balancer, 8 >= 2: nothing breached.
    observed, threshold = rule.evidence_of(0.9, 3, {"min_available": 8.0})
    assert observed == 8.0
    assert threshold.name == "endpoints.expected x expected_ratio_at_most"
    assert threshold.value == pytest.approx(7.0)


def test_endpoints_evidence_without_data_is_the_primary_threshold() -> None:
    observed, threshold = EndpointsRule().evidence_of(None, 0, {})
    assert observed is None
    assert threshold.name == "endpoints.expected_ratio_at_most"


def test_retries_exhausted_exactly_at_the_limit_is_not_the_evidence() -> None:
    rule = RetriesRule(exhausted_above=3, budget_below=None)
    observed, threshold = rule.evidence_of(0.01, 100, {"budget_exhausted": 3.0})
    assert (observed, threshold.name) == (0.01, "retries.ratio_above")
    observed, threshold = rule.evidence_of(0.01, 100, {"budget_exhausted": 4.0})
    assert (observed, threshold.name) == (4.0, "retries.exhausted_above")


def test_retries_anomaly_evidence_names_the_baseline_product() -> None:
    rule = RetriesRule(budget_below=None, anomaly_factor=3).with_sources({"anomaly_factor": "f"})
    observed, threshold = rule.evidence_of(0.15, 100, {"baseline": 0.04})
    assert observed == 0.15
    assert (threshold.name, threshold.source) == ("retries.anomaly_factor x baseline", "f")
    assert threshold.value == pytest.approx(0.12)
    # Not anomalous (0.1 <= 3 x 0.04), or no baseline: the primary threshold.
    assert rule.evidence_of(0.1, 100, {"baseline": 0.04})[1].name == "retries.ratio_above"
    assert rule.evidence_of(0.15, 100, {})[1].name == "retries.ratio_above"
    # The ratio test breached: it is the evidence, not the anomaly.
    breached = rule.evidence_of(0.5, 1000, {"baseline": 0.04})
    assert breached[1].name == "retries.ratio_above"


def test_retries_ratio_needs_both_request_and_line_minimums_inclusive() -> None:
    rule = RetriesRule(confidence=None, budget_below=None, min_requests=20, min_samples=20)
    assert rule.judge(0.5, 20, {"request_lines": 20.0}).breached is True
    assert rule.judge(0.5, 19, {"request_lines": 20.0}).breached is False
    assert rule.judge(0.5, 20, {"request_lines": 19.0}).breached is False
    assert rule.judge(0.2, 100, {"request_lines": 100.0}).breached is False  # at, not above


def test_retries_confidence_counts_the_retry_lines_received() -> None:
    rule = RetriesRule(budget_below=None)
    # 30% retries, but only 5 of 100 lines were retries: the lower bound (2.4%) is not >20%.
    assert rule.judge(0.3, 100, {"request_lines": 100.0, "retry_lines": 5.0}).breached is False
    assert rule.judge(0.3, 100, {"request_lines": 100.0}).breached is True


def test_retries_anomaly_needs_enough_traffic_and_more_than_the_product() -> None:
    rule = RetriesRule(anomaly_factor=2, budget_below=None, ratio_above=0.9)
    assert rule.judge(0.2, 100, {"baseline": 0.1}).breached is False  # exactly 2 x 0.1
    assert rule.judge(0.21, 100, {"baseline": 0.1}).breached is True
    assert rule.judge(0.5, 5, {"baseline": 0.1}).breached is False  # 5 requests
    assert rule.judge(None, 100, {"baseline": 0.1, "budget_exhausted": 0.0}).breached is False


def test_retries_budget_at_its_floor_is_not_dry() -> None:
    rule = RetriesRule(budget_below=1)
    assert rule.judge(None, 0, {"budget_min": 1.0}).breached is False
    assert rule.judge(None, 0, {"budget_min": 0.5}).breached is True


def test_retries_evidence_judges_the_ratio_with_its_own_minimums() -> None:
    rule = RetriesRule(exhausted_above=3, budget_below=None, confidence=None)
    # 50% retries of 10 requests is not a ratio breach: the exhausted count is the evidence.
    observed, threshold = rule.evidence_of(0.5, 10, {"budget_exhausted": 4.0})
    assert (observed, threshold.name) == (4.0, "retries.exhausted_above")
    observed, threshold = rule.evidence_of(None, 100, {"budget_exhausted": 4.0})
    assert (observed, threshold.name) == (4.0, "retries.exhausted_above")


def test_field_names_are_the_model_fields() -> None:
    names = LatencyRule.field_names()
    assert names == tuple(LatencyRule.model_fields)
    assert {"for_", "above_ms", "recover_below_ms", "window"} <= set(names)


def test_recovery_is_strictly_below_the_recovery_threshold() -> None:
    assert LatencyRule().judge(400.0, 10) == Verdict(breached=False, recovered=False)
    assert LatencyRule().judge(399.9, 10).recovered is True
    fail = FailuresRule(confidence=None, recover_below=0.02)
    assert fail.judge(0.02, 100, {"request_lines": 100.0}).recovered is False
    assert fail.judge(0.019, 100, {"request_lines": 100.0}).recovered is True


def test_endpoint_tests_at_their_edges() -> None:
    learned = EndpointsRule(available_ratio_below=None)
    assert learned.judge(None, 1, {"learned_ratio": 0.7}).breached is True  # at most 70%
    assert learned.judge(None, 1, {"learned_ratio": 0.71}).breached is False
    ratio = EndpointsRule(expected_ratio_at_most=None, available_ratio_below=0.5)
    assert ratio.judge(0.5, 1, {}).breached is False  # below 50%, not at it
    count = EndpointsRule(
        expected_ratio_at_most=None, available_ratio_below=None, available_below=3
    )
    assert count.judge(None, 1, {"min_available": 3.0}).breached is False
    assert count.judge(None, 1, {"min_available": 2.0}).breached is True


def test_declared_expected_evidence_carries_the_expected_source() -> None:
    rule = EndpointsRule(expected=10, available_ratio_below=None).with_sources({"expected": "f"})
    observed, threshold = rule.evidence_of(None, 1, {"min_available": 5.0})
    assert (observed, threshold.name, threshold.source) == (
        5.0,
        "endpoints.expected x expected_ratio_at_most",
        "f",
    )


def test_a_partial_document_may_set_recovery_above_its_trigger() -> None:
    # A scope's partial rule is checked only once merged with the rest.
    partial = LatencyRule.model_validate(
        {"above_ms": 300, "recover_below_ms": 350}, context={"partial": True}
    )
    assert partial.recover_below_ms == 350
    with pytest.raises(ValidationError, match="recover_below_ms"):
        LatencyRule.model_validate(
            {"above_ms": 300, "recover_below_ms": 350}, context={"other": True}
        )
