"""``meshalert run`` as an operator meets it: the documented first run with ``simulate``,
the start-up warm-up, start-up checks, one spool per store, a quiet terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import sqlite3
import subprocess
import time
from collections import Counter
from contextlib import closing
from datetime import datetime
from pathlib import Path

from tests.fixtures.influxd import free_port
from tests.meshalert_cli.cli import Background, clean_env, command, meshalert, wait_for

SHORT_RULES = """
defaults:
  latency:   {above_ms: 500, window: 4s, for: 2s}
  failures:  {rate_above: 0.05, min_requests: 20, window: 4s, for: 2s}
  endpoints: {available_ratio_below: 0.7, window: 3s, for: 2s}
  retries:   {ratio_above: 0.2, window: 4s, for: 2s}
"""
FAST = ["--listen", "127.0.0.1:0", "--eval-interval", "1s", "--flush-interval", "1s"]


def _statsd(run: Background) -> str:
    return str(run.wait_event("meshalert.started")["statsd"])


def _json(args: list[str], cwd: Path) -> object:
    done = meshalert(args, cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_run_and_simulate_until_stopped_ends_with_every_alert_resolved(tmp_path: Path) -> None:
    """README's first run, time-compressed: the simulator keeps sending until it is stopped,
    so every window recovers and all four alerts resolve while it runs."""
    (tmp_path / "rules.yaml").write_text(SHORT_RULES)
    run = Background(["run", *FAST, "--rules", "rules.yaml"], tmp_path, clean_env(), "run")
    sim = None
    try:
        target = _statsd(run)
        sim = Background(
            ["simulate", "--target", target, "--incidents-at", "3s", "--incident-length", "6s",
             "--gauge-interval", "1s", "--sample-rate", "0.5"],
            tmp_path, clean_env(), "sim",
        )  # fmt: skip

        def all_fired_and_resolved() -> bool:
            history = _json(["history", "--json"], tmp_path)
            assert isinstance(history, list)
            fired = {h["class"] for h in history if h["to"] == "firing"}
            return len(fired) == 4 and _json(["status", "--json"], tmp_path) == []

        wait_for(all_fired_and_resolved, 120, "four alerts to fire and resolve")
        assert sim.proc.poll() is None, "simulate must keep sending until stopped"
        assert "sending to " + target + " until Ctrl-C" in sim.stdout
        assert sim.stop(signal.SIGINT) == 0
        assert "sent " in sim.stdout and "lines in" in sim.stdout
        assert "no_data: keep" in sim.stderr
        status = meshalert(["status"], tmp_path)
        assert status.stdout.startswith("all OK: "), status.stdout
        # MESHALERT_HISTORY_TO_STORE is unset: on for the embedded store, so the store holds
        # every class's transitions as meshalert_alert points for the dashboards.
        with closing(sqlite3.connect(tmp_path / "meshalert.db")) as db:
            points = db.execute(
                "SELECT s.tags_json, p.value FROM points p JOIN series s ON s.id = p.series_id"
                " WHERE s.measurement = 'meshalert_alert' AND p.field = 'state_code'"
            ).fetchall()
        codes = {(json.loads(tags)["class"], int(code)) for tags, code in points}
        assert {cls for cls, code in codes if code == 2} == fired_classes(tmp_path)
        assert {cls for cls, code in codes if code == 0} == fired_classes(tmp_path)
    finally:
        if sim is not None:
            sim.stop()
        assert run.stop() == 0


def fired_classes(cwd: Path) -> set[str]:
    history = _json(["history", "--json"], cwd)
    assert isinstance(history, list)
    return {h["class"] for h in history if h["to"] == "firing"}


def test_no_judgement_before_a_full_window_has_passed(tmp_path: Path) -> None:
    """With the default 5m/1m windows, the first cycles after start-up judge nothing (a
    failure burst in the first seconds must not set a service pending)."""
    run = Background(["run", *FAST], tmp_path, clean_env(), "run")
    try:
        target = _statsd(run)
        started = run.named("meshalert.started")[0]
        sim = meshalert(
            ["simulate", "--target", target, "--incidents-at", "0s", "--incident-length", "4s",
             "--duration", "4s", "--gauge-interval", "1s", "--sample-rate", "0.5"],
            tmp_path,
        )  # fmt: skip
        assert sim.returncode == 0, sim.stderr
        time.sleep(1.5)
        warming = run.named("evaluation.warming_up")
        assert warming and warming[0]["classes"] == ["latency", "failures", "endpoints", "retries"]
        start = datetime.fromisoformat(started["timestamp"].replace("Z", "+00:00"))
        ready = {k: datetime.fromisoformat(v) for k, v in warming[0]["ready_at"].items()}
        assert abs((ready["latency"] - start).total_seconds() - 300) < 5
        assert abs((ready["endpoints"] - start).total_seconds() - 60) < 5
        assert run.named("evaluation.cycle") == []
        assert _json(["status", "--json", "--all"], tmp_path) == []
    finally:
        assert run.stop() == 0


def test_start_up_says_what_it_cannot_reach_and_errors_are_not_repeated(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(SHORT_RULES.replace("4s", "1s").replace("3s", "1s"))
    store_port, hook_port = free_port(), free_port()
    env = clean_env(
        {
            "MESHALERT_STORE": f"influxdb1://127.0.0.1:{store_port}/linkerd",
            "MESHALERT_WEBHOOK_URL": f"http://127.0.0.1:{hook_port}/hook",
            "MESHALERT_SNS_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:pages",
        }
    )
    run = Background(["run", *FAST, "--rules", "rules.yaml"], tmp_path, env, "run")
    try:
        target = _statsd(run)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            host, port = target.rsplit(":", 1)
            for _ in range(5):  # something to spool, flush after flush
                sock.sendto(b"linkerd.rt.outgoing.service.svc.a.requests:1|c", (host, int(port)))
                time.sleep(1)
    finally:
        assert run.stop() == 0
    plain = [line for line in run.stderr.splitlines() if line.startswith("meshalert run: ")]
    assert plain[0].startswith(
        f"meshalert run: cannot reach the store influxdb1://127.0.0.1:{store_port}/linkerd: "
    )
    assert "Connection refused" in plain[0] and "spool" in plain[0]
    # SNS: the region comes from the ARN (no AWS_REGION needed); credentials are missing.
    assert plain[1].startswith("meshalert run: cannot reach the sns channel: no AWS credentials")
    assert plain[2].startswith(
        f"meshalert run: cannot reach the webhook channel: 127.0.0.1:{hook_port} "
        "Connection refused."
    )
    assert len(plain) == 3
    # Five cycles and five flushes failed the same way; each problem is logged once.
    problems = Counter(
        (e["event"], e.get("error")) for e in run.events() if e["level"] in ("warning", "error")
    )
    assert problems, run.stderr
    assert "evaluation.query_failed" in {event for event, _ in problems}
    assert "store_write_failed_spooling" in {event for event, _ in problems}
    assert set(problems.values()) == {1}, problems


def _sqlite_measurements(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT DISTINCT measurement FROM series")}


def test_a_run_against_another_store_does_not_replay_the_first_stores_spool(
    tmp_path: Path,
) -> None:
    dead = f"influxdb1://127.0.0.1:{free_port()}/linkerd"
    first = Background(["run", *FAST, "--store", dead], tmp_path, clean_env(), "first")
    try:
        host, port = _statsd(first).rsplit(":", 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(
                b"linkerd.rt.outgoing.service.svc.spoolcheck.requests:5|c", (host, int(port))
            )
        wait_for(
            lambda: any(f["spooled_batches"] > 0 for f in first.named("sidecar_flush")),
            30,
            "a spooled batch",
        )
    finally:
        assert first.stop() == 0
    spooled = first.named("sidecar_stopped")[0]["spool_batches_left"]
    assert spooled >= 1

    second = Background(
        ["run", *FAST, "--store", "sqlite:///./other.db"], tmp_path, clean_env(), "second"
    )
    try:
        _statsd(second)
        assert second.named("sidecar_started")[0]["spool_replay_batches"] == 0
    finally:
        assert second.stop() == 0
    assert "linkerd_requests" not in _sqlite_measurements(tmp_path / "other.db")

    again = Background(["run", *FAST, "--store", dead], tmp_path, clean_env(), "again")
    try:
        _statsd(again)
        assert again.named("sidecar_started")[0]["spool_replay_batches"] == spooled
    finally:
        assert again.stop() == 0


def _terminal_output(env: dict[str, str], cwd: Path, seconds: float) -> str:
    """``meshalert run`` with its stderr on a pseudo-terminal, as in an operator's shell."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*command(), "run", *FAST, "--rules", "rules.yaml"], cwd=cwd, env=env,
        stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                chunks.append(os.read(master, 65536))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        try:
            while select.select([master], [], [], 0.2)[0]:
                chunks.append(os.read(master, 65536))
        except OSError:  # EIO once the child side is closed
            pass
        os.close(master)
    return b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_no_line_per_flush_or_cycle(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(SHORT_RULES)
    quiet = _terminal_output(clean_env(), tmp_path, 8)
    assert "meshalert.started" in quiet
    assert "sidecar_flush" not in quiet and "evaluation.cycle" not in quiet
    debug = _terminal_output(clean_env({"MESHALERT_LOG_LEVEL": "debug"}), tmp_path, 8)
    assert "sidecar_flush" in debug and "evaluation.cycle" in debug
