"""The exporter's options, declared once (flags, environment, file and README come from here)."""

from __future__ import annotations

from dataclasses import dataclass

from kubetally.config import option

__all__ = ["SECTION", "ExporterConfig"]

SECTION = "exporter"


@dataclass(frozen=True, slots=True)
class ExporterConfig:
    """Options of ``kubetally exporter``."""

    port: int = option(9102, "TCP port serving /metrics and /healthz")
    host: str = option("0.0.0.0", "address to listen on")
    node_name: str = option(
        "", "this node's name (the DaemonSet sets NODE_NAME from the downward API)",
        env_aliases=("NODE_NAME",))
    cgroup_root: str = option("/sys/fs/cgroup", "mount point of the cgroup hierarchy (v1 or v2)")
    proc_root: str = option("/proc", "host /proc, to map GPU processes to containers")
    kubeconfig: str = option("", "kubeconfig file when not running in a pod")
    kube_api: str = option("", "API server URL, overriding in-cluster config and kubeconfig")
    pod_label_allowlist: tuple[str, ...] = option(
        ("app", "app.kubernetes.io/name", "team"),
        "comma list of pod labels exported on kubetally_pod_labels (bounds cardinality)")
    gpu: bool = option(True, "read GPUs through NVML; off skips NVML entirely")
    watch_timeout: int = option(300, "seconds before a watch is re-established")
    simulate: bool = option(False, "serve a simulated node instead of the real one (demo, bench)")
    seed: int = option(1, "seed of the simulated node")
    sim_pods: int = option(40, "pods on the simulated node")
    sim_gpu: bool = option(True, "the simulated node is a GPU node (whole, shared and MIG GPUs)")
    sim_tick: float = option(5.0, "seconds between updates of the simulated node")
