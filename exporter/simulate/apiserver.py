"""A local HTTP server that speaks the Kubernetes API's JSON, for tests and the simulated node.

The exporter's Kubernetes side is exercised with the real ``kubernetes`` client against this
server rather than with mocks, so list/watch shapes, chunked watch streams, 410 Gone expiry,
bookmarks and error ``Status`` bodies are checked end to end. Failure injection
(:meth:`FakeKubeAPI.fail_next`, :meth:`~FakeKubeAPI.drop_watches`,
:meth:`~FakeKubeAPI.compact`) reproduces what a restarting or overloaded API server does.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from exporter.simulate.kubestore import (
    KINDS,
    Expired,
    KubeStore,
    Stored,
    matches,
    parse_selector,
    status_body,
)

__all__ = ["FakeKubeAPI"]

_MAX_REQUEST_LOG = 10_000


class FakeKubeAPI(KubeStore):
    """A thread-safe Kubernetes API on 127.0.0.1 serving pods, nodes and their owners.

    Use it as a context manager; :attr:`url` is the base URL for the real client.
    Mutations (``create``/``update``/``delete``/``compact``) come from :class:`KubeStore`.
    """

    def __init__(self, port: int = 0, bookmark_interval: float = 1.0,
                 default_watch_timeout: float = 1800.0) -> None:
        super().__init__()
        self.bookmark_interval = bookmark_interval
        self.default_watch_timeout = default_watch_timeout
        #: (method, path?query) of every request, oldest first, for tests to inspect.
        self.requests: list[tuple[str, str]] = []
        self._fail = (0, 500)
        self._drops = 0
        self._closing = False
        self._sockets: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", port), _make_handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="fake-kube-api", daemon=True)

    @property
    def url(self) -> str:
        """Base URL for ``api_client_from(host=...)``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeKubeAPI:
        """Serve in a daemon thread; returns self."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and cut every open connection, so no handler thread lingers."""
        with self.cond:
            self._closing = True
            self.cond.notify_all()
            sockets = list(self._sockets)
        if self._thread.is_alive():
            self._server.shutdown()
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed by the peer
                sock.shutdown(socket.SHUT_RDWR)
        self._server.server_close()

    def __enter__(self) -> FakeKubeAPI:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def fail_next(self, n: int, status: int = 500) -> None:
        """Answer the next ``n`` requests (of any route) with a Status error; 0 clears."""
        with self.cond:
            self._fail = (n, status)

    def drop_watches(self) -> None:
        """End every open watch stream abruptly (no final chunk), as a dying server would."""
        with self.cond:
            self._drops += 1
            self.cond.notify_all()

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        with self.cond:
            self.requests.append((req.command, req.path))
            if len(self.requests) > _MAX_REQUEST_LOG:
                del self.requests[: _MAX_REQUEST_LOG // 2]
            failures, code = self._fail
            if failures > 0:
                self._fail = (failures - 1, code)
        if failures > 0:
            return _send_json(req, code, status_body(code, f"injected failure ({code})"))
        if req.command != "GET":
            return _send_json(req, 405, status_body(405, "the server does not allow this method"))
        url = urlsplit(req.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        route = _route(url.path)
        if route is None:
            msg = "the server could not find the requested resource"
            return _send_json(req, 404, status_body(404, msg))
        resource, namespace, name = route
        if name is not None:
            with self.cond:
                stored = self.objects[resource].get((namespace or "", name))
            if stored is None:
                return _send_json(req, 404, status_body(404, f'{resource} "{name}" not found'))
            return _send(req, 200, stored.full)
        fields = parse_selector(query.get("fieldSelector", ""))
        labels = parse_selector(query.get("labelSelector", ""))

        def wanted(s: Stored | None) -> bool:
            return s is not None and (namespace is None or s.obj["metadata"].get(
                "namespace") == namespace) and matches(s.obj, fields, labels)

        if query.get("watch") in ("true", "1"):
            return self._watch(req, resource, wanted, query)
        with self.cond:
            items = [s.item for s in self.objects[resource].values() if wanted(s)]
            rv = self.rv
        kind, api_version, _ = KINDS[resource]
        head = (f'{{"kind":"{kind}List","apiVersion":"{api_version}",'
                f'"metadata":{{"resourceVersion":"{rv}"}},"items":[').encode()
        return _send(req, 200, head + b",".join(items) + b"]}")

    def _watch(self, req: BaseHTTPRequestHandler, resource: str,
               wanted: Callable[[Stored | None], bool], query: dict[str, str]) -> None:
        """Stream events after the requested RV until timeoutSeconds, a drop or close."""
        kind, api_version, _ = KINDS[resource]
        bookmarks = query.get("allowWatchBookmarks") == "true"
        timeout = float(query.get("timeoutSeconds") or self.default_watch_timeout)
        idle_since = time.monotonic()
        deadline = idle_since + timeout
        since = query.get("resourceVersion", "0")
        if not since.isdigit():
            return _send_json(req, 400, status_body(400, f"invalid resourceVersion {since!r}"))
        with self.cond:  # before the headers: a drop_watches() after them must hit this one
            drops = self._drops
            if since == "0":  # no RV: the current state as ADDED events first
                out = [b'{"type":"ADDED","object":%s}\n' % s.full
                       for s in self.objects[resource].values() if wanted(s)]
                pos = self.rv
            else:
                out, pos = [], int(since)
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Transfer-Encoding", "chunked")
        req.end_headers()
        try:
            while True:
                for line in out:
                    req.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                with self.cond:
                    now = time.monotonic()
                    if self._closing or self._drops != drops or _client_gone(req.connection):
                        req.close_connection = True
                        return
                    try:
                        out, pos = self.events_since(pos, resource, wanted) \
                            if now < deadline else ([], pos)
                    except Expired as exc:  # the real API's code, reason and wording
                        out, deadline = [json.dumps({"type": "ERROR", "object": status_body(
                            410, str(exc))}).encode() + b"\n"], now
                    if not out and now >= deadline:
                        req.wfile.write(b"0\r\n\r\n")
                        return
                    if not out and bookmarks and now - idle_since >= self.bookmark_interval:
                        pos = self.rv
                        out = [json.dumps({"type": "BOOKMARK", "object": {
                            "kind": kind, "apiVersion": api_version,
                            "metadata": {"resourceVersion": str(pos)}}}).encode() + b"\n"]
                    if out:
                        idle_since = now
                    else:
                        self.cond.wait(max(0.0, min(deadline, idle_since + self.bookmark_interval)
                                           - now))
        except OSError:  # the client went away
            req.close_connection = True


def _route(path: str) -> tuple[str, str | None, str | None] | None:
    """(resource, namespace, name) of a supported path, or None for a 404."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "v1"]:
        group_version, rest = "v1", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 3:
        group_version, rest = "/".join(parts[1:3]), parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not 1 <= len(rest) <= 2 or rest[0] not in KINDS:
        return None
    _, gv, namespaced = KINDS[rest[0]]
    name = rest[1] if len(rest) == 2 else None
    if gv != group_version or (namespace is not None and not namespaced):
        return None
    if namespaced and namespace is None and name is not None:  # gets need a namespace
        return None
    return rest[0], namespace, name


def _client_gone(sock: socket.socket) -> bool:
    """A watcher that hung up: its socket reads as EOF (a watch client never sends more)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and not sock.recv(1, socket.MSG_PEEK)
    except OSError:
        return True


def _send(req: BaseHTTPRequestHandler, code: int, body: bytes) -> None:
    req.send_response(code)
    req.send_header("Content-Type", "application/json")
    req.send_header("Content-Length", str(len(body)))
    req.end_headers()
    req.wfile.write(body)


def _send_json(req: BaseHTTPRequestHandler, code: int, obj: dict[str, Any]) -> None:
    _send(req, code, json.dumps(obj).encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops SYNs when many watchers connect at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: clients hanging up mid-response are routine here."""


def _make_handler(api: FakeKubeAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with api.cond:
                api._sockets.add(self.connection)

        def finish(self) -> None:
            with api.cond:
                api._sockets.discard(self.connection)
            super().finish()

        def do_GET(self) -> None:
            api._handle(self)

        do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            """No request logging: the simulated node would flood stderr."""

    return Handler
