"""Wiring: build a running exporter from its configuration and its three seams.

``build_exporter`` takes the API client, the pynvml module (or a fake, or None)
and the config, so the real node, the simulated node and the tests all run
the same assembly; nothing here reads the environment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from kubernetes import client as k8s

from exporter.cgroups import CgroupReader
from exporter.collectors import (
    CgroupCollector,
    GPUCollector,
    Identities,
    NodeCollector,
    PodCollector,
)
from exporter.config import ExporterConfig
from exporter.errors import ConfigError
from exporter.exposition import Registry
from exporter.gpu import GPUReader
from exporter.kube import ObjectWatcher
from exporter.kubeapi import LeanKubeAPI
from exporter.owners import OwnerResolver
from exporter.podindex import PodIndex
from exporter.selfmetrics import CollectorStats, Instrumented, KubeState, SelfCollector
from exporter.server import MetricsServer, make_app

__all__ = ["Exporter", "build_exporter", "package_version"]

log = logging.getLogger(__name__)


def package_version() -> str:
    """The installed distribution's version, or ``0+unknown`` from a bare checkout."""
    try:
        return version("kubetally")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass
class Exporter:
    """A wired exporter: its registry, HTTP server, watchers and GPU reader."""

    registry: Registry
    server: MetricsServer
    pods: ObjectWatcher
    nodes: ObjectWatcher
    gpu: GPUReader
    stats: CollectorStats
    gpu_enabled: bool = True
    _started: bool = field(default=False, repr=False)

    def start(self) -> None:
        """Start watching the API, open NVML and begin serving."""
        self.pods.start()
        self.nodes.start()
        self.stats.available["gpu"] = self.gpu_enabled and self.gpu.start()
        self.server.start()
        self._started = True

    def stop(self) -> None:
        """Stop serving and watching; release NVML."""
        if self._started:
            self.server.stop()
            self.pods.stop()
            self.nodes.stop()
            self.gpu.close()
            self._started = False


def build_exporter(config: ExporterConfig, api_client: k8s.ApiClient, nvml: Any | None) -> Exporter:
    """Assemble collectors, registry and server for one node."""
    if not config.node_name:
        raise ConfigError("the node name is required: set --node-name, KUBETALLY_EXPORTER_NODE_NAME"
                          " or NODE_NAME (the DaemonSet sets it from spec.nodeName)")
    node = config.node_name
    api = LeanKubeAPI(api_client)
    pods = ObjectWatcher(api.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}",
                         resource="pods", watch_timeout_seconds=config.watch_timeout)
    nodes = ObjectWatcher(api.list_node, field_selector=f"metadata.name={node}",
                          resource="nodes", watch_timeout_seconds=config.watch_timeout)
    owners = OwnerResolver(api, api)
    stats = CollectorStats()
    index = PodIndex(pods, owners.resolve, on_error=lambda _msg: stats.error("kube"))
    gpu = GPUReader(nvml if config.gpu else None)
    identities = Identities(node)
    gpu_collector = GPUCollector(gpu, index, identities, config.proc_root, node, stats)

    registry = Registry()
    for name, collector in (
        ("cgroup", CgroupCollector(CgroupReader(config.cgroup_root), index, identities, stats)),
        ("kube", PodCollector(index, identities, node, config.pod_label_allowlist)),
        ("node", NodeCollector(nodes, node, lambda: gpu_collector.last_model)),
        ("gpu", gpu_collector),
    ):
        registry.register(Instrumented(name, collector, stats))

    def kube_state() -> KubeState:
        restarts = {("pods", r): n for r, n in pods.restarts.items()}
        restarts.update({("nodes", r): n for r, n in nodes.restarts.items()})
        return KubeState(len(pods.snapshot()), pods.synced and nodes.synced, restarts,
                         pods.errors + nodes.errors + owners.errors)

    registry.register(SelfCollector(stats, package_version(), node, kube_state))
    server = MetricsServer(make_app(registry), config.host, config.port)
    return Exporter(registry, server, pods, nodes, gpu, stats, gpu_enabled=config.gpu)
