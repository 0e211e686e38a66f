"""The mergeable latency histogram shared by every sidecar and by the alert engine.

Bucket upper bounds are fixed and log-spaced (four per power of two, so each bucket is at
most 19% wide relative to its upper bound). Every sidecar uses the same bounds, which makes
buckets from many hosts and intervals summable; a window's percentile is computed from the
summed counts, never by averaging per-interval percentiles.

In storage (measurement ``<name>_bucket``) each point carries the count of samples that fell
in ``(previous bound, le]`` -- not a cumulative count -- and only non-empty buckets are
written. Per-bucket counts survive ``sum()`` across hosts and intervals even when a host
wrote no point for a bucket; cumulative counts would not.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping

STEPS_PER_OCTAVE = 4
MAX_EXPONENT = 30
BOUNDS: tuple[float, ...] = (
    0.0,
    *tuple(2.0 ** (k / STEPS_PER_OCTAVE) for k in range(MAX_EXPONENT * STEPS_PER_OCTAVE + 1)),
)
"""Finite upper bounds; values above the last one go to ``+Inf``."""
INF_LABEL = "+Inf"
RELATIVE_WIDTH = 1.0 - 2.0 ** (-1.0 / STEPS_PER_OCTAVE)


def format_bound(bound: float) -> str:
    """The ``le`` tag text of a bound; stable across processes and versions."""
    if math.isinf(bound):
        return INF_LABEL
    return f"{bound:.6g}"


LE_LABELS: tuple[str, ...] = (*tuple(format_bound(b) for b in BOUNDS), INF_LABEL)


def bucket_index(value: float) -> int:
    """Index into :data:`LE_LABELS` of the bucket holding ``value``."""
    # `value < 0.0` would do as well (bisect puts 0.0 at BOUNDS[0] == 0.0): equivalent mutant.
    if value <= 0.0:
        return 0
    return bisect.bisect_left(BOUNDS, value)


LE_INDEX: dict[str, int] = {label: idx for idx, label in enumerate(LE_LABELS)}
"""Label -> bucket index, built from :func:`format_bound` itself so it cannot drift from it."""

_LABEL_TOLERANCE = 1e-3
"""Relative distance within which a foreign label (``"1.189207115"``, ``"4.0"``) names a bound.

A 4-digit label is off by at most 5e-4 relative; neighbouring bounds are 19 % apart, so any
tolerance between those two is unambiguous."""


def le_index(label: str) -> int:
    """Index into :data:`LE_LABELS` / :data:`BOUNDS` of the bucket an ``le`` label names.

    The label's text is looked up, never compared as a number: ``%.6g`` rounds about 40 % of
    the bounds upwards (``"1.18921"`` > 2**0.25), and a number compared with :data:`BOUNDS`
    would then land one bucket too high, collapsing interpolation onto the upper edge. Labels
    written with other precision are matched to the nearest bound; any other number to the
    bucket that would hold a sample of that value. Only a non-number raises ``ValueError``.
    """
    # A fast path only: without it every label of LE_LABELS takes the numeric path below and
    # lands on the same index (test_every_label_names_its_exact_bound), so mutating it to
    # ``get(None)`` cannot change a result.
    idx = LE_INDEX.get(label)
    if idx is not None:
        return idx
    try:
        value = float(label)
    except ValueError:
        raise ValueError(f"le label {label!r} is not a number") from None
    if math.isnan(value):
        raise ValueError(f"le label {label!r} is not a number")
    if math.isinf(value):
        # Not through _close, which would call +inf close to the last bound.
        return bucket_index(value)
    pos = bisect.bisect_left(BOUNDS, value)
    # Candidate 0 (the bound 0.0) is close only to 0.0 itself, which bucket_index also puts
    # at 0: `1 <= cand` / `0 < cand` are equivalent mutants.
    for cand in (pos - 1, pos):
        if 0 <= cand < len(BOUNDS) and _close(BOUNDS[cand], value):
            return cand
    return bucket_index(value)


def _close(bound: float, value: float) -> bool:
    # `<` would do as well: no float lies exactly at the tolerance from any bound (searched
    # around all 121 bounds), so the comparison is never an equality.
    return abs(bound - value) <= _LABEL_TOLERANCE * max(abs(bound), abs(value))


def parse_le(label: str) -> float:
    """The exact bound (an element of :data:`BOUNDS`, or ``inf``) an ``le`` label names."""
    idx = le_index(label)
    return math.inf if idx == len(BOUNDS) else BOUNDS[idx]


def percentile_from_buckets(counts: Mapping[float, float], q: float) -> float | None:
    """Estimate the ``q``-th percentile (0 < q <= 100) from per-bucket counts keyed by bound.

    Linear interpolation inside the bucket that holds the rank; the ``+Inf`` bucket answers
    with the largest finite bound. ``None`` when there is no sample.
    """
    if not 0.0 < q <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    # `c >= 0` would do as well: a zero count adds nothing to the total and never holds the
    # rank (the bucket before it already reached it), so keeping it changes no answer.
    items = sorted((le, c) for le, c in counts.items() if c > 0)
    total = sum(c for _, c in items)
    if total <= 0:
        return None
    rank = q / 100.0 * total
    cumulative = 0.0
    # rank <= total (q <= 100), so the loop stops at the last bucket at the latest.
    for le, count in items:  # noqa: B007 -- the bucket the loop stops at is used below
        if cumulative + count >= rank:
            break
        cumulative += count
    if math.isinf(le):
        return BOUNDS[-1]
    lower = _lower_bound(le)
    return lower + (le - lower) * (rank - cumulative) / count


def _lower_bound(le: float) -> float:
    # Keys normally come from parse_le (exact bounds); a key a hair above its bound (an older
    # float(label)) still belongs to that bound's bucket, not to the next one.
    # At idx == 0 (le is 0.0) BOUNDS[-1] is never close to le, and at idx == 1 BOUNDS[0] is
    # 0.0 anyway: `idx >= 0` in the test and `idx > 1` in the return are equivalent mutants.
    idx = bisect.bisect_left(BOUNDS, le)
    if idx > 0 and _close(BOUNDS[idx - 1], le):
        idx -= 1
    return BOUNDS[idx - 1] if idx > 0 else 0.0
