"""infra/influxdb2/meshalert-template.yml on the real InfluxDB 2.7 with its Flux engine.

The template is applied through the server's own ``/api/v2/templates/apply`` (what
``influx apply`` calls), the dashboard and variables are read back from the server, and
every cell's query runs there the way the InfluxDB UI runs it (an ``option v = {...}`` with
the time range, window period and dashboard variables in front of the cell's text) over
twenty minutes of traffic the real sidecar wrote. Each query is also type-checked by the
official Flux language server.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.influxd2 import Influxd2Error, Influxd2Server
from tests.infra.conftest import FedInfluxDB2
from tests.infra.sidecar_traffic import INCIDENTS, NAMESPACE, SERVICES
from tests.meshalert.queries.fluxlsp import FluxLsp, errors_of, flux_lsp

__all__ = ["flux_lsp"]

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "influxdb2" / "meshalert-template.yml"
WINDOW_PERIOD = "30s"
INCIDENT_SERVICE = {i.kind.value: i.service for i in INCIDENTS}
CELL_CLASS = {
    "Latency: p99 per router": "latency",
    "Requests per second per router": "failures",
    "Failures: failure ratio per router": "failures",
    "Endpoints: available and size per balancer": "endpoints",
    "Retries: retry ratio per router": "retries",
    "Retries: budget exhausted per window": "retries",
}
"""Per-service cells, with the class whose incident service they must show rows for."""
PIPELINE_CELLS = {
    "Sidecar: lines, bad, dropped, write errors",
    "Sidecar: spool backlog",
    "Alert history: pipeline freshness per host",
}
HISTORY_CELLS = {"Alert history: transitions", "Alert history: state per class"}
"""Cells over ``meshalert_alert``, the points the engine's history sink wrote."""


def template_objects() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(TEMPLATE.read_text()) if doc]


def flux_rows(text: str) -> list[dict[str, str]]:
    """Rows of an unannotated CSV answer (one header per table block)."""
    rows: list[dict[str, str]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = [line for line in block.split("\n") if line]
        if not lines:
            continue
        header, *data = list(csv.reader(io.StringIO("\n".join(lines))))
        rows += [dict(zip(header, values, strict=True)) for values in data]
    return rows


def flux_record(values: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in values.items()) + "}"


def ui_prelude(bucket: str, service: str) -> str:
    """What the InfluxDB UI puts in front of a cell's query: ``v`` holds the dashboard's
    time range, window period and variable values."""
    values = {
        "timeRangeStart": "-1h",
        "timeRangeStop": "now()",
        "windowPeriod": WINDOW_PERIOD,
        "bucket": json.dumps(bucket),
        "namespace": json.dumps(NAMESPACE),
        "service": json.dumps(service),
    }
    return f"option v = {flux_record(values)}\n"


def with_prelude(prelude: str, text: str) -> str:
    """``text`` with ``prelude`` after its imports (Flux wants imports first; the UI sends
    ``v`` apart from the text, as an ``extern`` file, which has the same effect)."""
    lines = text.split("\n")
    cut = 0
    for i, line in enumerate(lines):
        if line.startswith("import ") or (not line.strip() and cut == i):
            cut = i + 1
        else:
            break
    return "\n".join(lines[:cut]) + "\n" + prelude + "\n".join(lines[cut:])


@pytest.fixture(scope="module")
def applied(fed_influxd2: FedInfluxDB2) -> Iterator[dict[str, Any]]:
    """The template applied to the server's org; its stack is uninstalled afterwards."""
    server = fed_influxd2.server
    answer = server.api(
        "POST",
        "/api/v2/templates/apply",
        {
            "orgID": server.org_id,
            "dryRun": False,
            "template": {"contentType": "json", "contents": template_objects()},
        },
    )
    yield answer
    stack = answer.get("stackID")
    if stack and server.running:
        server.api("POST", f"/api/v2/stacks/{stack}/uninstall", {}, params={"orgID": server.org_id})


def _dashboard_cells(server: Influxd2Server, applied: Mapping[str, Any]) -> list[dict[str, Any]]:
    [summary] = applied["summary"]["dashboards"]
    # The summary gives IDs as integers; the API takes them as 16 hex digits.
    dashboard = server.api(
        "GET", f"/api/v2/dashboards/{int(summary['id']):016x}", params={"include": "properties"}
    )
    cells: list[dict[str, Any]] = dashboard["cells"]
    return cells


def _cell_queries(cells: list[dict[str, Any]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for cell in cells:
        for query in cell["properties"].get("queries", []):
            out[cell["name"]] = query["text"]
    return out


def _variables(server: Influxd2Server) -> dict[str, dict[str, Any]]:
    found = server.api("GET", "/api/v2/variables", params={"orgID": server.org_id})
    return {v["name"]: v for v in found["variables"]}


def test_dry_run_reports_no_errors_and_the_objects(fed_influxd2: FedInfluxDB2) -> None:
    server = fed_influxd2.server
    answer = server.api(
        "POST",
        "/api/v2/templates/apply",
        {
            "orgID": server.org_id,
            "dryRun": True,
            "template": {"contentType": "json", "contents": template_objects()},
        },
    )
    assert not answer.get("errors"), answer["errors"]
    assert [d["name"] for d in answer["summary"]["dashboards"]] == ["meshalert"]
    assert sorted(v["name"] for v in answer["summary"]["variables"]) == [
        "bucket",
        "namespace",
        "service",
    ]


def test_a_broken_query_is_refused_by_the_server(fed_influxd2: FedInfluxDB2) -> None:
    """The cell test below is only meaningful if the server really runs the cell text."""
    with pytest.raises(Influxd2Error, match="400"):
        fed_influxd2.server.query_csv(
            with_prelude(ui_prelude(fed_influxd2.bucket, "cart"), "from(bucket: )")
        )


def test_applied_dashboard_has_a_cell_per_class_and_the_pipeline(
    fed_influxd2: FedInfluxDB2, applied: dict[str, Any]
) -> None:
    cells = _dashboard_cells(fed_influxd2.server, applied)
    queries = _cell_queries(cells)
    assert set(queries) == set(CELL_CLASS) | PIPELINE_CELLS | HISTORY_CELLS
    assert set(CELL_CLASS.values()) == {"latency", "failures", "endpoints", "retries"}
    notes = [
        c["properties"].get("note", "") for c in cells if c["properties"]["type"] == "markdown"
    ]
    assert any("meshalert history" in note for note in notes)  # where the alert history is


def test_every_cell_returns_rows_for_the_simulated_traffic(
    fed_influxd2: FedInfluxDB2, applied: dict[str, Any]
) -> None:
    server = fed_influxd2.server
    queries = _cell_queries(_dashboard_cells(server, applied))
    for name, text in queries.items():
        service = INCIDENT_SERVICE[CELL_CLASS[name]] if name in CELL_CLASS else "cart"
        rows = flux_rows(
            server.query_csv(
                with_prelude(ui_prelude(fed_influxd2.bucket, service), text), annotations=False
            )
        )
        assert rows, f"cell {name!r} returned no rows for {service}"
        for row in rows:
            if "_value" in row:
                assert math.isfinite(float(row["_value"])), (name, row)


def _series(server: Influxd2Server, bucket: str, text: str, service: str) -> list[dict[str, str]]:
    return flux_rows(
        server.query_csv(with_prelude(ui_prelude(bucket, service), text), annotations=False)
    )


def test_cells_show_each_incident_on_its_service(
    fed_influxd2: FedInfluxDB2, applied: dict[str, Any]
) -> None:
    """Not just rows: each class's cell sets its incident service apart from a quiet one."""
    server, bucket = fed_influxd2.server, fed_influxd2.bucket
    queries = _cell_queries(_dashboard_cells(server, applied))

    def peak(cell: str, service: str, **match: str) -> float:
        rows = _series(server, bucket, queries[cell], service)
        values = [float(r["_value"]) for r in rows if all(r.get(k) == v for k, v in match.items())]
        return max(values, default=0.0)

    quiet = "cart"
    slow = INCIDENT_SERVICE["latency"]
    assert peak("Latency: p99 per router", slow) > 1.5 * peak("Latency: p99 per router", quiet)
    failing = INCIDENT_SERVICE["failures"]
    ratio = "Failures: failure ratio per router"
    assert peak(ratio, failing) > 2 * peak(ratio, INCIDENT_SERVICE["latency"])
    storm = INCIDENT_SERVICE["retries"]
    assert peak("Retries: budget exhausted per window", storm) > 0
    assert peak("Retries: budget exhausted per window", quiet) == 0
    lost = INCIDENT_SERVICE["endpoints"]
    endpoints = "Endpoints: available and size per balancer"
    rows = _series(server, bucket, queries[endpoints], lost)
    available = [
        float(r["_value"])
        for r in rows
        if r["_measurement"] == "linkerd_loadbalancer_available" and r["router"] == "incoming"
    ]
    sizes = {
        float(r["_value"])
        for r in rows
        if r["_measurement"] == "linkerd_loadbalancer_size" and r["router"] == "incoming"
    }
    assert min(available) < max(sizes)  # endpoints went missing during the incident


def test_pipeline_cells_read_the_sidecar_health_series(
    fed_influxd2: FedInfluxDB2, applied: dict[str, Any]
) -> None:
    server, bucket = fed_influxd2.server, fed_influxd2.bucket
    queries = _cell_queries(_dashboard_cells(server, applied))
    lines = _series(server, bucket, queries["Sidecar: lines, bad, dropped, write errors"], "cart")
    by_field: dict[str, float] = {}
    for row in lines:
        by_field[row["_field"]] = by_field.get(row["_field"], 0.0) + float(row["_value"])
    assert by_field["lines"] > 0 and by_field["bad"] == 0 and by_field["dropped"] == 0
    assert {row["host"] for row in lines} == {"node-a", "node-b"}
    fresh = _series(server, bucket, queries["Alert history: pipeline freshness per host"], "cart")
    assert {row["host"] for row in fresh} == {"node-a", "node-b"}
    for row in fresh:
        assert 0 <= float(row["age_s"]) < 3600


def test_history_cells_show_the_transitions_the_engine_wrote(
    fed_influxd2: FedInfluxDB2, applied: dict[str, Any]
) -> None:
    """The engine ran over the traffic with its history sink on this bucket: the cells show
    each of the picked service's transitions once, newest first, and its state over time."""
    server, bucket = fed_influxd2.server, fed_influxd2.bucket
    queries = _cell_queries(_dashboard_cells(server, applied))
    service = INCIDENT_SERVICE["failures"]
    made = [t for t in fed_influxd2.history if t.service == f"{NAMESPACE}/{service}"]
    # The failures incident goes through every state and back within the traffic.
    assert [(t.from_state, t.to_state) for t in made if t.alert_class == "failures"] == [
        ("ok", "pending"),
        ("pending", "firing"),
        ("firing", "ok"),
    ]
    rows = _series(server, bucket, queries["Alert history: transitions"], service)
    shown = [(r["class"], r["from_state"], r["to_state"]) for r in rows]
    assert shown == [(t.alert_class, t.from_state, t.to_state) for t in reversed(made)]
    firing = [r for r in rows if r["to_state"] == "firing"]
    assert firing and all(float(r["value"]) > float(r["threshold"]) for r in firing)
    assert all(r["threshold_source"] == "default" for r in rows)
    state = _series(server, bucket, queries["Alert history: state per class"], service)
    codes = [int(float(r["_value"])) for r in state if r["class"] == "failures"]
    assert codes == [1, 2, 0]
    quiet = _series(server, bucket, queries["Alert history: transitions"], "no-such-service")
    assert quiet == []


def test_variables_list_the_bucket_namespace_and_services(
    fed_influxd2: FedInfluxDB2, applied: dict[str, Any]
) -> None:
    server, bucket = fed_influxd2.server, fed_influxd2.bucket
    variables = _variables(server)
    prelude = ui_prelude(bucket, "")

    def values(name: str) -> set[str]:
        text = variables[name]["arguments"]["values"]["query"]
        return {
            row["_value"]
            for row in flux_rows(server.query_csv(with_prelude(prelude, text), annotations=False))
        }

    assert bucket in values("bucket")
    assert NAMESPACE in values("namespace")
    assert values("service") == {s.name for s in SERVICES}


def test_every_query_type_checks_in_the_flux_language_server(flux_lsp: FluxLsp) -> None:
    texts: list[str] = []
    for obj in template_objects():
        spec = obj["spec"]
        if obj["kind"] == "Variable":
            texts.append(spec["query"])
        for chart in spec.get("charts", []):
            texts += [q["query"] for q in chart.get("queries", [])]
    assert len(texts) == 3 + len(CELL_CLASS) + len(PIPELINE_CELLS) + len(HISTORY_CELLS)
    prelude = ui_prelude("meshalert", "cart")
    for text, diagnostics in zip(
        texts, flux_lsp.check([with_prelude(prelude, t) for t in texts]), strict=True
    ):
        assert errors_of(diagnostics) == [], text
