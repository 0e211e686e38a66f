"""Driving ``meshalert run`` as a real subprocess: start, read its JSON logs, stop, and the
other commands (``status``, ``history``) run against the same state while it runs."""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from meshalert.simulator.sender import SendStats, run_sender
from meshalert.simulator.traffic import Incident, IncidentKind, LinkerdTraffic, TrafficConfig
from tests.fixtures.http_server import RecordedRequest, RecordingHttpServer

REPO_ROOT = Path(__file__).resolve().parents[2]
POLL_S = 0.25
Delivery = tuple[str, str, str]
"""(alert class, service short name, notification kind)."""


def wait_for(
    condition: Callable[[], bool], timeout_s: float, what: str, context: Callable[[], str]
) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took, fails with ``context``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(
                f"timed out after {timeout_s:.0f}s waiting for {what}\n{context()}"
            )
        time.sleep(POLL_S)
    return time.monotonic() - started


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The test's environment without any MESHALERT_* the developer may have set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHALERT_")}
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["MESHALERT_STATUS_LISTEN"] = "127.0.0.1:0"  # run's status page: a free port, not 9464
    env.update(extra)
    return env


def cli(args: list[str], env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """One ``meshalert`` command to completion."""
    return subprocess.run(
        [sys.executable, "-m", "meshalert_cli.main", *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli_json(args: list[str], env: Mapping[str, str], cwd: Path) -> Any:
    done = cli(args, env, cwd)
    assert done.returncode == 0, f"meshalert {' '.join(args)} -> {done.returncode}\n{done.stderr}"
    return json.loads(done.stdout)


@dataclass
class MeshalertRun:
    """``meshalert run`` in a subprocess; stderr (JSON logs) and stdout (console) go to files."""

    env: Mapping[str, str]
    cwd: Path
    name: str
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def log_path(self) -> Path:
        return self.cwd / f"{self.name}.log"

    @property
    def console_path(self) -> Path:
        return self.cwd / f"{self.name}.console"

    def start(self, timeout_s: float = 30.0) -> tuple[str, int]:
        """Start and wait for ``meshalert.started``; returns the statsd address it bound."""
        with open(self.log_path, "wb") as log, open(self.console_path, "wb") as console:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "meshalert_cli.main", "run"],
                env=dict(self.env),
                cwd=self.cwd,
                stdout=console,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        wait_for(self._started_or_exited, timeout_s, f"{self.name} to start", self.diagnostics)
        assert self.proc.poll() is None, f"{self.name} exited early\n{self.diagnostics()}"
        started = next(e for e in self.events() if e.get("event") == "meshalert.started")
        host, _, port = str(started["statsd"]).rpartition(":")
        return host, int(port)

    def _started_or_exited(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return True
        return any(e.get("event") == "meshalert.started" for e in self.events())

    def events(self) -> Iterator[dict[str, Any]]:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return
        for line in text.splitlines():
            if line.startswith("{") and line.endswith("}"):
                yield json.loads(line)

    def cycles(self) -> int:
        """Evaluation cycles completed (all four classes logged)."""
        classes = Counter(e.get("alert_class") for e in self.events() if _is_cycle(e))
        return min((classes[c] for c in ("latency", "failures", "endpoints", "retries")), default=0)

    def wait_cycles(self, count: int, timeout_s: float) -> None:
        target = self.cycles() + count
        wait_for(lambda: self.cycles() >= target, timeout_s, f"{count} cycles", self.diagnostics)

    def terminate(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} ignored SIGTERM for {timeout_s}s\n{self.diagnostics()}"
            ) from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def diagnostics(self) -> str:
        try:
            log = self.log_path.read_text(errors="replace")
        except OSError:
            log = "(no log)"
        return f"--- {self.name} log (tail) ---\n{log[-4000:]}"


def _is_cycle(event: Mapping[str, Any]) -> bool:
    return event.get("event") == "evaluation.cycle"


class SteerableSender:
    """Simulated Linkerd traffic over real UDP in a thread; incidents can be ended early."""

    def __init__(self, config: TrafficConfig, target: tuple[str, int], seed: int = 11) -> None:
        self.traffic = LinkerdTraffic(config, random.Random(seed))
        self.target = target
        self.sim_s = 0.0
        self.stats = SendStats()
        self.failed: BaseException | None = None
        self.started_wall_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="statsd-sender", daemon=True)

    def start(self) -> None:
        self.started_wall_s = time.time()
        self._thread.start()

    def wall_s(self, sim_s: float) -> float:
        """Wall-clock time of a simulated time (the sender paces itself in real time)."""
        return self.started_wall_s + sim_s

    def _run(self) -> None:
        def on_step(t: float, _stats: SendStats) -> None:
            self.sim_s = t

        try:
            self.stats = run_sender(
                self.traffic,
                self.target,
                duration_s=600.0,
                step_s=0.1,
                gauge_interval_s=1.0,
                stop=self._stop,
                on_step=on_step,
            )
        except BaseException as exc:  # surfaced by the test through ``failed``
            self.failed = exc

    def end_incident(self, kind: IncidentKind, service: str) -> float:
        """End an open-ended incident now (simulated time); returns that time."""
        now = self.sim_s
        config = self.traffic.config
        incidents = tuple(
            replace(i, end_s=now) if (i.kind, i.service) == (kind, service) else i
            for i in config.incidents
        )
        # One attribute assignment: the sender thread sees the old or the new config, whole.
        self.traffic.config = replace(config, incidents=incidents)
        return now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def open_ended(kind: IncidentKind, service: str, start_s: float) -> Incident:
    return Incident(kind, service, start_s, math.inf)


_SLACK_TITLE = re.compile(r"\] (FIRING|RESOLVED|STILL FIRING) (\w+) (\S+):")


def short(service: str) -> str:
    """Classes reading client-scope gauges key services as ``namespace/name``."""
    return service.rsplit("/", 1)[-1]


def notification_bodies(requests: list[RecordedRequest]) -> list[dict[str, Any]]:
    """Each notification a webhook received: a grouped message (``MESHALERT_GROUP_THRESHOLD``
    notifications in one cycle) counts as each of its members."""
    out: list[dict[str, Any]] = []
    for request in requests:
        body = json.loads(request.text)
        if body.get("group"):
            assert body["members_not_listed"] == 0, body["summary"]
            out.extend(body["members"])
        else:
            out.append(body)
    return out


def webhook_deliveries(requests: list[RecordedRequest]) -> Counter[Delivery]:
    out: Counter[Delivery] = Counter()
    for body in notification_bodies(requests):
        out[(body["alert_class"], short(body["service"]), body["state"])] += 1
    return out


def slack_deliveries(requests: list[RecordedRequest]) -> Counter[Delivery]:
    out: Counter[Delivery] = Counter()
    for request in requests:
        match = _SLACK_TITLE.search(json.loads(request.text)["text"])
        assert match, f"unexpected Slack text: {request.text[:300]}"
        kind = match.group(1).lower().replace("still firing", "reminder")
        out[(match.group(2), short(match.group(3)), kind)] += 1
    return out


def server_snapshot(server: RecordingHttpServer) -> list[RecordedRequest]:
    return list(server.requests)
