from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from meshalert.histogram import (
    BOUNDS,
    LE_LABELS,
    RELATIVE_WIDTH,
    bucket_index,
    parse_le,
    percentile_from_buckets,
)


@given(st.floats(min_value=-1e3, max_value=1e12, allow_nan=False))
def test_every_value_lands_in_the_bucket_that_bounds_it(value: float) -> None:
    idx = bucket_index(value)
    upper = parse_le(LE_LABELS[idx])
    lower = parse_le(LE_LABELS[idx - 1]) if idx > 0 else -math.inf
    assert lower < max(value, 0.0) <= upper or (value <= 0 and idx == 0)


def test_labels_are_stable_and_unique() -> None:
    assert len(set(LE_LABELS)) == len(LE_LABELS) == len(BOUNDS) + 1
    assert LE_LABELS[:3] == ("0", "1", "1.18921")
    assert LE_LABELS[-1] == "+Inf"


@settings(max_examples=60)
@given(
    st.lists(st.integers(min_value=1, max_value=100_000), min_size=50, max_size=400),
    st.sampled_from([50.0, 90.0, 99.0]),
)
def test_percentile_within_one_bucket_width(samples: list[int], q: float) -> None:
    counts: dict[float, float] = {}
    for v in samples:
        le = parse_le(LE_LABELS[bucket_index(v)])
        counts[le] = counts.get(le, 0.0) + 1.0
    estimate = percentile_from_buckets(counts, q)
    assert estimate is not None
    truth = float(np.percentile(samples, q, method="inverted_cdf"))
    assert abs(estimate - truth) <= truth * RELATIVE_WIDTH / (1 - RELATIVE_WIDTH) + 1.0


def test_no_samples_means_no_value() -> None:
    assert percentile_from_buckets({}, 99) is None
    assert percentile_from_buckets({1.0: 0.0}, 99) is None
