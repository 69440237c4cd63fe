"""A fleet of simulated exporters behind one HTTP server, for the scale benchmark.

Running 5,000 real exporters on one machine is not possible, and the aggregator cannot
tell the difference: what it scrapes is bytes over HTTP. So one simulated node's real
exporter (cgroup tree, local API server, the exporter's own collectors and renderer)
is scraped once per simulated minute, and each of those payloads becomes a *template*:
node ``i`` serves it with its own node name and its own pod uids, assembled by a join
of pre-split parts (no regex per request), gzip-compressed like the exporter does.

The server runs in its own process, so its CPU and memory are not the aggregator's.
``GET /_round/K`` switches every node to the K-th simulated minute.
"""

from __future__ import annotations

import contextlib
import gzip
import multiprocessing as mp
import re
import tempfile
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection

__all__ = ["Fleet", "scrape_simulated_node"]

_UID = re.compile(rb"[0-9a-f]{8}(?=-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def _templates(pods: int, rounds: int) -> tuple[list[list[bytes]], int]:
    """``rounds`` scrapes of one simulated node, 60 s apart, split where a node differs.

    Returns, per round, parts alternating fixed text and a marker slot (even: text,
    odd: b"N" for the node name or b"U" for a uid prefix), and the container count.
    """
    from exporter.app import build_exporter
    from exporter.config import ExporterConfig
    from exporter.contract import CONTAINER_CPU_USAGE
    from exporter.kube import api_client_from
    from exporter.simulate.node import SimulatedNode

    out: list[list[bytes]] = []
    with tempfile.TemporaryDirectory() as work, SimulatedNode(work, seed=1, pods=pods,
                                                              gpu=False) as sim:
        exporter = build_exporter(
            ExporterConfig(node_name=sim.node_name, cgroup_root=sim.cgroup_root,
                           proc_root=sim.proc_root, host="127.0.0.1", port=0, gpu=False),
            api_client_from(host=sim.api_url), None)
        exporter.start()
        try:
            exporter.pods.wait_synced(30)
            exporter.nodes.wait_synced(30)
            url = f"http://127.0.0.1:{exporter.server.port}/metrics"
            split = re.compile(re.escape(sim.node_name.encode()) + rb"|" + _UID.pattern)
            for _ in range(rounds):
                sim.advance(sim.now + 60)
                body = urllib.request.urlopen(url).read()
                parts: list[bytes] = []
                last = 0
                for m in split.finditer(body):
                    parts += [body[last:m.start()], b"N" if m.group() == sim.node_name.encode()
                              else b"U"]
                    last = m.end()
                out.append([*parts, body[last:]])
            containers = body.count(b"\n" + CONTAINER_CPU_USAGE.name.encode() + b"{")
        finally:
            exporter.stop()
    return out, containers


def scrape_simulated_node(pods: int) -> bytes:
    """One scrape of a simulated ``pods``-pod node's real exporter, as served over HTTP."""
    templates, _ = _templates(pods, 1)
    return _render(templates[0], 0)


def _render(parts: list[bytes], node: int) -> bytes:
    name, uid = f"node-{node:05d}".encode(), f"{node:08x}".encode()
    return b"".join(p if k % 2 == 0 else (name if p == b"N" else uid)
                    for k, p in enumerate(parts))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # listen() backlog: the aggregator opens 32 connections at once


def _serve(pods: int, rounds: int, conn: Connection) -> None:
    templates, containers = _templates(pods, rounds)
    state = {"round": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = self.path.strip("/").split("/")
            if path[0] == "_round":
                state["round"] = int(path[1]) % len(templates)
                body, headers = b"ok", {}
            elif len(path) == 2 and path[0].startswith("node-") and path[1] == "metrics":
                body = _render(templates[state["round"]], int(path[0][5:]))
                headers = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
                if "gzip" in self.headers.get("Accept-Encoding", ""):
                    body, headers["Content-Encoding"] = gzip.compress(body, 1), "gzip"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    conn.send((server.server_address[1], containers, len(_render(templates[0], 0))))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn.recv()  # any message (or the parent's death: EOFError) stops the server
    server.shutdown()


class Fleet:
    """Start the fleet server process; ``url(i)`` is node i's metrics endpoint."""

    def __init__(self, pods: int, rounds: int) -> None:
        self._conn, child = mp.get_context("spawn").Pipe()
        self._proc = mp.get_context("spawn").Process(target=_serve, args=(pods, rounds, child),
                                                     daemon=True)
        self._proc.start()
        self.port, self.containers_per_node, self.payload_bytes = self._conn.recv()

    def url(self, node: int) -> str:
        """Node ``node``'s metrics URL."""
        return f"http://127.0.0.1:{self.port}/node-{node:05d}/metrics"

    def close(self) -> None:
        """Stop the server process."""
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
