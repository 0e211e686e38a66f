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


# --- what the mutation run (python -m benchmarks.mutation histogram) found unpinned ----------

# Stored points carry these labels (``le``): a sidecar and an engine of different versions must
# agree on every one of them, not only on the few an example happens to use.
PINNED_LABELS = (
    "0",
    "1",
    "1.18921",
    "1.41421",
    "1.68179",
    "2",
    "2.37841",
    "2.82843",
    "3.36359",
    "4",
    "4.75683",
    "5.65685",
    "6.72717",
    "8",
    "9.51366",
    "11.3137",
    "13.4543",
    "16",
    "19.0273",
    "22.6274",
    "26.9087",
    "32",
    "38.0546",
    "45.2548",
    "53.8174",
    "64",
    "76.1093",
    "90.5097",
    "107.635",
    "128",
    "152.219",
    "181.019",
    "215.269",
    "256",
    "304.437",
    "362.039",
    "430.539",
    "512",
    "608.874",
    "724.077",
    "861.078",
    "1024",
    "1217.75",
    "1448.15",
    "1722.16",
    "2048",
    "2435.5",
    "2896.31",
    "3444.31",
    "4096",
    "4870.99",
    "5792.62",
    "6888.62",
    "8192",
    "9741.98",
    "11585.2",
    "13777.2",
    "16384",
    "19484",
    "23170.5",
    "27554.5",
    "32768",
    "38967.9",
    "46341",
    "55109",
    "65536",
    "77935.9",
    "92681.9",
    "110218",
    "131072",
    "155872",
    "185364",
    "220436",
    "262144",
    "311744",
    "370728",
    "440872",
    "524288",
    "623487",
    "741455",
    "881744",
    "1.04858e+06",
    "1.24697e+06",
    "1.48291e+06",
    "1.76349e+06",
    "2.09715e+06",
    "2.49395e+06",
    "2.96582e+06",
    "3.52698e+06",
    "4.1943e+06",
    "4.9879e+06",
    "5.93164e+06",
    "7.05395e+06",
    "8.38861e+06",
    "9.97579e+06",
    "1.18633e+07",
    "1.41079e+07",
    "1.67772e+07",
    "1.99516e+07",
    "2.37266e+07",
    "2.82158e+07",
    "3.35544e+07",
    "3.99032e+07",
    "4.74531e+07",
    "5.64316e+07",
    "6.71089e+07",
    "7.98063e+07",
    "9.49063e+07",
    "1.12863e+08",
    "1.34218e+08",
    "1.59613e+08",
    "1.89813e+08",
    "2.25726e+08",
    "2.68435e+08",
    "3.19225e+08",
    "3.79625e+08",
    "4.51453e+08",
    "5.36871e+08",
    "6.38451e+08",
    "7.5925e+08",
    "9.02906e+08",
    "1.07374e+09",
    "+Inf",
)


def test_every_bucket_label_is_pinned() -> None:
    assert PINNED_LABELS == LE_LABELS
    assert (*(format_bound(b) for b in BOUNDS), "+Inf") == PINNED_LABELS
    assert format_bound(math.inf) == "+Inf"


@pytest.mark.parametrize("q", [0.0, -1.0, 100.5, 101.0, math.nan])
def test_percentile_argument_outside_zero_to_hundred_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match=r"percentile must be in \(0, 100\], got"):
        percentile_from_buckets({1.0: 1.0}, q)


def test_percentile_hundred_is_the_upper_bound_of_the_last_bucket() -> None:
    assert percentile_from_buckets({1.0: 1.0}, 100.0) == 1.0
    assert percentile_from_buckets({1.0: 1.0, 4.0: 1.0}, 100.0) == 4.0


def test_a_window_with_one_sample_interpolates_inside_its_bucket() -> None:
    # One sample in (2**1.75, 4]: p50 is halfway up that bucket, p100 its upper bound.
    lower = BOUNDS[bucket_index(4.0) - 1]
    assert percentile_from_buckets({4.0: 1.0}, 50.0) == pytest.approx((lower + 4.0) / 2)
    assert percentile_from_buckets({4.0: 1.0}, 100.0) == 4.0


def test_a_rank_on_a_bucket_edge_stays_in_the_lower_bucket() -> None:
    assert percentile_from_buckets({1.0: 1.0, 4.0: 1.0}, 50.0) == 1.0
    assert percentile_from_buckets({1.0: 1.0, 4.0: 3.0}, 25.0) == 1.0


def test_the_inf_bucket_answers_with_the_largest_finite_bound() -> None:
    assert percentile_from_buckets({math.inf: 3.0}, 50.0) == BOUNDS[-1] == 2.0**30
    assert percentile_from_buckets({1.0: 1.0, math.inf: 1.0}, 99.0) == BOUNDS[-1]
    assert percentile_from_buckets({1.0: 3.0, math.inf: 1.0}, 50.0) == pytest.approx(2 / 3)


def test_zero_latencies_give_zero() -> None:
    assert bucket_index(0.0) == bucket_index(-5.0) == 0
    assert percentile_from_buckets({0.0: 5.0}, 50.0) == 0.0
    assert percentile_from_buckets({0.0: 5.0}, 100.0) == 0.0
    assert percentile_from_buckets({0.0: 1.0, 1.0: 1.0}, 75.0) == pytest.approx(0.5)


def test_empty_and_negative_counts_are_ignored() -> None:
    assert percentile_from_buckets({1.0: -2.0}, 50.0) is None
    assert percentile_from_buckets({1.0: -2.0, 4.0: 2.0}, 100.0) == 4.0
    assert percentile_from_buckets({1.0: 0.0, 4.0: 1.0}, 100.0) == 4.0


def test_a_key_a_hair_above_its_bound_interpolates_from_that_bucket() -> None:
    # float("1.18921") > 2**0.25: the key still names the (1, 2**0.25] bucket.
    hair = float("1.18921")
    assert hair > BOUNDS[2]
    assert percentile_from_buckets({hair: 2.0}, 50.0) == pytest.approx((1.0 + hair) / 2)
    first = float(LE_LABELS[1])
    assert percentile_from_buckets({first: 2.0}, 50.0) == 0.5


@pytest.mark.parametrize(
    ("label", "index"),
    [
        ("inf", len(BOUNDS)),
        ("Infinity", len(BOUNDS)),
        ("-inf", 0),
        ("-Infinity", 0),
        ("0.0", 0),
        ("-3", 0),
        ("1e9", len(BOUNDS) - 1),  # between the last two bounds, close to neither
        ("2e9", len(BOUNDS)),  # above the last bound
        ("1073741824", len(BOUNDS) - 1),  # the last bound, written out
    ],
)
def test_foreign_labels_name_the_bucket_that_would_hold_them(label: str, index: int) -> None:
    assert le_index(label) == index


@pytest.mark.parametrize("label", ["nan", "NaN", "abc", ""])
def test_a_label_that_is_no_number_is_refused(label: str) -> None:
    with pytest.raises(ValueError, match="is not a number"):
        le_index(label)
