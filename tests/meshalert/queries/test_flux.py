"""Flux rendering: golden files, structure, and the Flux language server's verdict."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshalert.alert_classes import AlertClass
from meshalert.queries.flux import flux_time, record_member, render_flux
from meshalert.queries.model import (
    CLASS_SELECTS,
    Aggregate,
    ClassQuery,
    ServiceRef,
    class_query,
)
from tests.meshalert.queries.fluxlsp import FluxLsp, errors_of, flux_lsp

__all__ = ["flux_lsp"]

GOLDEN = Path(__file__).parent / "golden"
END_MS = 1_704_067_500_000  # 2024-01-01T00:05:00Z
BUCKET = "meshalert"

GOLDEN_QUERIES: dict[str, ClassQuery] = {
    "latency": class_query(AlertClass.LATENCY, window_ms=300_000, end_ms=END_MS),
    "failures": class_query(AlertClass.FAILURES, window_ms=300_000, end_ms=END_MS),
    "endpoints": class_query(AlertClass.ENDPOINTS, window_ms=60_000, end_ms=END_MS),
    "retries": class_query(AlertClass.RETRIES, window_ms=300_000, end_ms=END_MS),
    "ingest": class_query(AlertClass.INGEST, window_ms=6 * 3_600_000, end_ms=END_MS),
    "failures_services": class_query(
        AlertClass.FAILURES,
        window_ms=120_000,
        end_ms=END_MS + 250,
        services=["production/checkout", "web"],
    ),
}


def rendered(name: str) -> str:
    text, params = render_flux(GOLDEN_QUERIES[name], bucket=BUCKET)
    assert params == {}
    return text


@pytest.mark.parametrize("name", sorted(GOLDEN_QUERIES))
def test_matches_golden_file(name: str) -> None:
    path = GOLDEN / f"{name}.flux"
    text = rendered(name)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} missing: run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"regenerate with UPDATE_GOLDEN=1: {path}"


def test_every_golden_file_is_a_rendered_query() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.flux")) == sorted(GOLDEN_QUERIES)


@pytest.mark.node
def test_goldens_pass_the_flux_language_server_without_any_diagnostic(
    flux_lsp: FluxLsp,
) -> None:
    names = sorted(GOLDEN_QUERIES)
    results = flux_lsp.check([(GOLDEN / f"{n}.flux").read_text() for n in names])
    assert {n: [str(d) for d in r] for n, r in zip(names, results, strict=True)} == {
        n: [] for n in names
    }


def test_one_yield_per_select_named_after_it() -> None:
    for query in GOLDEN_QUERIES.values():
        text, _ = render_flux(query, bucket=BUCKET)
        yields = re.findall(r'\|> yield\(name: "([^"]+)"\)', text)
        assert yields == [s.name for s in query.selects]
        assert text.count(f"from(bucket: {_q(BUCKET)})") == len(query.selects)


def test_window_is_start_inclusive_stop_exclusive_range() -> None:
    text = rendered("failures_services")
    assert 'windowStart = time(v: "2024-01-01T00:03:00.250Z")' in text
    assert 'windowStop = time(v: "2024-01-01T00:05:00.250Z")' in text
    assert text.count("|> range(start: windowStart, stop: windowStop)") == 6


def test_sums_group_by_the_select_tags_and_gauges_take_the_latest_per_host() -> None:
    latency = rendered("latency")
    assert '|> group(columns: ["namespace", "service", "router", "le"])\n    |> sum()' in latency
    endpoints = rendered("endpoints")
    balancer = '["namespace", "service", "router", "host", "client"]'
    assert (
        endpoints.count(
            f"|> last()\n    |> group(columns: {balancer})\n"
            '    |> sort(columns: ["_time"])\n    |> last()'
        )
        == 2
    )
    # The learned endpoint count: the largest size over the lookback, per balancer.
    assert "lookbackStart = time(v: " in endpoints
    assert (
        "|> range(start: lookbackStart, stop: windowStop)" in endpoints
        and f"|> group(columns: {balancer})\n    |> max()" in endpoints
    )
    aggregates = [s.aggregate for s in GOLDEN_QUERIES["endpoints"].selects]
    assert aggregates == [Aggregate.LAST, Aggregate.LAST, Aggregate.MAX]
    assert "|> min()" in rendered("retries")


def test_tag_conditions() -> None:
    failures = rendered("failures")
    assert (
        'r.scope == "service" and not exists r.exception and not exists r.failure_flag' in failures
    )
    assert (
        'r.scope == "service" and r.exception =='
        ' "com_twitter_finagle_naming_buoyant_RichConnectionFailedExceptionWithPath"' in failures
    )
    assert (
        'r._measurement == "linkerd_service_creation_failures"' in failures
        and 'r.scope == "client" and not exists r.exception' in failures
    )
    assert '(r.scope == "client" or r.scope == "service")' in rendered("retries")


def test_services_restriction_matches_namespace_or_its_absence() -> None:
    text = rendered("failures_services")
    expected = (
        '(not exists r.namespace and r.service == "web")'
        ' or (r.namespace == "production" and r.service == "checkout")'
    )
    assert text.count(f"|> filter(fn: (r) => {expected})") == 6
    assert "r.namespace" not in rendered("failures")


def test_bucket_is_escaped() -> None:
    query = GOLDEN_QUERIES["latency"]
    text, _ = render_flux(query, bucket='evil") |> drop(columns: ["x"]) //')
    assert 'from(bucket: "evil\\") |> drop(columns: [\\"x\\"]) //")' in text


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (END_MS, "2024-01-01T00:05:00Z"),
        (END_MS + 7, "2024-01-01T00:05:00.007Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
    ],
)
def test_flux_time(ms: int, text: str) -> None:
    assert flux_time(ms) == text


def test_flux_time_out_of_range() -> None:
    with pytest.raises(ValueError, match="outside the range"):
        flux_time(10**18)


@pytest.mark.parametrize(
    ("tag", "member"),
    [("scope", "r.scope"), ("le", "r.le"), ("exists", 'r["exists"]'), ("a-b", 'r["a-b"]')],
)
def test_record_member(tag: str, member: str) -> None:
    assert record_member(tag) == member


def _q(value: str) -> str:
    return '"' + value + '"'


names = st.lists(
    st.one_of(
        st.sampled_from(['"', "\\", "$", "{", "${", "}", "\n", "\t", "/", " or true or ", "é"]),
        st.characters(codec="utf-8"),
    ),
    min_size=1,
    max_size=12,
).map("".join)
services = st.lists(st.tuples(st.one_of(st.just(""), names), names), min_size=1, max_size=3)


@pytest.mark.node
@given(services=services, bucket=names)
@settings(max_examples=20, deadline=None)
def test_hostile_names_render_valid_flux_that_carries_them_verbatim(
    flux_lsp: FluxLsp, services: list[tuple[str, str]], bucket: str
) -> None:
    refs = [ServiceRef(ns, svc) for ns, svc in services]
    texts = [
        render_flux(
            class_query(cls, window_ms=60_000, end_ms=END_MS, services=refs), bucket=bucket
        )[0]
        for cls in CLASS_SELECTS
    ]
    assert [errors_of(r) for r in flux_lsp.check(texts)] == [[] for _ in texts]
    for report in flux_lsp.strings(texts):
        assert report.parse_errors == ()
        assert report.interpolations == 0
        expected = {bucket} | {r.service for r in refs} | {r.namespace for r in refs if r.namespace}
        assert expected <= set(report.strings)


@pytest.mark.parametrize("lookback_ms", [30_000, 60_000])
def test_a_lookback_no_longer_than_the_window_reads_the_window(lookback_ms: int) -> None:
    query = class_query(
        AlertClass.ENDPOINTS, window_ms=60_000, end_ms=END_MS, lookback_ms=lookback_ms
    )
    text, _ = render_flux(query, bucket=BUCKET)
    assert "lookbackStart" not in text
    assert text.count("range(start: windowStart, stop: windowStop)") == len(query.selects)


def test_a_longer_lookback_starts_only_the_lookback_select_earlier() -> None:
    query = class_query(AlertClass.ENDPOINTS, window_ms=60_000, end_ms=END_MS, lookback_ms=60_001)
    text, _ = render_flux(query, bucket=BUCKET)
    assert 'lookbackStart = time(v: "2024-01-01T00:03:59.999Z")' in text
    assert text.count("range(start: lookbackStart, stop: windowStop)") == 1
    assert text.count("range(start: windowStart, stop: windowStop)") == len(query.selects) - 1


def test_a_query_without_selects_renders_only_its_window() -> None:
    text, _ = render_flux(ClassQuery(AlertClass.FAILURES, 60_000, END_MS, ()), bucket=BUCKET)
    assert text == (
        "// meshalert failures window [2024-01-01T00:04:00Z, 2024-01-01T00:05:00Z)\n"
        'windowStart = time(v: "2024-01-01T00:04:00Z")\n'
        'windowStop = time(v: "2024-01-01T00:05:00Z")\n'
    )
