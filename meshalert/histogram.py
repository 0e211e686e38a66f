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
from collections.abc import Iterable, Mapping

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
        return len(BOUNDS) if value > 0 else 0
    pos = bisect.bisect_left(BOUNDS, value)
    for cand in (pos - 1, pos):
        if 0 <= cand < len(BOUNDS) and _close(BOUNDS[cand], value):
            return cand
    return len(BOUNDS) if value > BOUNDS[-1] else bucket_index(value)


def _close(bound: float, value: float) -> bool:
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
    items = sorted((le, c) for le, c in counts.items() if c > 0)
    total = sum(c for _, c in items)
    if total <= 0:
        return None
    rank = q / 100.0 * total
    cumulative = 0.0
    for le, count in items:
        if cumulative + count >= rank:
            if math.isinf(le):
                return BOUNDS[-1]
            lower = _lower_bound(le)
            return lower + (le - lower) * (rank - cumulative) / count
        cumulative += count
    last = items[-1][0]
    return BOUNDS[-1] if math.isinf(last) else last


def _lower_bound(le: float) -> float:
    # Keys normally come from parse_le (exact bounds); a key a hair above its bound (an older
    # float(label)) still belongs to that bound's bucket, not to the next one.
    idx = bisect.bisect_left(BOUNDS, le)
    if idx > 0 and _close(BOUNDS[idx - 1], le):
        idx -= 1
    return BOUNDS[idx - 1] if idx > 0 else 0.0


def merge(bucket_sets: Iterable[Mapping[float, float]]) -> dict[float, float]:
    merged: dict[float, float] = {}
    for buckets in bucket_sets:
        for le, count in buckets.items():
            merged[le] = merged.get(le, 0.0) + count
    return merged
