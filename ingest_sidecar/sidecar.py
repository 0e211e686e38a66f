"""The running sidecar: receive thread -> flush thread -> writer thread, over one spool.

``Sidecar(settings).start()`` binds the socket and starts the threads; ``stop()`` stops
receiving (after reading what the kernel already queued), flushes the partial interval,
writes or spools it, and releases everything. Used by ``python -m ingest_sidecar``,
``meshalert run`` and the tests (port 0 gives a free port: read :attr:`Sidecar.address`).
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import structlog

from ingest_sidecar.admin_metrics import AdminConverter
from ingest_sidecar.admin_poller import AdminPullSource, HttpMetricsFetcher, PullCounts
from ingest_sidecar.aggregate import IntervalAggregator, KindRegistry
from ingest_sidecar.ingest import IngestCore, IngestCounts
from ingest_sidecar.linkerd_names import NameMapper
from ingest_sidecar.pipeline import Flusher
from ingest_sidecar.receiver import DEFAULT_RCVBUF, UdpReceiver, granted_rcvbuf, open_udp_socket
from ingest_sidecar.self_metrics import WriterCounts
from ingest_sidecar.settings import SidecarSettings
from ingest_sidecar.spool import Spool, ensure_private_dir
from ingest_sidecar.store_writer import DEAD_LETTER_FILE, SpoolingWriter
from meshalert.stores.protocols import LineWriter
from meshalert.wiring import open_writer

LOCK_FILE = ".lock"

log = structlog.get_logger(__name__)


class SpoolLockedError(RuntimeError):
    """Another running sidecar already owns the spool directory."""


class Sidecar:
    def __init__(
        self,
        settings: SidecarSettings,
        *,
        writer: LineWriter | None = None,
        backoff_max_s: float = 30.0,
        rcvbuf: int = DEFAULT_RCVBUF,
    ) -> None:
        self.settings = settings
        self._given_writer = writer
        self._backoff_max_s = backoff_max_s
        self._rcvbuf = rcvbuf
        self._lock_fd: int | None = None
        self._spool: Spool | None = None
        self._store: LineWriter | None = None
        self._writer: SpoolingWriter | None = None
        self._core: IngestCore | None = None
        self._receiver: UdpReceiver | None = None
        self._flusher: Flusher | None = None
        self._pull: AdminPullSource | None = None
        self._fetcher: HttpMetricsFetcher | None = None
        self._granted_rcvbuf = 0
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    # --- what tests and the composition root read ----------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): the real port when the setting asked for port 0."""
        if self._receiver is None:
            raise RuntimeError("sidecar not started")
        return self._receiver.address

    @property
    def rcvbuf_granted(self) -> int:
        """SO_RCVBUF as the kernel reports it (Linux: twice the usable bytes)."""
        return self._granted_rcvbuf

    @property
    def running(self) -> bool:
        return self._receiver is not None and not self._stopped.is_set()

    @property
    def spool(self) -> Spool:
        if self._spool is None:
            raise RuntimeError("sidecar not started")
        return self._spool

    @property
    def flushes(self) -> int:
        return self._flusher.flushes if self._flusher else 0

    def cached_names(self) -> tuple[int, int]:
        """(mapped names, line shapes) the statsd path holds in its caches."""
        return self._core.cached_names() if self._core else (0, 0)

    def ingest_counts(self) -> IngestCounts:
        return self._core.counts() if self._core else IngestCounts()

    def writer_counts(self) -> WriterCounts:
        return self._writer.counts() if self._writer else WriterCounts()

    def pull_counts(self) -> PullCounts:
        """Pull mode's polls so far (all zero when MESHALERT_LINKERD_ADMIN_URL is unset)."""
        return self._pull.counts() if self._pull else PullCounts()

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        s = self.settings
        self._lock_fd = _lock_directory(Path(s.spool_dir))
        try:
            # One spool per store (the lock stays on spool_dir: one sidecar per directory).
            self._spool = Spool(s.spool_path, s.spool_max_bytes_value)
            replay = self._spool.pending_batches
            self._store = self._given_writer or open_writer(s.store, max_series=s.max_series)
            self._writer = SpoolingWriter(
                self._spool,
                self._store,
                dead_letter_path=Path(s.spool_dir) / DEAD_LETTER_FILE,
                dead_letter_max_bytes=s.dead_letter_max_bytes_value,
                backoff_max_s=self._backoff_max_s,
            )
            # Every name cache is sized by MAX_SERIES: a name beyond the series budget is
            # refused anyway, and fixed caches larger than it let a flood of distinct
            # names grow memory past a limit that MAX_SERIES was chosen to fit.
            mapper = NameMapper(
                s.statsd_prefix,
                s.service_depths,
                service_namespaces=s.service_namespaces,
                cache_size=s.max_series,
            )
            kinds = KindRegistry(s.max_series)
            self._core = IngestCore(
                mapper,
                lambda: IntervalAggregator(max_series=s.max_series, kinds=kinds),
                shape_cache_max=s.max_series,
            )
            if s.linkerd_admin_url:
                # Its own mapper: NameMapper's cache is not shared across threads.
                pull_mapper = NameMapper(
                    s.statsd_prefix,
                    s.service_depths,
                    service_namespaces=s.service_namespaces,
                    cache_size=s.max_series,
                )
                self._fetcher = HttpMetricsFetcher(s.linkerd_admin_url)
                self._pull = AdminPullSource(
                    self._fetcher,
                    AdminConverter(pull_mapper, prefix=s.statsd_prefix, max_series=s.max_series),
                )
            host, port = s.listen
            sock = open_udp_socket(host, port, self._rcvbuf)
        except BaseException:
            self._release()
            raise
        self._granted_rcvbuf = granted_rcvbuf(sock)
        self._receiver = UdpReceiver(sock, self._core.feed)
        self._flusher = Flusher(
            self._core,
            self._writer,
            interval_ms=s.flush_interval_ms,
            host=s.host,
            batch_lines=s.write_batch_lines,
            max_gauges=s.max_series,
            pull=self._pull.collect if self._pull else None,
        )
        _warn_unkeyed_spool(Path(s.spool_dir), Path(s.spool_path))
        self._writer.start()  # replays the previous run's spool before anything new
        self._receiver.start()
        self._flusher.start()
        log.info(
            "sidecar_started",
            listen=f"{self.address[0]}:{self.address[1]}",
            rcvbuf_requested=self._rcvbuf,
            rcvbuf_granted=self._granted_rcvbuf,
            store=repr(s.store),
            flush_interval_ms=s.flush_interval_ms,
            host=s.host,
            spool_dir=s.spool_path,
            spool_replay_batches=replay,
            linkerd_admin=self._fetcher.url if self._fetcher else None,
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop receiving, flush the partial interval, write or spool it; idempotent and
        safe to call from several threads (a signal handler's and the main one)."""
        with self._stop_lock:
            self._stop(timeout_s)

    def _stop(self, timeout_s: float) -> None:
        if self._stopped.is_set() or self._receiver is None:
            return
        assert self._flusher is not None and self._writer is not None
        self._receiver.stop()
        self._flusher.stop(timeout_s)
        drained = self._writer.stop(timeout_s)
        log.info(
            "sidecar_stopped",
            spool_batches_left=self.spool.pending_batches,
            drained=drained,
            totals=self.spool.ledger.snapshot(),
            receiver_failed=str(self._receiver.failed) if self._receiver.failed else None,
        )
        self._release()
        self._stopped.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        return self._stopped.wait(timeout_s)

    def _release(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
        if self._store is not None and self._given_writer is None:
            self._store.close()
        if self._spool is not None:
            self._spool.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None


def _warn_unkeyed_spool(root: Path, keyed: Path) -> None:
    """Batches spooled before spools were kept per store: their store is unknown, so they
    are not replayed into whatever store this run uses; say where they are."""
    segments = sorted(root.glob("segment-*.spool"))
    if segments:
        log.warning(
            "spool_without_store_not_replayed",
            directory=str(root),
            segments=len(segments),
            hint=f"move them into {keyed} if they belong to this store",
        )


def _lock_directory(directory: Path) -> int:
    """Hold an exclusive flock on the spool directory (released by the kernel on any exit,
    kill -9 included), so two sidecars never share one spool."""
    ensure_private_dir(directory)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)  # a lock file from an older version may be 0644
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SpoolLockedError(
            f"spool directory {str(directory)!r} is in use by another sidecar "
            "(set MESHALERT_SPOOL_DIR to a directory of its own)"
        ) from None
    return fd
