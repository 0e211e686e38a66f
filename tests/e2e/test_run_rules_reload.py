"""``meshalert run`` re-reads its rules file every cycle; a reload that fails for any reason
(nesting too deep to parse, a duplicate key, a non-finite threshold) keeps the last good
rules, says so in the log, and the process keeps alerting with them."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.e2e.harness import MeshalertRun, base_env, wait_for
from tests.fixtures.http_server import RecordingHttpServer

pytestmark = pytest.mark.e2e

GOOD = (
    "defaults: {failures: {rate_above: 0.05, min_requests: 1, min_samples: 1, confidence: null,"
    " window: 10s, for: 0s}}\n"
)
BAD = {
    "deep": "defaults: " + "[" * 20000 + "]" * 20000 + "\n",
    "duplicate": "defaults:\n  failures: {rate_above: 0.5}\n  failures: {rate_above: 0.9}\n",
    "infinite": "defaults: {failures: {rate_above: 0.05, min_requests: 1e999}}\n",
}
EXPECTED = {
    "deep": "nested too deeply",
    "duplicate": "defaults.failures: duplicate key (line 3",
    "infinite": "defaults.failures.min_requests",
}


def test_every_failed_reload_keeps_the_last_good_rules(
    tmp_path: Path, http_server: RecordingHttpServer
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(GOOD)
    env = base_env(
        {
            "MESHALERT_STATSD_LISTEN": "127.0.0.1:0",
            "MESHALERT_FLUSH_INTERVAL": "1s",
            "MESHALERT_EVAL_INTERVAL": "1s",
            "MESHALERT_STORE": f"sqlite:///{tmp_path / 'store.db'}",
            "MESHALERT_STATE": f"sqlite:///{tmp_path / 'state.db'}",
            "MESHALERT_SPOOL_DIR": str(tmp_path / "spool"),
            "MESHALERT_RULES_FILE": str(rules),
            "MESHALERT_WEBHOOK_URL": http_server.url,
        }
    )
    run = MeshalertRun(env, tmp_path, "reload")
    address = run.start()
    proc = run.proc
    assert proc is not None
    try:
        for name, text in BAD.items():
            rules.write_text(text)

            def reported(name: str = name) -> bool:
                return proc.poll() is not None or any(
                    e.get("event") == "rules.reload_failed_using_last_good"
                    and EXPECTED[name] in str(e.get("error"))
                    for e in run.events()
                )

            wait_for(reported, 30, f"the {name} reload to be reported", run.diagnostics)
            assert proc.poll() is None, run.diagnostics()
        # Still the good rules: 10 requests and a 50% failure rate fire at once under them
        # (the built-in defaults would want 20 requests for 1m).
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(3):
                sock.sendto(b"linkerd.rt.out.service.svc.checkout.requests:10|c", address)
                sock.sendto(b"linkerd.rt.out.service.svc.checkout.failures:5|c", address)
                time.sleep(0.3)
        wait_for(
            lambda: (
                proc.poll() is not None
                or any(json.loads(r.text)["state"] == "firing" for r in list(http_server.requests))
            ),
            60,
            "checkout to fire under the last good rules",
            run.diagnostics,
        )
        assert proc.poll() is None, run.diagnostics()
    finally:
        code = run.terminate()
    assert code == 0, run.diagnostics()
