"""The UDP receive thread: blocking ``recv`` in a loop, each datagram fed to the ingest core.

A blocking socket in a dedicated thread costs one syscall per datagram (a socket timeout
would add a ``poll`` before each ``recv``; asyncio's ``DatagramProtocol`` reads one datagram
per loop turn and loses data at a few 10k datagrams/s). Stopping shuts the socket down for
reading, which wakes the blocked ``recv``; datagrams already queued in the kernel are still
read and fed before the thread ends.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

import structlog

MAX_DATAGRAM = 65_535
DEFAULT_RCVBUF = 4 * 1024 * 1024

log = structlog.get_logger(__name__)


def open_udp_socket(host: str, port: int, rcvbuf: int = DEFAULT_RCVBUF) -> socket.socket:
    """A bound, blocking UDP socket with (at least asking for) a ``rcvbuf`` receive buffer."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP)
    if not infos:
        raise OSError(f"cannot resolve statsd listen address {host!r}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def granted_rcvbuf(sock: socket.socket) -> int:
    """What the kernel granted (Linux reports twice the usable size, capped by rmem_max)."""
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


class UdpReceiver:
    """Owns the socket and the receive thread; ``feed`` gets every datagram's bytes."""

    def __init__(self, sock: socket.socket, feed: Callable[[bytes], None]) -> None:
        self._sock = sock
        self._feed = feed
        self._stopping = False
        self.feed_errors = 0
        """Datagrams whose handling raised (a bug): counted and logged, never fatal."""
        self.last_feed_error: BaseException | None = None
        self._last_error_log = 0.0
        self._thread = threading.Thread(target=self._run, name="statsd-receiver", daemon=True)
        self.failed: BaseException | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop receiving, after feeding what the kernel already queued; closes the socket."""
        self._stopping = True
        # Linux wakes the blocked reader, and still reports ENOTCONN for unconnected UDP.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RD)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._wake()
            self._thread.join(timeout_s)
        self._sock.close()

    def _wake(self) -> None:
        host, port = self.address
        target = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
        with socket.socket(self._sock.family, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", (target, port))

    def _run(self) -> None:
        recv = self._sock.recv
        feed = self._feed
        try:
            while True:
                data = recv(MAX_DATAGRAM)
                if data:
                    try:
                        feed(data)
                    except Exception as exc:  # one datagram must never end reception
                        self._feed_failed(exc)
                elif self._stopping:
                    return
        except OSError as exc:
            if not self._stopping:
                self.failed = exc
                log.error("statsd_receiver_failed", error=str(exc))
        except BaseException as exc:  # a bug must be visible, not a silently dead thread
            self.failed = exc
            log.exception("statsd_receiver_crashed")

    def _feed_failed(self, exc: Exception) -> None:
        self.feed_errors += 1
        self.last_feed_error = exc
        now = time.monotonic()
        if now - self._last_error_log >= 60.0:  # a bug hit by every datagram: once a minute
            self._last_error_log = now
            log.error(
                "statsd_datagram_failed",
                error=f"{type(exc).__name__}: {exc}",
                count=self.feed_errors,
            )
