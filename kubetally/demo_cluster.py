"""The demo's simulated cluster: N simulated nodes, a real exporter on each, one aggregator.

This is the assembly of ``tests/test_aggregator_e2e.py`` at demo scale, kept apart from
the demo's timeline (backfill, live loop) so tests can build a cluster and drive it.
Only the nodes' sources are simulated: every number in the store went through the real
exporters' HTTP endpoints and the aggregator's scrape → parse → cost → store path.

The nodes' cgroup trees are rewritten on every advance (about 150 files a node), so they
live on tmpfs (``/dev/shm``) when there is one: on this project's reference VM that makes
an advance ten times faster than on disk, and the backfill is dominated by it otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from aggregator.app import Running, build_aggregator
from aggregator.config import AggregatorConfig
from aggregator.pricebook import load_price_book
from exporter.app import Exporter, build_exporter
from exporter.config import ExporterConfig
from exporter.errors import ExporterError
from exporter.kube import api_client_from
from exporter.simulate.node import SimulatedNode

__all__ = ["DemoCluster", "free_port", "start_cluster"]

#: Seconds an exporter may take to list its node's pods and Node object at start.
SYNC_TIMEOUT = 30.0


def free_port(host: str, wanted: int) -> int:
    """``wanted`` if it can be bound on ``host`` now, else an ephemeral port that can.

    A second demo (or a real aggregator on 9103) must not stop this one from starting.
    """
    with socket.socket() as s:
        try:
            s.bind((host, wanted))
            return s.getsockname()[1]
        except OSError:
            s.bind((host, 0))
            return s.getsockname()[1]


def _scratch_dir() -> str:
    """A private folder for the nodes' files, on tmpfs when the machine has one."""
    shm = "/dev/shm"
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    return tempfile.mkdtemp(prefix="kubetally-demo-", dir=base)


@dataclass
class DemoCluster:
    """What the demo runs; :meth:`close` stops all of it, in reverse order of start."""

    workdir: str
    sims: list[SimulatedNode] = field(default_factory=list)
    exporters: list[Exporter] = field(default_factory=list)
    running: Running | None = None
    metrics_server: WSGIServer | None = None
    metrics_thread: threading.Thread | None = None
    metrics_port: int = 0

    @property
    def exporter_urls(self) -> list[str]:
        """``host:port`` of every exporter, node 0 (the GPU node) first."""
        return [f"127.0.0.1:{e.server.port}" for e in self.exporters]

    def advance(self, t: float) -> None:
        """Move every simulated node to time ``t`` (before the interval ending at ``t``)."""
        for sim in self.sims:
            sim.advance(t)

    def close(self) -> None:
        """Stop the aggregator, its /metrics server, the exporters and the nodes; idempotent."""
        if self.running is not None:
            self.running.close()
            self.running = None
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
            self.metrics_server = None
        if self.metrics_thread is not None:
            self.metrics_thread.join(timeout=5)
            self.metrics_thread = None
        for exporter in self.exporters:
            exporter.stop()
        self.exporters.clear()
        for sim in self.sims:
            sim.close()
        self.sims.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_cluster(*, nodes: int, pods: int, seed: int, start: float, store: str,
                  interval: int, host: str, port: int) -> DemoCluster:
    """Start ``nodes`` simulated nodes (node 0 with GPUs) at simulated time ``start``.

    Each gets a real exporter on an ephemeral port; the aggregator targets them all and
    writes ``store`` with raw step ``interval``. Its /metrics is served on ``port`` (or an
    ephemeral port when taken) by a server the cluster owns, so :meth:`DemoCluster.close`
    can close it (``build_aggregator``'s own server has no handle to stop it).
    """
    cluster = DemoCluster(_scratch_dir())
    try:
        for i in range(nodes):
            sim = SimulatedNode(os.path.join(cluster.workdir, f"node{i}"), seed=seed * 1000 + i,
                                pods=pods, gpu=i == 0, start=start)
            cluster.sims.append(sim.__enter__())
            cfg = ExporterConfig(node_name=sim.node_name, cgroup_root=sim.cgroup_root,
                                 proc_root=sim.proc_root, kube_api=sim.api_url,
                                 host="127.0.0.1", port=0, gpu=sim.nvml is not None)
            exporter = build_exporter(cfg, api_client_from(host=sim.api_url), sim.nvml)
            exporter.start()
            cluster.exporters.append(exporter)
        for exporter in cluster.exporters:
            if not (exporter.pods.wait_synced(SYNC_TIMEOUT)
                    and exporter.nodes.wait_synced(SYNC_TIMEOUT)):
                raise ExporterError("a simulated node's API server did not answer in time")
        agg_cfg = AggregatorConfig(targets=tuple(cluster.exporter_urls), store=store,
                                   interval=interval, cluster="demo", timeout=10.0)
        cluster.running = build_aggregator(agg_cfg, load_price_book(None, environ={}),
                                           serve_metrics=False)
        cluster.metrics_port = free_port(host, port)
        cluster.metrics_server, cluster.metrics_thread = start_http_server(
            cluster.metrics_port, host, cluster.running.registry)
    except BaseException:
        with contextlib.suppress(OSError):
            cluster.close()
        raise
    return cluster
