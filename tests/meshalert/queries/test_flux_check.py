"""The Node harness really runs the Flux language server and reports what it finds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.meshalert.queries.fluxlsp import CHECKER, REPO, FluxLsp, errors_of, flux_lsp

__all__ = ["flux_lsp"]

pytestmark = pytest.mark.node

VALID = """from(bucket: "meshalert")
    |> range(start: time(v: "2024-01-01T00:00:00Z"), stop: time(v: "2024-01-01T00:05:00Z"))
    |> filter(fn: (r) => r._measurement == "linkerd_requests" and r._field == "count")
    |> group(columns: ["namespace", "service"])
    |> sum()
    |> yield(name: "requests")
"""


def test_valid_query_has_no_diagnostics(flux_lsp: FluxLsp) -> None:
    [diagnostics] = flux_lsp.check([VALID])
    assert diagnostics == []
    assert flux_lsp.version == "0.8.40"


@pytest.mark.parametrize(
    ("text", "expected", "line"),
    [
        ('from(bucket: "b"\n    |> range(start: -1h)\n', "expected RPAREN", 0),
        (
            'from(bucket: "b")\n    |> range(start: -1h)\n    |> summ()\n',
            "undefined identifier summ",
            2,
        ),
        (
            'from(bucket: "b")\n    |> range(start: -1h)\n    |> quantile(q: "0.99")\n',
            "expected float but found string (argument q)",
            2,
        ),
        ('x = "a" + 1\n', "expected string but found int", 0),
    ],
    ids=["syntax", "undefined-function", "argument-type", "operand-type"],
)
def test_errors_are_reported_with_position(
    flux_lsp: FluxLsp, text: str, expected: str, line: int
) -> None:
    [diagnostics] = flux_lsp.check([text])
    errors = [d for d in diagnostics if d.severity == "error"]
    assert any(expected in d.message for d in errors), errors
    assert any(d.line == line for d in errors if expected in d.message)


def test_batch_results_stay_in_order_and_apart(flux_lsp: FluxLsp) -> None:
    # The server republishes diagnostics of every open document; each result must only
    # carry its own query's errors.
    texts = [VALID, 'from(bucket: "b") |> range(start: -1h) |> nope()', VALID]
    results = flux_lsp.check(texts)
    assert [len(errors_of(r)) for r in results] == [0, 1, 0]


def test_string_report_gives_parsed_literal_values(flux_lsp: FluxLsp) -> None:
    [report] = flux_lsp.strings(['x = "a\\"b\\\\c\\${d}\\n"\ny = "${x}"\n'])
    assert report.strings == ('a"b\\c${d}\n',)
    assert report.interpolations == 1
    assert report.parse_errors == ()


def test_command_line_reads_files_and_sets_exit_status(flux_lsp: FluxLsp, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.flux", tmp_path / "bad.flux"
    good.write_text(VALID)
    bad.write_text('from(bucket: "b") |> range(start: -1h) |> quantile(q: "0.5")\n')
    run = subprocess.run(
        ["node", str(CHECKER), str(good), str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    out = json.loads(run.stdout)
    assert [r["name"] for r in out["results"]] == [str(good), str(bad)]
    assert out["results"][0]["diagnostics"] == []
    assert out["results"][1]["diagnostics"][0]["severity"] == "error"
    ok = subprocess.run(
        ["node", str(CHECKER)],
        input=json.dumps([VALID]),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
