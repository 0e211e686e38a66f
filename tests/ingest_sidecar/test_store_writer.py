"""SpoolingWriter over a real Spool; the store is a scripted LineWriter double."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ingest_sidecar.spool import Spool
from ingest_sidecar.store_writer import SpoolingWriter
from meshalert.stores.protocols import StoreWriteError


class ScriptedStore:
    def __init__(self) -> None:
        self.stored: list[list[str]] = []
        self.failure: StoreWriteError | None = None
        self.lock = threading.Lock()

    def write(self, lines: Sequence[str]) -> None:
        with self.lock:
            if self.failure is not None and not (not self.failure.retryable and "keep" in lines[0]):
                raise self.failure
            self.stored.append(list(lines))

    def close(self) -> None:
        pass


def _wait(cond: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_outage_keeps_order_and_drains_after(tmp_path: Path) -> None:
    store = ScriptedStore()
    writer = SpoolingWriter(
        Spool(str(tmp_path), 1 << 20), store, backoff_min_s=0.02, backoff_max_s=0.05
    )
    writer.start()
    writer.submit(["a 1"])
    _wait(lambda: store.stored)
    store.failure = StoreWriteError("down", retryable=True)
    for i in range(5):
        writer.submit([f"b{i} 1"])
    _wait(lambda: writer.counts().write_errors >= 2)
    assert writer.failing and writer.counts().spool_batches == 5
    store.failure = None
    _wait(lambda: writer.counts().spool_batches == 0)
    assert writer.stop()
    assert store.stored == [["a 1"], *[[f"b{i} 1"] for i in range(5)]]
    assert writer.counts().written_lines == 6


def test_replays_previous_run_first(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), 1 << 20)
    spool.append(["old 1"])
    spool.close()
    store = ScriptedStore()
    writer = SpoolingWriter(Spool(str(tmp_path), 1 << 20), store)
    writer.submit(["new 1"])
    writer.start()
    assert writer.stop()
    assert store.stored == [["old 1"], ["new 1"]]


def test_non_retryable_goes_to_dead_letter_then_continues(tmp_path: Path) -> None:
    store = ScriptedStore()
    store.failure = StoreWriteError("rejected line 'bad 1'", retryable=False)
    writer = SpoolingWriter(Spool(str(tmp_path), 1 << 20), store)
    writer.submit(["bad 1", "bad 2"])
    writer.submit(["keep 1"])
    writer.start()
    assert writer.stop()
    assert (tmp_path / "dead-letter.lp").read_text() == "bad 1\nbad 2\n"
    assert store.stored == [["keep 1"]]
    assert writer.counts().dead_letter_lines == 2


def test_stop_during_outage_leaves_batches_spooled(tmp_path: Path) -> None:
    store = ScriptedStore()
    store.failure = StoreWriteError("down", retryable=True)
    writer = SpoolingWriter(Spool(str(tmp_path), 1 << 20), store, backoff_min_s=10)
    writer.start()
    writer.submit(["x 1"])
    writer.submit(["y 1"])
    _wait(lambda: writer.counts().write_errors >= 1)
    started = time.monotonic()
    assert not writer.stop()
    assert time.monotonic() - started < 2  # the backoff wait is interrupted
    assert writer.counts().spool_batches == 2
