from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshalert.alerts.confidence import ratio_lower_bound, wilson_lower, z_score


def test_z_score_is_the_one_sided_normal_quantile() -> None:
    assert z_score(0.95) == pytest.approx(1.6449, abs=1e-4)
    with pytest.raises(ValueError, match="confidence"):
        z_score(1.0)


@given(
    events=st.integers(0, 10_000),
    base=st.integers(0, 10_000),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_the_bound_never_exceeds_the_observed_ratio_and_tightens_with_confidence(
    events: int, base: int, confidence: float
) -> None:
    bound = ratio_lower_bound(events, base, confidence)
    assert bound >= 0
    if base:
        assert bound <= events / base + 1e-12
    assert ratio_lower_bound(events, base, 0.5 + confidence / 2) <= bound + 1e-12


@given(events=st.integers(1, 200), base=st.integers(1, 200), scale=st.integers(2, 50))
def test_more_lines_at_the_same_ratio_raise_the_bound(events: int, base: int, scale: int) -> None:
    assert ratio_lower_bound(events * scale, base * scale, 0.95) >= ratio_lower_bound(
        events, base, 0.95
    )


def test_no_lines_bound_nothing() -> None:
    assert wilson_lower(0, 0, 0.95) == 0.0
    assert ratio_lower_bound(0, 0, 0.95) == 0.0
    assert ratio_lower_bound(0, 100, 0.95) == 0.0


def test_the_bound_holds_under_per_counter_sampling() -> None:
    """Simulate Linkerd's sampling (each increment of each counter kept with probability p,
    independently) of a 4 % failure ratio: the 95 % bound exceeds 4 % in about 5 % of
    windows, whatever the sample rate."""
    rng = random.Random(7)
    requests, failures = 20_000, 800
    for rate in (0.01, 0.05):
        trials, above = 300, 0
        for _ in range(trials):
            # Kept lines are binomial; at these sizes the normal approximation is exact
            # enough and 100x faster than drawing every increment.
            n = _binomial(rng, requests, rate)
            k = _binomial(rng, failures, rate)
            above += ratio_lower_bound(k, n, 0.95) > failures / requests
        assert above / trials < 0.1, rate


def _binomial(rng: random.Random, trials: int, p: float) -> int:
    mean, sd = trials * p, math.sqrt(trials * p * (1 - p))
    return max(0, round(rng.gauss(mean, sd)))
