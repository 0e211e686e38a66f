"""The whole job in one process: sidecar, store, evaluation loop, notifications.

Used by ``meshalert run`` (in the foreground) and ``meshalert demo`` (with a simulator and a
live view). Every adapter is chosen here, from the two validated settings models.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

import structlog

from ingest_sidecar.settings import SidecarSettings
from ingest_sidecar.sidecar import Sidecar
from meshalert.durations import format_duration_ms
from meshalert.engine import CycleReport, Engine
from meshalert.rules import RulesProvider
from meshalert.scheduler import EvaluationLoop
from meshalert.settings import Settings, process_environment
from meshalert.state.protocols import StateStore
from meshalert.wiring import (
    build_router,
    open_history_sink,
    open_reader,
    open_retention,
    open_state,
)
from meshalert_cli import preflight

log = structlog.get_logger("meshalert.run")


class ListenError(OSError):
    """The statsd address cannot be bound; the message names it and how to choose another."""

    def __init__(self, address: str, cause: OSError) -> None:
        super().__init__(
            cause.errno,
            f"cannot listen for statsd on {address} (UDP): {cause.strerror or cause}; "
            "choose another address with --listen HOST:PORT or MESHALERT_STATSD_LISTEN",
        )

    def __str__(self) -> str:
        return str(self.strerror)


@dataclass
class LocalStack:
    settings: Settings
    sidecar_settings: SidecarSettings
    env: Mapping[str, str]
    console: TextIO | None
    rules_path: str | None = None
    on_cycle: Callable[[int, list[CycleReport]], None] | None = None
    sidecar: Sidecar | None = field(default=None, init=False)
    state: StateStore | None = field(default=None, init=False)
    loop: EvaluationLoop | None = field(default=None, init=False)
    stop_event: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _started: bool = field(default=False, init=False)
    say: Callable[[str], None] | None = None
    """Where start-up problems are said in plain words (``run``: stderr)."""
    warmup: bool = True

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()  # a bad route or state URL must not leave the sidecar bound and running
            raise

    def _start(self) -> None:
        provider = RulesProvider(self.settings, flag_rules_path=self.rules_path)
        provider.current(time.time())  # bad rules fail here, before anything runs
        # Routes and state are checked before the sidecar binds: a typo in MESHALERT_ROUTES
        # is one error line, not a started-then-stopped sidecar.
        router = build_router(self.settings, console=self.console)
        self.state = open_state(self.settings.state_config)
        self.sidecar = Sidecar(self.sidecar_settings)
        try:
            self.sidecar.start()
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
                raise ListenError(self.sidecar_settings.statsd_listen, err) from None
            raise
        reader = open_reader(self.settings.store)
        engine = Engine(
            reader,
            self.state,
            router,
            settle_ms=self.settings.window_settle_ms,
            lookback_ms=self.settings.endpoints_lookback_ms,
            history_sink=open_history_sink(self.settings),
        )
        pruner = open_retention(self.settings.store, self.settings.retention_ms)
        self.loop = EvaluationLoop(
            engine,
            provider,
            self.settings.eval_interval_ms,
            on_cycle=self.on_cycle,
            maintenance=pruner,
            warmup_from_ms=int(time.time() * 1000) if self.warmup else None,
        )
        self._started = True
        log.info(
            "meshalert.started",
            statsd=f"{self.sidecar.address[0]}:{self.sidecar.address[1]}",
            store=self.settings.store_display,
            state=self.settings.state,
            eval_interval=format_duration_ms(self.settings.eval_interval_ms),
            channels=list(router.channel_names),
        )
        if self.say is not None:
            for problem in preflight.problems(self.settings, reader, router.channel_names):
                self.say(problem)

    def run_in_thread(self) -> None:
        if self.loop is None:
            raise RuntimeError("start() first")
        self._thread = threading.Thread(
            target=self.loop.run, args=(self.stop_event,), name="evaluation", daemon=True
        )
        self._thread.start()

    def run_forever(self) -> None:
        if self.loop is None:
            raise RuntimeError("start() first")
        self.loop.run(self.stop_event)

    def request_stop(self) -> None:
        """From a signal handler: stop the evaluation loop after its current cycle, and the
        sidecar at once, so the partial interval is flushed even if a slow notification
        keeps the cycle busy past the orchestrator's grace period."""
        self.stop_event.set()
        if self.sidecar is not None:
            threading.Thread(target=self.sidecar.stop, name="sidecar-stop", daemon=True).start()

    def stop(self) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self.sidecar is not None:
            self.sidecar.stop()
        if self.state is not None:
            self.state.close()
        if self._started:  # a start that failed says why, not that it stopped
            log.info("meshalert.stopped")


def build_stack(
    env: Mapping[str, str],
    *,
    console: TextIO | None,
    engine_flags: Mapping[str, str | None] | None = None,
    sidecar_overrides: Mapping[str, object] | None = None,
    rules_path: str | None = None,
) -> LocalStack:
    settings = Settings.from_env(env, engine_flags)
    sidecar_settings = SidecarSettings.from_env(
        env, {"store_url": settings.store_url.get_secret_value(), **(sidecar_overrides or {})}
    )
    return LocalStack(settings, sidecar_settings, env, console, rules_path)


def environment() -> dict[str, str]:
    return process_environment()
