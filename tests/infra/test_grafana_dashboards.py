"""infra/grafana/meshalert-{flux,influxql}.json: structure, and every query on the real stores.

Each panel's and variable's query is interpolated as Grafana does
(:mod:`tests.infra.grafana_macros`) and run on the real server of its language: Flux on
InfluxDB 2.7, InfluxQL on Debian's influxd 1.6.7, both holding twenty minutes of traffic
written by the real sidecar.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import FedInfluxDB1, FedInfluxDB2
from tests.infra.grafana_macros import (
    format_interval,
    go_duration,
    interpolate_flux,
    interpolate_influxql,
    rfc3339_nano,
)
from tests.infra.sidecar_traffic import INCIDENTS, NAMESPACE, SERVICES
from tests.infra.test_influxdb2_template import flux_rows, template_objects
from tests.meshalert.queries.fluxlsp import FluxLsp, errors_of, flux_lsp

__all__ = ["flux_lsp"]

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = {
    "flux": REPO / "infra" / "grafana" / "meshalert-flux.json",
    "influxql": REPO / "infra" / "grafana" / "meshalert-influxql.json",
}
BUILTINS = {"timeFilter", "interval", "__interval", "__interval_ms"}
INTERVAL_MS = 30_000
INCIDENT_SERVICE = {i.kind.value: i.service for i in INCIDENTS}
_VARIABLE_USE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]")


def load(language: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(DASHBOARDS[language].read_text())
    return parsed


def query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "text"]


def panel_service(panel: dict[str, Any]) -> str:
    """The service whose incident the panel's class shows (pipeline panels: any)."""
    title = panel["title"].lower()
    for kind, service in INCIDENT_SERVICE.items():
        if title.startswith(kind):
            return service
    return INCIDENT_SERVICE["failures"]


def time_range() -> tuple[datetime, datetime]:
    stop = datetime.now(UTC)
    return stop - timedelta(hours=1), stop


# --- Grafana's macros, checked against the values Grafana's own code produces -------------


def test_macro_formats_follow_grafana() -> None:
    assert [go_duration(ms) for ms in (500, 30_000, 60_000, 90_500, 3_600_000)] == [
        "500ms",
        "30s",
        "1m0s",
        "1m30.5s",
        "1h0m0s",
    ]
    assert [format_interval(ms) for ms in (0, 500, 30_000, 90_000, 7_200_000, 86_400_000)] == [
        "1ms",
        "500ms",
        "30s",
        "1m",
        "2h",
        "1d",
    ]
    moment = datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)
    assert rfc3339_nano(moment) == "2026-01-02T03:04:05.12Z"
    flux = interpolate_flux(
        "from(bucket: v.defaultBucket) |> range(start: v.timeRangeStart, stop: v.timeRangeStop)"
        ' |> filter(fn: (r) => r.service == "$service") |> aggregateWindow(every: v.windowPeriod)'
        " // $__interval $__interval_ms $other",
        start=moment,
        stop=moment + timedelta(hours=1),
        interval_ms=60_000,
        bucket="b",
        organization="o",
        variables={"service": "cart"},
    )
    assert flux == (
        'from(bucket: "b") |> range(start: 2026-01-02T03:04:05.12Z, stop: 2026-01-02T04:04:05.12Z)'
        ' |> filter(fn: (r) => r.service == "cart") |> aggregateWindow(every: 1m0s)'
        " // 1m 60000 $other"
    )
    influxql = interpolate_influxql(
        "SELECT x FROM m WHERE s = '${service}' AND $timeFilter GROUP BY time($__interval)"
        " -- $__interval_ms",
        start=datetime(2026, 1, 1, tzinfo=UTC),
        stop=datetime(2026, 1, 1, 1, tzinfo=UTC),
        interval_ms=10_000,
        variables={"service": "cart"},
    )
    assert influxql == (
        "SELECT x FROM m WHERE s = 'cart' AND time >= 1767225600000ms and time <= 1767229200000ms"
        " GROUP BY time(10s) -- 10000"
    )


# --- structure ------------------------------------------------------------------------------


@pytest.mark.parametrize("language", sorted(DASHBOARDS))
def test_dashboard_structure(language: str) -> None:
    dashboard = load(language)
    assert dashboard["uid"] == f"meshalert-{language}" and len(dashboard["uid"]) <= 40
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["title"]
    [ds_input] = dashboard["__inputs"]
    assert ds_input["type"] == "datasource" and ds_input["pluginId"] == "influxdb"
    datasource = {"type": "influxdb", "uid": "${" + ds_input["name"] + "}"}

    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"namespace", "service"}
    for variable in variables.values():
        assert variable["type"] == "query" and variable["datasource"] == datasource
        assert variable["query"] and not variable["multi"] and not variable["includeAll"]

    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        if panel["type"] == "text":
            assert panel["options"]["content"]
            continue
        assert panel["datasource"] == datasource
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["datasource"] == datasource and target["query"].strip()
            if language == "influxql":
                assert target["rawQuery"] is True  # else Grafana ignores "query" and builds one
            used = {
                next(g for g in m.groups() if g) for m in _VARIABLE_USE.finditer(target["query"])
            }
            assert used <= set(variables) | BUILTINS, (panel["title"], used)
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for word in ("latency", "failures", "endpoints", "retries", "sidecar", "alert history"):
        assert word in titles
    notes = " ".join(p["options"]["content"] for p in dashboard["panels"] if p["type"] == "text")
    assert "meshalert history" in notes


def test_panels_read_a_service_picked_by_the_variable() -> None:
    for language in DASHBOARDS:
        for panel in query_panels(load(language)):
            text = " ".join(t["query"] for t in panel["targets"])
            if panel["title"].lower().startswith(("latency", "failures", "endpoints", "retries")):
                assert "$service" in text and "$namespace" in text, (language, panel["title"])


# --- Flux on InfluxDB 2 -----------------------------------------------------------------------


def _flux(fed: FedInfluxDB2, text: str, service: str) -> str:
    start, stop = time_range()
    return interpolate_flux(
        text,
        start=start,
        stop=stop,
        interval_ms=INTERVAL_MS,
        bucket=fed.bucket,
        organization=fed.server.org,
        variables={"namespace": NAMESPACE, "service": service},
    )


def test_flux_panels_return_rows_on_influxdb2(fed_influxd2: FedInfluxDB2) -> None:
    server = fed_influxd2.server
    for panel in query_panels(load("flux")):
        service = panel_service(panel)
        for target in panel["targets"]:
            text = _flux(fed_influxd2, target["query"], service)
            rows = flux_rows(server.query_csv(text, annotations=False))
            assert rows, f"{panel['title']!r} returned no rows for {service}"


def test_flux_variables_list_namespaces_and_services(fed_influxd2: FedInfluxDB2) -> None:
    server = fed_influxd2.server
    variables = {v["name"]: v for v in load("flux")["templating"]["list"]}

    def values(name: str) -> set[str]:
        text = _flux(fed_influxd2, variables[name]["query"], "")
        return {r["_value"] for r in flux_rows(server.query_csv(text, annotations=False))}

    assert values("namespace") == {NAMESPACE}
    assert values("service") == {s.name for s in SERVICES}


def test_flux_queries_type_check_after_interpolation(flux_lsp: FluxLsp) -> None:
    dashboard = load("flux")
    texts = [v["query"] for v in dashboard["templating"]["list"]]
    texts += [t["query"] for p in query_panels(dashboard) for t in p["targets"]]
    start, stop = time_range()
    interpolated = [
        interpolate_flux(
            t,
            start=start,
            stop=stop,
            interval_ms=INTERVAL_MS,
            bucket="meshalert",
            organization="acme",
            variables={"namespace": NAMESPACE, "service": "cart"},
        )
        for t in texts
    ]
    for text, diagnostics in zip(interpolated, flux_lsp.check(interpolated), strict=True):
        assert errors_of(diagnostics) == [], text


# --- InfluxQL on InfluxDB 1.6.7 -------------------------------------------------------------------


def _influxql(text: str, service: str) -> str:
    start, stop = time_range()
    return interpolate_influxql(
        text,
        start=start,
        stop=stop,
        interval_ms=INTERVAL_MS,
        variables={"namespace": NAMESPACE, "service": service},
    )


def test_influxql_panels_return_rows_on_influxdb1(fed_influxd1: FedInfluxDB1) -> None:
    server, database = fed_influxd1.server, fed_influxd1.database
    for panel in query_panels(load("influxql")):
        service = panel_service(panel)
        for target in panel["targets"]:
            rows = server.rows(_influxql(target["query"], service), database)
            assert rows, f"{panel['title']!r} ({target['refId']}) returned no rows for {service}"


def test_influxql_panels_show_the_incidents(fed_influxd1: FedInfluxDB1) -> None:
    server, database = fed_influxd1.server, fed_influxd1.database
    panels = {p["title"]: p for p in query_panels(load("influxql"))}

    def peak(title: str, service: str, column: str) -> float:
        [target] = panels[title]["targets"]
        rows = server.rows(_influxql(target["query"], service), database)
        return max((float(r[column]) for r in rows if r[column] is not None), default=0.0)

    failing = INCIDENT_SERVICE["failures"]
    title = "Failures: failures per second per router"
    assert peak(title, failing, "failures_per_s") > 2 * peak(title, "catalog", "failures_per_s")
    storm = INCIDENT_SERVICE["retries"]
    title = "Retries: budget exhausted per window"
    assert peak(title, storm, "budget_exhausted") > 0
    assert peak(title, "cart", "budget_exhausted") == 0
    slow = INCIDENT_SERVICE["latency"]
    title = "Latency: p99 per router"
    assert peak(title, slow, "p99_ms") > 1.5 * peak(title, "cart", "p99_ms")


def test_influxql_variables_list_namespaces_and_services(fed_influxd1: FedInfluxDB1) -> None:
    server, database = fed_influxd1.server, fed_influxd1.database
    variables = {v["name"]: v for v in load("influxql")["templating"]["list"]}

    def values(name: str) -> set[str]:
        rows = server.rows(_influxql(variables[name]["query"], ""), database)
        return {str(r["value"]) for r in rows}

    assert values("namespace") == {NAMESPACE}
    assert values("service") == {s.name for s in SERVICES}


def test_flux_panels_are_the_influxdb2_template_cells() -> None:
    """One set of Flux queries: the Grafana panels are the template's cells with Grafana's
    names for the bucket and variables, so the template's incident checks cover them too."""
    cells = {
        chart["name"]: chart["queries"][0]["query"]
        for obj in template_objects()
        for chart in obj["spec"].get("charts", [])
        if chart.get("queries")
    }
    panels = {p["title"]: p["targets"][0]["query"] for p in query_panels(load("flux"))}
    assert set(panels) == set(cells)
    for title, text in panels.items():
        expected = (
            cells[title]
            .replace("v.bucket", "v.defaultBucket")
            .replace("v.namespace", '"$namespace"')
            .replace("v.service", '"$service"')
        )
        assert text == expected, title


def test_influxql_history_panels_show_the_engine_transitions(fed_influxd1: FedInfluxDB1) -> None:
    """InfluxDB 1.6.7 holds the points the engine's history sink wrote while it evaluated
    the traffic; the panels show exactly the picked service's transitions."""
    server, database = fed_influxd1.server, fed_influxd1.database
    panels = {p["title"]: p for p in query_panels(load("influxql"))}
    service = INCIDENT_SERVICE["failures"]
    made = [t for t in fed_influxd1.history if t.service == f"{NAMESPACE}/{service}"]
    assert [(t.from_state, t.to_state) for t in made if t.alert_class == "failures"] == [
        ("ok", "pending"),
        ("pending", "firing"),
        ("firing", "ok"),
    ]
    [table] = panels["Alert history: transitions"]["targets"]
    rows = server.rows(_influxql(table["query"], service), database)
    assert [(r["class"], r["from_state"], r["to_state"]) for r in rows] == [
        (t.alert_class, t.from_state, t.to_state) for t in reversed(made)
    ]
    assert [int(r["state_code"]) for r in rows if r["class"] == "failures"] == [0, 2, 1]
    [timeline] = panels["Alert history: state per class"]["targets"]
    states = server.rows(_influxql(timeline["query"], service), database)
    assert {int(r["state"]) for r in states if r["state"] is not None} == {0, 1, 2}
    assert server.rows(_influxql(table["query"], "no-such-service"), database) == []
