"""``meshalert run`` keeps alerting whatever a datagram names: a service key with several
slashes, control characters, shell metacharacters. Real UDP, real HTTP, a real subprocess."""

from __future__ import annotations

import json
import shlex
import socket
import time
from pathlib import Path

import pytest

from tests.e2e.harness import MeshalertRun, base_env, cli, wait_for
from tests.fixtures.http_server import RecordingHttpServer

pytestmark = pytest.mark.e2e

RULES = (
    "defaults: {failures: {rate_above: 0.05, min_requests: 1, min_samples: 1, confidence: null,"
    " window: 10s, for: 0s},"
    # every class: a cycle is complete when all four evaluated, after the warm-up
    " latency: {window: 10s}, endpoints: {window: 10s}, retries: {window: 10s}}"
)
HOSTILE = [
    "a/b/c",
    "x'$(touch${IFS}pwned)'",
    "evil\x1b]0;owned\x07\x1b[2J",
]


def _lines(service: str) -> list[bytes]:
    prefix = f"linkerd.rt.out.service.svc.{service}"
    return [f"{prefix}.requests:10|c".encode(), f"{prefix}.failures:5|c".encode()]


def test_hostile_service_names_never_stop_run_and_replay_stays_one_word(
    tmp_path: Path, http_server: RecordingHttpServer
) -> None:
    env = base_env(
        {
            "MESHALERT_STATSD_LISTEN": "127.0.0.1:0",
            "MESHALERT_FLUSH_INTERVAL": "1s",
            "MESHALERT_EVAL_INTERVAL": "1s",
            "MESHALERT_STORE": f"sqlite:///{tmp_path / 'store.db'}",
            "MESHALERT_STATE": f"sqlite:///{tmp_path / 'state.db'}",
            "MESHALERT_SPOOL_DIR": str(tmp_path / "spool"),
            "MESHALERT_HOST": "e2e-node",
            "MESHALERT_RULES": RULES,
            "MESHALERT_WEBHOOK_URL": http_server.url,
        }
    )
    run = MeshalertRun(env, tmp_path, "hostile")
    address = run.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(3):
                for service in [*HOSTILE, "checkout"]:
                    for line in _lines(service):
                        sock.sendto(line, address)
                time.sleep(0.5)

        def fired() -> set[str]:
            return {json.loads(r.text)["service"] for r in list(http_server.requests)}

        proc = run.proc
        assert proc is not None
        wait_for(
            lambda: {"checkout", *HOSTILE} <= fired() or proc.poll() is not None,
            60,
            "every service to fire",
            run.diagnostics,
        )
        assert proc.poll() is None, run.diagnostics()
        run.wait_cycles(2, 30)
        assert proc.poll() is None, run.diagnostics()
    finally:
        code = run.terminate()
    assert code == 0, run.diagnostics()

    for request in http_server.requests:
        body = json.loads(request.text)
        # The replay line reads back as exactly the service, one shell word.
        words = shlex.split(body["evidence"]["replay"])
        assert words[words.index("--service") + 1] == body["service"]
    assert not (tmp_path / "pwned").exists()
    console = run.console_path.read_text(errors="replace")
    assert "\x1b" not in console
    assert "\x07" not in console
    assert "evil\\x1b]0;owned\\x07\\x1b[2J" in console

    for command in (["status", "--all"], ["history"]):
        done = cli(command, env, tmp_path)
        assert done.returncode == 0, done.stderr
        assert "evil\\x1b]0;owned\\x07\\x1b[2J" in done.stdout
        assert "\x1b" not in done.stdout
        assert "a/b/c" in done.stdout
