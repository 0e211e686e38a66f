"""Loading the recorded Linkerd 1.7.5 corpus (``tests/data/linkerd_corpus``) and replaying
it through the sidecar's real parse -> map -> aggregate path, without a JVM."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ingest_sidecar.aggregate import IntervalAggregator
from ingest_sidecar.ingest import IngestCore
from ingest_sidecar.linkerd_names import NameMapper
from ingest_sidecar.statsd import parse_line
from meshalert.lineprotocol import Point

CORPUS = Path(__file__).resolve().parents[1] / "data" / "linkerd_corpus"
SITUATIONS = (
    "healthy",
    "slow",
    "retries_exhausted",
    "connection_refused",
    "endpoints_removed",
    "one_backend_down",
)
SERVICE = {
    "healthy": "web",
    "slow": "search",
    "retries_exhausted": "billing",
    "connection_refused": "ledger",
    "endpoints_removed": "catalog",
    "one_backend_down": "orders",
    "sampled_0_01": "web",
}


@dataclass(frozen=True)
class Recorded:
    t_s: float
    data: bytes

    @property
    def lines(self) -> list[str]:
        return self.data.decode("utf-8").split("\n")


@cache
def datagrams(situation: str) -> tuple[Recorded, ...]:
    with open(CORPUS / f"{situation}.jsonl") as f:
        return tuple(
            Recorded(float(row["t"]), row["data"].encode("utf-8")) for row in map(json.loads, f)
        )


@cache
def metrics_json(situation: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / f"{situation}.metrics.json").read_text())
    return data


def lines(situation: str) -> list[str]:
    return [line for d in datagrams(situation) for line in d.lines]


def names_with(situation: str, *needles: str) -> Counter[str]:
    """statsd line counts by ``name|type`` (value and rate dropped) containing every needle."""
    out: Counter[str] = Counter()
    for line in lines(situation):
        sample = parse_line(line)
        if all(n in sample.name for n in needles):
            out[f"{sample.name}|{sample.kind.value}"] += 1
    return out


def replay(situations: Iterable[str], mapper: NameMapper | None = None) -> list[Point]:
    """Every datagram of ``situations`` through :class:`IngestCore` into one interval."""
    core = IngestCore(mapper or NameMapper(), lambda: IntervalAggregator(seed=1))
    for situation in situations:
        for d in datagrams(situation):
            core.feed(d.data)
    aggregator, counts = core.rollover()
    assert counts.bad_total == 0, counts.bad
    return aggregator.flush(0, "corpus").points


def select(
    points: Iterable[Point], measurement: str, **tags: str
) -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
    for p in points:
        if p.measurement != measurement:
            continue
        ptags = dict(p.tags)
        if all(ptags.get(k) == v for k, v in tags.items()):
            yield ptags, dict(p.fields)
