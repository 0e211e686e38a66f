"""No single service can fail a cycle for the others: bad names, rules that do not resolve
for a service, impossible values are skipped, counted and named in the report."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertState
from meshalert.backends.memory.state import MemoryStateStore
from meshalert.engine import ClassRule, CycleReport, Engine
from meshalert.evaluation import evaluate_class
from meshalert.queries.model import ClassAggregates, ClassQuery, FailuresAggregate
from meshalert.rules import load_rules
from tests.meshalert.state.conftest import aws_env, dynamodb_client  # noqa: F401

GOOD = "production/checkout"
BROKEN = FailuresAggregate(requests=100.0, failures=50.0, connection_failures=0.0)
RULES = {"MESHALERT_RULES": "defaults: {failures: {rate_above: 0.05, min_requests: 1, for: 0s}}"}


@dataclass
class _Reader:
    """Answers the failures query with the aggregates it holds (a unit's test double)."""

    services: Mapping[str, FailuresAggregate]

    def fetch(self, query: ClassQuery) -> ClassAggregates:
        # One router without a name, as series without a router tag come back.
        return ClassAggregates(query, {k: {"": a} for k, a in self.services.items()}, "q")


def _cycle(services: Mapping[str, FailuresAggregate]) -> tuple[MemoryStateStore, CycleReport]:
    state = MemoryStateStore()
    engine = Engine(_Reader(services), state, None)
    report = evaluate_class(engine, load_rules(RULES, now_s=0), AlertClass.FAILURES, 60_000)
    return state, report


def test_a_service_key_with_several_slashes_is_evaluated_like_any_other() -> None:
    state, _ = _cycle({"a/b/c": BROKEN, GOOD: BROKEN})

    records = state.load(AlertClass.FAILURES)
    assert records[GOOD].state is AlertState.FIRING
    assert records["a/b/c"].state is AlertState.FIRING


def test_impossible_values_skip_only_their_service() -> None:
    odd = {
        "ns/nan": FailuresAggregate(math.nan, 1.0, 0.0),
        "ns/inf": FailuresAggregate(100.0, math.inf, 0.0),
        "ns/negative": FailuresAggregate(100.0, -5.0, 0.0),
    }
    state = MemoryStateStore()
    engine = Engine(_Reader({**odd, GOOD: BROKEN}), state, None)
    report = evaluate_class(engine, load_rules(RULES, now_s=0), AlertClass.FAILURES, 60_000)

    assert set(report.skipped) == set(odd)
    assert report.as_log()["services_skipped"] == 3
    assert report.states == {GOOD: AlertState.FIRING}
    assert set(state.load(AlertClass.FAILURES)) == {GOOD}


def test_a_rule_lookup_that_raises_for_one_service_skips_only_that_service() -> None:
    rules = load_rules(RULES, now_s=0)
    window = rules.document.defaults.rule(AlertClass.FAILURES).window_ms

    def lookup(cls: AlertClass, key: str) -> ClassRule | None:
        if key == "ns/cursed":
            raise RecursionError("a rule resolution bug")
        resolved = rules.for_service(key)
        return resolved.rule(cls) if resolved is not None else None

    engine = Engine(_Reader({"ns/cursed": BROKEN, GOOD: BROKEN}), MemoryStateStore(), None)
    report = engine.evaluate(AlertClass.FAILURES, lookup, window, 60_000)

    assert report.skipped == {"ns/cursed": "RecursionError: a rule resolution bug"}
    assert report.states == {GOOD: AlertState.FIRING}


_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6).map(float)
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    services=st.dictionaries(
        st.text(min_size=0, max_size=40).filter(lambda k: k != GOOD),
        st.builds(FailuresAggregate, _VALUES, _VALUES, _VALUES),
        max_size=8,
    )
)
def test_arbitrary_services_in_a_window_never_fail_the_cycle_for_the_others(
    services: dict[str, FailuresAggregate],
) -> None:
    state, report = _cycle({**services, GOOD: BROKEN})

    assert state.load(AlertClass.FAILURES)[GOOD].state is AlertState.FIRING
    assert report.states[GOOD] is AlertState.FIRING
    evaluated = set(report.states)
    skipped = set(report.skipped)
    assert evaluated | skipped == {*services, GOOD}
    assert not evaluated & skipped


def test_an_overlong_service_key_is_skipped_and_the_rest_saved_in_dynamodb(
    dynamodb_client: object,  # noqa: F811 -- the fixture
) -> None:
    from typing import Any, cast

    from meshalert.backends.dynamodb.state import DynamoDBStateStore
    from tests.meshalert.state.conftest import TABLE

    # DynamoDB sort keys hold 1 KiB: such a name from a datagram used to fail the batch
    # write of every record of the class.
    long_name = "ns/" + "x" * 2000
    state = DynamoDBStateStore(TABLE, cast(Any, dynamodb_client))
    engine = Engine(_Reader({long_name: BROKEN, GOOD: BROKEN}), state, None)
    report = evaluate_class(engine, load_rules(RULES, now_s=0), AlertClass.FAILURES, 60_000)

    assert set(report.skipped) == {long_name}
    assert state.load(AlertClass.FAILURES)[GOOD].state is AlertState.FIRING
