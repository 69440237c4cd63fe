"""HTTP serving of ``/metrics`` (gzip when asked) and ``/healthz``.

A threaded stdlib WSGI server in a daemon thread, so a slow scraper never
blocks another; the body is rendered by :mod:`exporter.exposition`.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from exporter.exposition import CONTENT_TYPE, Registry, render

__all__ = ["MetricsServer", "make_app"]

StartResponse = Callable[..., Any]


def _accepts_gzip(environ: dict[str, Any]) -> bool:
    return any(part.split(";")[0].strip() == "gzip"
               for part in environ.get("HTTP_ACCEPT_ENCODING", "").split(","))


def make_app(registry: Registry,
             healthy: Callable[[], bool] = lambda: True) -> Callable[..., Iterable[bytes]]:
    """The exporter's WSGI app: /metrics, /healthz, 404 elsewhere."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            body = render(registry.collect())
            headers = [("Content-Type", CONTENT_TYPE)]
            if _accepts_gzip(environ):
                body = gzip.compress(body, compresslevel=1)  # fast: scrapes are frequent
                headers.append(("Content-Encoding", "gzip"))
            headers.append(("Content-Length", str(len(body))))
            start_response("200 OK", headers)
            return [body]
        if path == "/healthz":
            ok = healthy()
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n" if ok else b"unhealthy\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics or /healthz\n"]

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the log; errors still surface as metrics."""


class MetricsServer:
    """A threaded WSGI server on (host, port) running in a daemon thread."""

    def __init__(self, app: Callable[..., Iterable[bytes]], host: str, port: int) -> None:
        self._server = make_server(host, port, app, _ThreadingServer, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http",
                                        daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Begin serving in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
