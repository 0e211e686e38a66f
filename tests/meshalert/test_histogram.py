from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshalert.histogram import (
    BOUNDS,
    LE_INDEX,
    LE_LABELS,
    RELATIVE_WIDTH,
    bucket_index,
    format_bound,
    le_index,
    parse_le,
    percentile_from_buckets,
)

ALL_BUCKETS = st.integers(min_value=0, max_value=len(LE_LABELS) - 1)
FINITE_BUCKETS = st.integers(min_value=1, max_value=len(BOUNDS) - 1)


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


def test_every_label_names_its_exact_bound() -> None:
    # %.6g rounds 52 of the 122 bounds upwards ("1.18921" > 2**0.25); the label must still
    # name the bound it was written for, never the next bucket.
    rounded_up = [i for i, b in enumerate(BOUNDS) if float(LE_LABELS[i]) > b]
    assert len(rounded_up) > 40
    for idx, label in enumerate(LE_LABELS):
        assert LE_INDEX[label] == le_index(label) == idx
        assert parse_le(label) == (BOUNDS[idx] if idx < len(BOUNDS) else math.inf)


@given(ALL_BUCKETS)
def test_label_round_trips_through_index(idx: int) -> None:
    label = LE_LABELS[idx]
    assert le_index(label) == idx
    if idx < len(BOUNDS):
        assert format_bound(parse_le(label)) == label
        assert bucket_index(parse_le(label)) == idx


@given(FINITE_BUCKETS, st.sampled_from(["repr", "g9", "g4", "fixed"]))
def test_labels_written_with_other_precision_name_the_same_bucket(idx: int, style: str) -> None:
    bound = BOUNDS[idx]
    label = {
        "repr": repr(bound),
        "g9": f"{bound:.9g}",
        "g4": f"{bound:.4g}",
        "fixed": f"{bound:.1f}" if bound >= 100 else f"{bound:.6f}",
    }[style]
    assert le_index(label) == idx


@given(FINITE_BUCKETS, st.floats(min_value=0.01, max_value=99.99))
def test_one_bucket_interpolates_strictly_inside_it(idx: int, q: float) -> None:
    lower, upper = BOUNDS[idx - 1], BOUNDS[idx]
    estimate = percentile_from_buckets({parse_le(LE_LABELS[idx]): 7.0}, q)
    assert estimate is not None
    assert estimate == pytest.approx(lower + (upper - lower) * q / 100.0, rel=1e-12)
    assert lower < estimate < upper


def test_a_number_that_is_no_bound_names_the_bucket_holding_it() -> None:
    assert le_index("3") == bucket_index(3.0)
    assert le_index("1e300") == len(BOUNDS)
    assert le_index("inf") == len(BOUNDS)
    assert le_index("-1") == 0


@pytest.mark.parametrize("label", ["", "fast", "nan", "1,5"])
def test_a_label_that_is_no_number_is_named_in_the_error(label: str) -> None:
    with pytest.raises(ValueError, match=repr(label).replace("\\", "\\\\")):
        le_index(label)
