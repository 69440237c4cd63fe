"""A realistic simulated node: its instance, its pods, their controllers and their GPUs.

Everything is drawn from one seeded ``random.Random``, so a seed names a node.
This module only builds the model (plain data and Kubernetes JSON); the
cgroup files, the API server and the fake NVML are fed from it elsewhere.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["INSTANCES", "SimContainer", "SimGPU", "SimNode", "SimPod", "generate_node"]

GiB = 1024**3
MiB = 1024**2


@dataclass(frozen=True)
class Instance:
    """A cloud instance type as the simulation needs it."""

    name: str
    provider: str
    cpu: int
    memory_gib: int
    gpus: int = 0
    gpu_model: str = ""


#: A few real instance types (vCPU and memory as the providers publish them).
INSTANCES = (
    Instance("m5.2xlarge", "aws", 8, 32),
    Instance("m6i.4xlarge", "aws", 16, 64),
    Instance("c5.4xlarge", "aws", 16, 32),
    Instance("r5.2xlarge", "aws", 8, 64),
    Instance("n2-standard-8", "gcp", 8, 32),
    Instance("Standard_D8s_v5", "azure", 8, 32),
    Instance("m6i.16xlarge", "aws", 64, 256),
    Instance("n2-standard-64", "gcp", 64, 256),
)
GPU_INSTANCE = Instance("p4d.24xlarge", "aws", 96, 1152, 8, "NVIDIA-A100-SXM4-40GB")
_REGIONS = {"aws": ("us-east-1", "us-east-1a"), "gcp": ("us-central1", "us-central1-a"),
            "azure": ("eastus", "eastus-1")}
_NAMESPACES = ("payments", "checkout", "search", "catalog", "frontend", "auth", "analytics",
               "data-pipeline", "monitoring", "kube-system", "ml-inference", "ml-training")
_TEAMS = {"payments": "fintech", "checkout": "fintech", "search": "discovery",
          "catalog": "discovery", "frontend": "web", "auth": "platform", "analytics": "data",
          "data-pipeline": "data", "monitoring": "platform", "kube-system": "platform",
          "ml-inference": "ml", "ml-training": "ml"}


@dataclass
class SimContainer:
    """One container and its usage state (cores, bytes, seconds)."""

    name: str
    requests: dict[str, str]
    limits: dict[str, str]
    cpu_base: float
    mem_base: float
    mem_growth_per_hour: float
    container_id: str = ""
    init: bool = False
    sidecar: bool = False
    restart_count: int = 0
    cpu_seconds: float = 0.0
    periods: float = 0.0
    throttled_periods: float = 0.0
    throttled_seconds: float = 0.0
    working_set: float = 0.0
    started_at: float = 0.0
    #: GPU devices (uuid) this container runs on, with its process's SM-utilisation base (%).
    gpus: list[tuple[str, float]] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)


@dataclass
class SimPod:
    """One pod with its owner chain."""

    uid: str
    namespace: str
    name: str
    labels: dict[str, str]
    owner: tuple[str, str]  # direct owner (kind, name), e.g. ("ReplicaSet", "web-7d9f")
    containers: list[SimContainer]
    qos: str


@dataclass
class SimGPU:
    """A physical GPU of the simulated node; MIG instances as (uuid, profile, slices)."""

    uuid: str
    index: int
    mode: str  # "whole" | "shared" | "mig"
    mig: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass
class SimNode:
    """The whole simulated node: instance, labels, pods, owner objects and GPUs."""

    name: str
    instance: Instance
    capacity_type: str
    labels: dict[str, str]
    pods: list[SimPod]
    owners: list[dict[str, Any]]  # Deployment/ReplicaSet/CronJob/Job/StatefulSet/DaemonSet JSON
    gpus: list[SimGPU]
    capacity: dict[str, str]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def new_container_id(rng: random.Random) -> str:
    """A fresh 64-hex runtime ID, as containerd makes them."""
    return f"{rng.getrandbits(256):064x}"


def _suffix(rng: random.Random, n: int = 5) -> str:
    return "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))


def _container(rng: random.Random, name: str, cpu_req: float, mem_req_mib: int, *,
               guaranteed: bool = False, besteffort: bool = False,
               extra: dict[str, str] | None = None) -> SimContainer:
    requests: dict[str, str] = {} if besteffort else {
        "cpu": f"{round(cpu_req * 1000)}m", "memory": f"{mem_req_mib}Mi"}
    limits: dict[str, str] = dict(requests) if guaranteed else (
        {} if besteffort else {"memory": f"{mem_req_mib * 2}Mi"})
    for key, value in (extra or {}).items():
        requests[key] = limits[key] = value
    usage_share = rng.uniform(0.15, 1.3)
    return SimContainer(
        name=name, requests=requests, limits=limits,
        cpu_base=max(cpu_req, 0.05) * usage_share,
        mem_base=max(mem_req_mib, 64) * MiB * rng.uniform(0.4, 0.9),
        mem_growth_per_hour=rng.uniform(0, 2) * MiB)


def _owner_object(kind: str, api: str, namespace: str, name: str, uid: str,
                  parent: tuple[str, str, str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid}
    if parent is not None:
        p_kind, p_api, p_name, p_uid = parent
        meta["ownerReferences"] = [{"apiVersion": p_api, "kind": p_kind, "name": p_name,
                                    "uid": p_uid, "controller": True,
                                    "blockOwnerDeletion": True}]
    return {"kind": kind, "apiVersion": api, "metadata": meta}


def _qos(containers: list[SimContainer]) -> str:
    if all(not c.requests and not c.limits for c in containers):
        return "BestEffort"
    if all(c.requests.get(r) and c.requests.get(r) == c.limits.get(r)
           for c in containers for r in ("cpu", "memory")):
        return "Guaranteed"
    return "Burstable"


def _workload(rng: random.Random, ns: str, gpu_extra: dict[str, str] | None
              ) -> tuple[str, str, list[SimContainer], int]:
    """(controller kind, base name, containers, replicas) for one workload."""
    app = rng.choice(("api", "web", "worker", "cache", "gateway", "indexer", "sync", "ingest"))
    if gpu_extra is not None:
        main = _container(rng, "model", rng.choice((2, 4, 8)), rng.choice((8192, 16384)),
                          extra=gpu_extra)
        return "Deployment", f"{ns}-{app}", [main], 1
    roll = rng.random()
    if roll < 0.55:
        containers = [_container(rng, app, rng.choice((0.1, 0.25, 0.5, 1, 2)),
                                 rng.choice((128, 256, 512, 1024, 2048)))]
        if rng.random() < 0.85:
            containers.append(_container(rng, "istio-proxy", 0.1, 128))
        if rng.random() < 0.5:
            containers.append(_container(rng, "log-shipper", 0.05, 64))
        if rng.random() < 0.3:
            init = _container(rng, "migrate", 0.5, 256)
            init.init = True
            containers.append(init)
        return "Deployment", f"{app}", containers, rng.randint(1, 3)
    if roll < 0.7:
        return "StatefulSet", f"{app}-db", [
            _container(rng, "postgres", rng.choice((1, 2)), rng.choice((2048, 4096)),
                       guaranteed=True),
            _container(rng, "metrics", 0.05, 64, guaranteed=True)], rng.randint(1, 2)
    if roll < 0.85:
        return "CronJob", f"{app}-report", [_container(rng, "job", 1, 1024)], 1
    if roll < 0.95:
        return "DaemonSet", f"{app}-agent", [_container(rng, "agent", 0.05, 64),
                                            _container(rng, "reloader", 0.01, 32)], 1
    return "", f"debug-{app}", [_container(rng, "shell", 0, 0, besteffort=True)], 1


def _place_pod(rng: random.Random, ns: str, kind: str, base: str, containers: list[SimContainer],
               node: str, owners: list[dict[str, Any]], owner_uids: dict[str, str]
               ) -> SimPod:
    """Make one pod of a workload, creating its owner chain objects once.

    ``owner_uids`` remembers, per workload, the owner objects already made and
    the next StatefulSet ordinal, so replicas share one chain.
    """
    api = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
           "CronJob": "batch/v1"}
    owner: tuple[str, str] = ("", "")
    if kind == "Deployment":
        rs_name = owner_uids.setdefault(f"rs/{ns}/{base}", f"{base}-{_suffix(rng, 9)}")
        if f"{ns}/{base}" not in owner_uids:
            dep_uid = owner_uids[f"{ns}/{base}"] = _uuid(rng)
            owners.append(_owner_object("Deployment", api[kind], ns, base, dep_uid))
            owners.append(_owner_object("ReplicaSet", "apps/v1", ns, rs_name, _uuid(rng),
                                        ("Deployment", api[kind], base, dep_uid)))
        owner, name = ("ReplicaSet", rs_name), f"{rs_name}-{_suffix(rng)}"
    elif kind == "CronJob":
        job_name = f"{base}-{rng.randint(28_000_000, 29_000_000)}"
        cj_uid = owner_uids.setdefault(f"{ns}/{base}", _uuid(rng))
        if not any(o["metadata"]["name"] == base for o in owners if o["kind"] == "CronJob"):
            owners.append(_owner_object("CronJob", api[kind], ns, base, cj_uid))
        owners.append(_owner_object("Job", "batch/v1", ns, job_name, _uuid(rng),
                                    ("CronJob", api[kind], base, cj_uid)))
        owner, name = ("Job", job_name), f"{job_name}-{_suffix(rng)}"
    elif kind in ("StatefulSet", "DaemonSet"):
        if f"{ns}/{base}" not in owner_uids:
            owner_uids[f"{ns}/{base}"] = _uuid(rng)
            owners.append(_owner_object(kind, api[kind], ns, base, owner_uids[f"{ns}/{base}"]))
        ordinal = owner_uids.get(f"n/{ns}/{base}", "0")
        owner_uids[f"n/{ns}/{base}"] = str(int(ordinal) + 1)
        owner = (kind, base)
        name = f"{base}-{_suffix(rng)}" if kind == "DaemonSet" else f"{base}-{ordinal}"
    else:
        name = base
    labels = {"app": base, "team": _TEAMS[ns], "app.kubernetes.io/name": base}
    return SimPod(uid=_uuid(rng), namespace=ns, name=name, labels=labels, owner=owner,
                  containers=containers, qos=_qos(containers))


def _gpu_layout(rng: random.Random) -> list[SimGPU]:
    """8 A100-40GB: 0-3 whole, 4-5 time-sliced, 6 as 7×1g.5gb, 7 as 3g.20gb+2g.10gb+2×1g.5gb."""
    gpus = [SimGPU(f"GPU-{_uuid(rng)}", i, "whole") for i in range(4)]
    gpus += [SimGPU(f"GPU-{_uuid(rng)}", i, "shared") for i in (4, 5)]
    gpus.append(SimGPU(f"GPU-{_uuid(rng)}", 6, "mig",
                       [(f"MIG-{_uuid(rng)}", "1g.5gb", 1) for _ in range(7)]))
    gpus.append(SimGPU(f"GPU-{_uuid(rng)}", 7, "mig", [
        (f"MIG-{_uuid(rng)}", "3g.20gb", 3), (f"MIG-{_uuid(rng)}", "2g.10gb", 2),
        (f"MIG-{_uuid(rng)}", "1g.5gb", 1), (f"MIG-{_uuid(rng)}", "1g.5gb", 1)]))
    return gpus


def _gpu_pods(rng: random.Random, gpus: list[SimGPU]) -> list[tuple[str, dict[str, str], list]]:
    """(namespace, GPU resource request, devices with SM base %) for each GPU workload pod."""
    whole = [g.uuid for g in gpus if g.mode == "whole"]
    shared = [g.uuid for g in gpus if g.mode == "shared"]
    mig = [m for g in gpus if g.mode == "mig" for m in g.mig]
    plan: list[tuple[str, dict[str, str], list]] = [
        ("ml-training", {"nvidia.com/gpu": "2"}, [(whole[0], 92.0), (whole[1], 90.0)]),
        ("ml-training", {"nvidia.com/gpu": "1"}, [(whole[2], 75.0)]),
    ]  # whole[3] stays unallocated: idle GPU cost
    for i in range(3):  # three inference pods time-slice shared[0]; one uses shared[1]
        plan.append(("ml-inference", {"nvidia.com/gpu.shared": "1"},
                     [(shared[0], (20.0, 35.0, 10.0)[i])]))
    plan.append(("ml-inference", {"nvidia.com/gpu.shared": "1"}, [(shared[1], 40.0)]))
    for uuid_, profile, _slices in mig[:6]:
        plan.append(("ml-inference", {f"nvidia.com/mig-{profile}": "1"},
                     [(uuid_, rng.uniform(20, 80))]))
    return plan


def generate_node(seed: int, pods: int, gpu: bool) -> SimNode:
    """Draw a node with about ``pods`` pods; a GPU node adds its GPU workloads on top."""
    rng = random.Random(seed)
    # Requests average about half a core a pod: pick a size the scheduler could fill so.
    fits = [i for i in INSTANCES if i.cpu >= pods * 0.5] or [max(INSTANCES, key=lambda i: i.cpu)]
    instance = GPU_INSTANCE if gpu else rng.choice(fits)
    region, zone = _REGIONS[instance.provider]
    capacity_type = "spot" if rng.random() < 0.35 else "on_demand"
    name = f"ip-10-0-{rng.randint(0, 255)}-{rng.randint(1, 254)}.ec2.internal" \
        if instance.provider == "aws" else f"{instance.provider}-node-{_suffix(rng)}"
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
              "node.kubernetes.io/instance-type": instance.name,
              "topology.kubernetes.io/region": region, "topology.kubernetes.io/zone": zone,
              "karpenter.sh/capacity-type": "spot" if capacity_type == "spot" else "on-demand"}
    capacity = {"cpu": str(instance.cpu), "memory": f"{instance.memory_gib * 1024 * 1024}Ki",
                "pods": "110"}
    sim_pods: list[SimPod] = []
    owners: list[dict[str, Any]] = []
    owner_uids: dict[str, str] = {}
    gpus: list[SimGPU] = []
    if gpu:
        gpus = _gpu_layout(rng)
        labels.update({"nvidia.com/gpu.product": instance.gpu_model,
                       "nvidia.com/gpu.sharing-strategy": "time-slicing",
                       "nvidia.com/mig.strategy": "mixed", "nvidia.com/gpu.replicas": "4"})
        capacity.update({"nvidia.com/gpu": "4", "nvidia.com/gpu.shared": "8",
                         "nvidia.com/mig-1g.5gb": "9", "nvidia.com/mig-2g.10gb": "1",
                         "nvidia.com/mig-3g.20gb": "1"})
        for ns, extra, devices in _gpu_pods(rng, gpus):
            kind, base, containers, _ = _workload(rng, ns, extra)
            base = f"{base}-{len(sim_pods)}"
            containers[0].gpus = devices
            sim_pods.append(_place_pod(rng, ns, kind, base, containers, name, owners,
                                       owner_uids))
    while len(sim_pods) < pods:
        ns = rng.choice(_NAMESPACES[:-2])
        kind, base, template, replicas = _workload(rng, ns, None)
        for _ in range(min(replicas, pods - len(sim_pods))):
            containers = [SimContainer(**{**vars(c), "gpus": [], "pids": []}) for c in template]
            sim_pods.append(_place_pod(rng, ns, kind, base, containers, name, owners,
                                       owner_uids))
    return SimNode(name=name, instance=instance, capacity_type=capacity_type, labels=labels,
                   pods=sim_pods, owners=owners, gpus=gpus, capacity=capacity)
