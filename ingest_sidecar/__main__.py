"""``python -m ingest_sidecar``: run the statsd sidecar until SIGTERM or SIGINT.

Configuration comes from ``MESHALERT_*`` variables (see :mod:`ingest_sidecar.settings`).
Exit status: 0 after a clean stop (the partial interval flushed and written or spooled),
2 for bad settings, 1 when the sidecar cannot start.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

import structlog

from ingest_sidecar.settings import SettingsError, SidecarSettings
from ingest_sidecar.sidecar import Sidecar
from meshalert.logs import configure_logging


def main() -> int:
    try:
        settings = SidecarSettings.from_env()
    except SettingsError as exc:
        print(f"meshalert sidecar: bad configuration: {exc}", file=sys.stderr)
        return 2
    configure_logging(secrets=settings.secrets())
    log = structlog.get_logger("ingest_sidecar")
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("sidecar_stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sidecar = Sidecar(settings)
    try:
        sidecar.start()
    except Exception as exc:  # report why, in one line, and exit 1
        log.error("sidecar_start_failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    while not stop.wait(1.0):
        pass
    sidecar.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
