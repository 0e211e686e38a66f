"""Values shared by the sidecar's pure stages: parse -> map -> aggregate."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class MetricKind(StrEnum):
    COUNTER = "c"
    TIMER = "ms"
    HISTOGRAM = "h"
    GAUGE = "g"
    SET = "s"


@dataclass(slots=True)
class StatsdSample:
    """One statsd line, parsed. Treat as immutable: it is not frozen only because a frozen
    dataclass costs ~4x more to construct, and one is built per received line.

    ``value`` is the numeric value (for sets, 0.0 and the member is in ``set_member``).
    ``rate`` is the sample rate in (0, 1]; 1.0 when the line had none. ``tags`` are the
    DogStatsD ``|#k:v`` tags, in the order sent (a tag without ``:`` has value "").
    """

    name: str
    value: float
    kind: MetricKind
    rate: float = 1.0
    tags: tuple[tuple[str, str], ...] = ()
    set_member: str | None = None


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """A statsd name mapped onto the series schema: measurement plus sorted tags (without
    ``host``, which the sidecar adds at output)."""

    measurement: str
    tags: tuple[tuple[str, str], ...]
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Keys are hashed on every aggregated line; hashing the tag tuple once matters there.
        object.__setattr__(self, "_hash", hash((self.measurement, self.tags)))

    def __hash__(self) -> int:
        return self._hash
