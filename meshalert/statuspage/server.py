"""The status page's HTTP adapter: a stdlib ``ThreadingHTTPServer`` in a thread, read-only.

``GET /`` answers the page; every other path is 404 and every other method 501 (the stdlib's
answer for a method without a handler). Snapshots are built in one worker thread that owns
the store connections (SQLite connections stay in the thread that opened them), only when
a page is asked for and the last one is older than ``max_age_s``: an idle page costs the
stores nothing, and any number of clients cost at most one snapshot per ``max_age_s``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

import structlog

from meshalert.safe_text import html_text as escape  # control characters too
from meshalert.statuspage.model import StatusSnapshot
from meshalert.statuspage.render import render_page, render_starting

log = structlog.get_logger("meshalert.status_page")

SECURITY_HEADERS = {
    # Nothing on the page may load or run anything: a name that slipped past escaping
    # still could not fetch a script or send data anywhere.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class SnapshotSource(Protocol):
    def snapshot(self) -> StatusSnapshot: ...

    def close(self) -> None: ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    page: StatusPage


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "meshalert-status"
    sys_version = ""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if not self.server.page.host_allowed(self.headers.get("Host")):
            self._send(HTTPStatus.FORBIDDEN, "text/plain; charset=utf-8", "unknown host\n")
            return
        if path != "/":
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", "not found\n")
            return
        self._send(HTTPStatus.OK, "text/html; charset=utf-8", self.server.page.html())

    def _send(self, status: HTTPStatus, content_type: str, body: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        # The stdlib writes the raw request line to stderr; a request line is wire data and
        # must not reach a terminal unescaped. structlog escapes it and keeps JSON logs JSON.
        log.debug("status_page.request", client=self.client_address[0], line=format % args)


class StatusPage:
    """The page server and its snapshot worker; ``start`` binds, ``stop`` ends both."""

    def __init__(
        self,
        open_source: Callable[[], SnapshotSource],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_age_s: float = 10.0,
        wait_s: float = 20.0,
        render: Callable[[StatusSnapshot], str] = render_page,
        secrets: Sequence[str] = (),
    ) -> None:
        self._secrets = [s for s in secrets if s]
        self._open_source = open_source
        self._render = render
        self._max_age_s = max_age_s
        self._wait_s = wait_s
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), _Handler, bind_and_activate=False)
        self._server.page = self
        self._host = host
        self._cond = threading.Condition()
        self._html: str | None = None
        self._built_at = 0.0
        self._generation = 0
        self._building = False
        self._wanted = threading.Event()
        self._stopping = False
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def host_allowed(self, host: str | None) -> bool:
        """On loopback, only requests naming a loopback host: a web page whose name was
        rebound to 127.0.0.1 (DNS rebinding) sends its own name and cannot read this one."""
        if host is None or self._host not in LOOPBACK:
            return True
        port = self.address[1]
        return host.lower() in {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}

    def start(self) -> None:
        try:
            self._server.server_bind()
            self._server.server_activate()
        except OSError:
            self._server.server_close()
            raise
        for name, target in (("status-page-http", self._serve), ("status-page", self._work)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("status_page.started", url=self.url)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._wanted.set()
        if self._threads:
            self._server.shutdown()
        for thread in self._threads:
            thread.join(timeout=30)
        self._server.server_close()
        self._threads.clear()

    def html(self) -> str:
        """The page, rebuilt first when older than ``max_age_s`` (waiting up to ``wait_s``
        for it; a slow store gets the previous page rather than a hanging browser)."""
        with self._cond:
            fresh = self._html is not None and time.monotonic() - self._built_at < self._max_age_s
            if fresh and self._html is not None:
                return self._html
            # Join the build in progress, or ask for one: concurrent clients share a build.
            target = self._generation + 1
            if not self._building:
                self._wanted.set()
            self._cond.wait_for(
                lambda: self._generation >= target or self._stopping, timeout=self._wait_s
            )
            return self._html if self._html is not None else render_starting()

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def _work(self) -> None:
        source: SnapshotSource | None = None
        try:
            while True:
                self._wanted.wait()
                with self._cond:
                    self._wanted.clear()
                    self._building = True
                if self._stopping:
                    return
                try:
                    if source is None:
                        source = self._open_source()
                    html = self._render(source.snapshot())
                except Exception as err:  # a store failure must not end the page or the run
                    log.error("status_page.snapshot_failed", error=str(err))
                    html = _failure_page(err)
                for secret in self._secrets:  # an error text may quote a URL with a password
                    html = html.replace(escape(secret), "***").replace(secret, "***")
                with self._cond:
                    self._html = html
                    self._built_at = time.monotonic()
                    self._generation += 1
                    self._building = False
                    self._cond.notify_all()
        finally:
            if source is not None:
                source.close()


def _failure_page(err: Exception) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='refresh' content='15'><title>meshalert status: unavailable</title>"
        "</head><body><h1>meshalert status</h1><p>The state could not be read: "
        f"{escape(type(err).__name__)}: {escape(str(err))}</p></body></html>"
    )
