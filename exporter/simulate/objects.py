"""Kubernetes JSON for the simulated node and its pods, shaped as the API returns them."""

from __future__ import annotations

import datetime
import zlib
from typing import Any

from kubernetes.utils import parse_quantity

from exporter.simulate.workload import SimNode, SimPod

__all__ = ["node_object", "pod_object"]

_API = {"ReplicaSet": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
        "Job": "batch/v1"}


def _ts(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_object(node: SimNode) -> dict[str, Any]:
    """The Node: labels for pricing, providerID, capacity and allocatable."""
    cap = node.capacity
    cpu_m = int(parse_quantity(cap["cpu"]) * 1000)
    mem_ki = int(parse_quantity(cap["memory"]) / 1024)
    # Kubelet reservations as EKS sets them for this size: a little CPU, ~1.5 GiB of memory.
    allocatable = {**cap, "cpu": f"{cpu_m - 90 - cpu_m // 100}m",
                   "memory": f"{mem_ki - 1572864}Ki"}
    zone = node.labels.get("topology.kubernetes.io/zone", "")
    provider = node.instance.provider
    provider_id = {"aws": f"aws:///{zone}/i-0{zlib.crc32(node.name.encode()):016x}",
                   "gcp": f"gce://kubetally-sim/{zone}/{node.name}",
                   "azure": f"azure:///subscriptions/sim/{node.name}"}[provider]
    return {
        "kind": "Node", "apiVersion": "v1",
        "metadata": {"name": node.name, "labels": dict(node.labels)},
        "spec": {"providerID": provider_id},
        "status": {"capacity": dict(cap), "allocatable": allocatable,
                   "nodeInfo": {"containerRuntimeVersion": "containerd://1.7.22",
                                "kubeletVersion": "v1.31.2"}},
    }


def _resources(requests: dict[str, str], limits: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = dict(requests)
    if limits:
        out["limits"] = dict(limits)
    return out


def pod_object(pod: SimPod, node_name: str, t: float) -> dict[str, Any]:
    """The Pod with its spec, owner reference and container statuses."""
    meta: dict[str, Any] = {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid,
                            "labels": dict(pod.labels), "creationTimestamp": _ts(t)}
    kind, owner = pod.owner
    if kind:
        meta["ownerReferences"] = [{"apiVersion": _API[kind], "kind": kind, "name": owner,
                                    "uid": "", "controller": True,
                                    "blockOwnerDeletion": True}]
    app = [c for c in pod.containers if not c.init]
    init = [c for c in pod.containers if c.init]
    spec = {
        "nodeName": node_name, "restartPolicy": "Always" if kind != "Job" else "Never",
        "containers": [{"name": c.name, "image": f"registry.example.com/{c.name}:1.4.2",
                        "resources": _resources(c.requests, c.limits)} for c in app],
    }
    if init:
        spec["initContainers"] = [{"name": c.name, "image": "registry.example.com/migrate:7",
                                   "resources": _resources(c.requests, c.limits)}
                                  for c in init]
    status: dict[str, Any] = {
        "phase": "Running", "qosClass": pod.qos, "startTime": _ts(t),
        "containerStatuses": [{
            "name": c.name, "containerID": f"containerd://{c.container_id}", "ready": True,
            "restartCount": c.restart_count, "started": True,
            "state": {"running": {"startedAt": _ts(c.started_at or t)}},
            "image": f"registry.example.com/{c.name}:1.4.2", "imageID": ""} for c in app],
    }
    if init:
        status["initContainerStatuses"] = [{
            "name": c.name, "containerID": f"containerd://{c.container_id}", "ready": True,
            "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}} for c in init]
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": status}
