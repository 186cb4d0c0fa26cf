"""A real, threaded HTTP server on 127.0.0.1 serving a folder, for remote-read tests.

Usage::

    with FolderServer(tmp_path, delay=0.1) as server:
        url = server.url_for("image.ome.zarr")
        ...
        assert server.max_concurrent > 1
        assert not server.chunk_requests()

Every GET/HEAD is recorded (path, in request order), can be delayed by
``delay`` seconds (settable at any time), can be made to fail with an HTTP
error after some requests (``fail_after``), and the server tracks how many
requests it was serving at once (``max_concurrent``); with ``require_query``
it refuses (403) requests without that exact query string. ``silent_server()``
gives a port that accepts connections but never answers (to test timeouts).
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["METADATA_NAMES", "FolderServer", "free_port", "silent_server"]

#: File names of zarr metadata; every other requested file is a chunk.
METADATA_NAMES = frozenset({"zarr.json", ".zattrs", ".zarray", ".zgroup", ".zmetadata"})


class _Handler(SimpleHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _tracked(self, method: Any) -> None:
        srv = self.server
        with srv.lock:
            srv.requests.append(self.path)
            srv.in_flight += 1
            srv.max_concurrent = max(srv.max_concurrent, srv.in_flight)
        try:
            if srv.delay:
                time.sleep(srv.delay)
            if srv.fail_status and len(srv.requests) > srv.fail_after:
                self.send_error(srv.fail_status, "failing on purpose (test server)")
                return
            if srv.require_query is not None and self.path.partition("?")[2] != srv.require_query:
                self.send_error(403, "this server wants its token (test server)")
                return
            method()
        finally:
            with srv.lock:
                srv.in_flight -= 1

    def do_GET(self) -> None:
        self._tracked(super().do_GET)

    def do_HEAD(self) -> None:
        self._tracked(super().do_HEAD)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # many concurrent connections from one client
    request_queue_size = 128

    def __init__(self, handler: Any, delay: float) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.in_flight = 0
        self.max_concurrent = 0
        self.delay = delay
        self.fail_status = 0
        self.fail_after = 0
        self.require_query: str | None = None


class FolderServer:
    """Serve ``root`` over HTTP on 127.0.0.1 (a free port) in a background thread.

    Parameters
    ----------
    root : path-like
        Folder to serve.
    delay : float
        Seconds to wait before answering each request.
    require_query : str, optional
        Answer 403 to every request whose query string is not exactly this
        (a server behind pre-signed or token URLs).
    """

    def __init__(
        self, root: str | Path, *, delay: float = 0.0, require_query: str | None = None
    ) -> None:
        handler = functools.partial(_Handler, directory=str(root))
        self._server = _Server(handler, delay)
        self._server.require_query = require_query
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._started = False

    # --- lifecycle ---------------------------------------------------------------
    def start(self) -> FolderServer:
        """Start serving (idempotent)."""
        if not self._started:
            self._thread.start()
            self._started = True
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._started:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._started = False
        self._server.server_close()

    def __enter__(self) -> FolderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses -------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, relpath: str) -> str:
        """URL of ``relpath`` under the served folder."""
        return f"{self.url}/{relpath.strip('/')}"

    # --- observations ------------------------------------------------------------------
    @property
    def delay(self) -> float:
        return self._server.delay

    @delay.setter
    def delay(self, value: float) -> None:
        self._server.delay = float(value)

    @property
    def requests(self) -> list[str]:
        """Paths requested so far, in order (a copy)."""
        with self._server.lock:
            return list(self._server.requests)

    @property
    def max_concurrent(self) -> int:
        """Most requests served at the same time so far."""
        return self._server.max_concurrent

    def fail_after(self, n_requests: int, status: int = 500) -> None:
        """Answer every request after the next ``n_requests`` with HTTP ``status`` (0: never)."""
        with self._server.lock:
            self._server.fail_after = len(self._server.requests) + n_requests
            self._server.fail_status = status

    def reset(self) -> None:
        """Forget the requests seen and the concurrency high-water mark."""
        with self._server.lock:
            self._server.requests.clear()
            self._server.max_concurrent = self._server.in_flight

    def chunk_requests(self) -> list[str]:
        """Requests for anything but zarr metadata files (i.e. chunk reads)."""
        return [
            r
            for r in self.requests
            if r.split("?")[0].rstrip("/").rsplit("/", 1)[-1] not in METADATA_NAMES
        ]

    def metadata_requests(self) -> list[str]:
        """Requests for zarr metadata files."""
        chunks = set(self.chunk_requests())
        return [r for r in self.requests if r not in chunks]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """Yield the base URL of a server that accepts connections and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
