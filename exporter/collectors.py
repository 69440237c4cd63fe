"""The exporter's custom collectors: each reads its source on scrape and yields families.

Sources come in as arguments (a cgroup reader, the pod index, a node store, a
GPU reader), which is how tests and the simulated node feed fixture trees, a
local API server and a fake pynvml through exactly the code a real node runs.
A container's identity labels are rendered once per scrape and shared by all
of its series (see :mod:`exporter.exposition`).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from exporter import contract as c
from exporter.cgroup_names import container_of_pid
from exporter.cgroups import CgroupReader, ContainerCgroup
from exporter.errors import CgroupError, CgroupGone
from exporter.exposition import Family, label_pairs
from exporter.gpu import GPUProcess, GPUReader
from exporter.model import ContainerInfo, PodInfo
from exporter.nodeinfo import node_facts
from exporter.podindex import PodIndex, PodSnapshot, PodStore
from exporter.resources import is_gpu_resource
from exporter.selfmetrics import CollectorStats

__all__ = ["CgroupCollector", "GPUCollector", "Identities", "NodeCollector", "PodCollector",
           "label_name"]

log = logging.getLogger(__name__)

_TERMINAL_PHASES = ("Succeeded", "Failed")
_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def label_name(pod_label: str) -> str:
    """``app.kubernetes.io/name`` → ``label_app_kubernetes_io_name`` (kube-state-metrics style)."""
    return c.POD_LABEL_PREFIX + _LABEL_CHARS.sub("_", pod_label)


class Identities:
    """Rendered identity labels per container, kept while its pod record is the same object.

    The pod index hands out the same :class:`PodInfo` until the pod changes, so
    a container's label string is escaped and joined once, not on every scrape
    by every collector.
    """

    def __init__(self, node: str) -> None:
        self._node = node
        self._cache: dict[tuple[str, str], tuple[PodInfo, str]] = {}

    def __call__(self, pod: PodInfo, container: ContainerInfo) -> str:
        """``namespace="…",pod="…",uid="…",container="…",node="…",controller_kind="…",…``."""
        key = (pod.uid, container.name)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is pod:
            return hit[1]
        text = label_pairs(c.CONTAINER_LABELS, (pod.namespace, pod.name, pod.uid, container.name,
                                                self._node, pod.controller_kind, pod.controller))
        if len(self._cache) > 4 * 1024:  # pods come and go: forget the departed now and then
            self._cache.clear()
        self._cache[key] = (pod, text)
        return text


def _extra(name: str, value: str) -> str:
    return "," + label_pairs((name,), (value,))


class CgroupCollector:
    """CPU and memory usage of every container of a known pod, read from cgroups."""

    def __init__(self, reader: CgroupReader, index: PodIndex, identities: Identities,
                 stats: CollectorStats, rescan_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._reader, self._index, self._ids, self._stats = reader, index, identities, stats
        self._rescan_seconds, self._clock = rescan_seconds, clock
        self._scan: tuple[object, float, dict[tuple[str, str], ContainerCgroup]] | None = None

    def _cgroups(self, snapshot: PodSnapshot) -> dict[tuple[str, str], ContainerCgroup]:
        """The tree's container cgroups, walked again only when it may have changed.

        Containers come and go only with a change of the pod cache (a new container ID
        in a pod's status), so while the index snapshot is the same object the last
        walk stands; a vanished cgroup or the periodic rescan (for containers the API
        does not know about) walks again. Walking is a fifth of a scrape on a full node.
        """
        now = self._clock()
        last = self._scan
        if last is None or last[0] is not snapshot or now - last[1] >= self._rescan_seconds:
            self._scan = (snapshot, now, self._reader.scan(keep_open=snapshot.containers))
        return self._scan[2]

    def collect(self) -> Iterator[Family]:
        """Read each matched container's cgroup, yield the usage families."""
        snapshot = self._index.current()
        families = {m: m.family() for m in (
            c.CONTAINER_CPU_USAGE, c.CONTAINER_CPU_PERIODS, c.CONTAINER_CPU_THROTTLED_PERIODS,
            c.CONTAINER_CPU_THROTTLED, c.CONTAINER_MEMORY_WORKING_SET, c.CONTAINER_MEMORY_RSS)}
        unmatched = 0
        try:
            cgroups = self._cgroups(snapshot)
        except CgroupError as exc:
            self._stats.available["cgroup"] = False
            self._stats.error("cgroup")
            log.warning("no cgroup data this scrape: %s", exc)
            return
        self._stats.available["cgroup"] = True
        for key, cgroup in cgroups.items():
            match = snapshot.containers.get(key)
            if match is None:
                # A pod's sandbox, or a pod the cache has not seen (yet / any more).
                unmatched += key[0] not in snapshot.pods
                continue
            try:
                usage = self._reader.read(cgroup)
            except CgroupGone:
                self._scan = None  # the tree changed under us: walk it next time
                continue
            self._stats.error("cgroup", usage.errors)
            labels = self._ids(*match)
            values = [(c.CONTAINER_CPU_USAGE, usage.cpu_usage_seconds),
                      (c.CONTAINER_MEMORY_WORKING_SET, usage.memory_working_set_bytes),
                      (c.CONTAINER_MEMORY_RSS, usage.memory_rss_bytes)]
            if "cpu" in match[1].limits or usage.cpu_periods:
                # CFS only counts periods under a quota: without a CPU limit these stay 0.
                values += [(c.CONTAINER_CPU_PERIODS, usage.cpu_periods),
                           (c.CONTAINER_CPU_THROTTLED_PERIODS, usage.cpu_throttled_periods),
                           (c.CONTAINER_CPU_THROTTLED, usage.cpu_throttled_seconds)]
            for metric, value in values:
                if not math.isnan(value):
                    families[metric].add_pairs(labels, value)
        self._stats.unmatched_cgroups = unmatched
        yield from families.values()


class PodCollector:
    """Pod identity, allow-listed labels, and requests and limits from the pod specs."""

    def __init__(self, index: PodIndex, identities: Identities, node: str,
                 label_allowlist: Iterable[str]) -> None:
        self._index, self._ids, self._node = index, identities, node
        self._allow = tuple(dict.fromkeys(label_allowlist))
        self._label_names = [label_name(k) for k in self._allow]
        self._cached: tuple[object, list[Family]] = (None, [])

    def collect(self) -> Iterator[Family]:
        """Yield pod info, labels and the request/limit families of non-terminal pods.

        They change only when a pod does, so the families of one index snapshot
        are built once and served until the next.
        """
        snapshot = self._index.current()
        if self._cached[0] is not snapshot:
            self._cached = (snapshot, self._build(snapshot.pods.values()))
        yield from self._cached[1]

    def _build(self, pods: Iterable[PodInfo]) -> list[Family]:
        info, labels = c.POD_INFO.family(), c.POD_LABELS_INFO.family(self._label_names)
        per_container = {m: m.family() for m in _CONTAINER_AMOUNTS}
        per_pod = {m: m.family() for m in _POD_AMOUNTS if m is not None}
        for pod in sorted(pods, key=lambda p: (p.namespace, p.name)):
            pod_labels = label_pairs(c.POD_LABELS, (pod.namespace, pod.name, pod.uid, self._node,
                                                    pod.controller_kind, pod.controller))
            info.add_pairs(pod_labels + "," + label_pairs(("qos_class", "phase"),
                                                          (pod.qos_class, pod.phase)), 1)
            labels.add([pod.namespace, pod.name, pod.uid,
                        *(pod.labels.get(k, "") for k in self._allow)], 1)
            if pod.phase in _TERMINAL_PHASES:
                continue  # it no longer holds what it asked for
            for container in pod.containers:
                if not container.init:
                    _amounts(per_container, _CONTAINER_AMOUNTS, self._ids(pod, container),
                             container.requests, container.limits)
            _amounts(per_pod, _POD_AMOUNTS, pod_labels, pod.effective_requests,
                     pod.effective_limits)
        return [info, labels, *per_container.values(), *per_pod.values()]


#: (cpu request, cpu limit, memory request, memory limit, gpu request, gpu limit)
_CONTAINER_AMOUNTS = (c.CONTAINER_CPU_REQUEST, c.CONTAINER_CPU_LIMIT, c.CONTAINER_MEMORY_REQUEST,
                      c.CONTAINER_MEMORY_LIMIT, c.CONTAINER_GPU_REQUEST, c.CONTAINER_GPU_LIMIT)
_POD_AMOUNTS = (c.POD_CPU_REQUEST, c.POD_CPU_LIMIT, c.POD_MEMORY_REQUEST, c.POD_MEMORY_LIMIT,
                c.POD_GPU_REQUEST, None)


def _amounts(families: Mapping[c.Metric, Family], metrics: tuple[c.Metric | None, ...],
             labels: str, requests: Mapping[str, float], limits: Mapping[str, float]) -> None:
    """Add one identity's requests and limits to the families of ``metrics``."""
    cpu_req, cpu_lim, mem_req, mem_lim, gpu_req, gpu_lim = metrics
    for metric, amounts, resource in ((cpu_req, requests, "cpu"), (cpu_lim, limits, "cpu"),
                                      (mem_req, requests, "memory"),
                                      (mem_lim, limits, "memory")):
        if metric is not None and resource in amounts:
            families[metric].add_pairs(labels, amounts[resource])
    for metric, amounts in ((gpu_req, requests), (gpu_lim, limits)):
        if metric is None:
            continue
        for resource, value in sorted(amounts.items()):
            if is_gpu_resource(resource):
                families[metric].add_pairs(labels + _extra("resource", resource), value)


class NodeCollector:
    """This node's pricing identity, capacity and allocatable."""

    def __init__(self, store: PodStore, node: str, gpu_model: Callable[[], str]) -> None:
        self._store, self._node, self._gpu_model = store, node, gpu_model

    def collect(self) -> Iterator[Family]:
        """Yield node info and capacity families (empty until the Node was read once)."""
        raw = next((n for n in self._store.snapshot().values()
                    if (n.get("metadata") or {}).get("name") == self._node), None)
        if raw is None:
            return
        facts = node_facts(raw, self._gpu_model())
        info = c.NODE_INFO.family()
        info.add([facts.name, facts.provider, facts.instance_type, facts.region,
                  facts.zone, facts.capacity_type, facts.gpu_model, facts.gpu_sharing], 1)
        yield info
        for metric, amounts, resource in (
            (c.NODE_CPU_CAPACITY, facts.capacity, "cpu"),
            (c.NODE_CPU_ALLOCATABLE, facts.allocatable, "cpu"),
            (c.NODE_MEMORY_CAPACITY, facts.capacity, "memory"),
            (c.NODE_MEMORY_ALLOCATABLE, facts.allocatable, "memory"),
        ):
            family = metric.family()
            if resource in amounts:
                family.add([facts.name], amounts[resource])
            yield family
        for metric, amounts in ((c.NODE_GPU_CAPACITY, facts.capacity),
                                (c.NODE_GPU_ALLOCATABLE, facts.allocatable)):
            family = metric.family()
            for resource in facts.gpu_resources():
                if resource in amounts:
                    family.add([facts.name, resource], amounts[resource])
            yield family


class GPUCollector:
    """Per-device GPU metrics, and per-container GPU use mapped through /proc/<pid>/cgroup."""

    def __init__(self, reader: GPUReader, index: PodIndex, identities: Identities,
                 proc_root: str, node: str, stats: CollectorStats) -> None:
        self._reader, self._index, self._ids, self._proc = reader, index, identities, proc_root
        self._node, self._stats = node, stats
        self.last_model = ""

    def collect(self) -> Iterator[Family]:
        """Read NVML once and yield device and container GPU families."""
        self._stats.available["gpu"] = self._reader.available
        if not self._reader.available:
            return
        snap = self._reader.read()
        self._stats.error("gpu", snap.errors)
        info, share = c.GPU_INFO.family(), c.GPU_PHYSICAL_SHARE.family()
        gauges = {m: m.family() for m in (c.GPU_MEMORY_TOTAL, c.GPU_MEMORY_USED,
                                          c.GPU_UTILIZATION, c.GPU_POWER)}
        for dev in snap.devices:
            labels = [self._node, dev.uuid]
            info.add([*labels, str(dev.index), dev.model, dev.mig_profile, dev.parent_uuid], 1)
            share.add(labels, dev.physical_share)
            for metric, value in ((c.GPU_MEMORY_TOTAL, dev.memory_total_bytes),
                                  (c.GPU_MEMORY_USED, dev.memory_used_bytes),
                                  (c.GPU_UTILIZATION, dev.utilization_ratio),
                                  (c.GPU_POWER, dev.power_watts)):
                if not math.isnan(value):
                    gauges[metric].add(labels, value)
            if not dev.parent_uuid and dev.model:
                self.last_model = dev.model
        yield from (info, share, *gauges.values())
        yield from self._per_container(snap.processes)

    def _per_container(self, processes: Iterable[GPUProcess]) -> Iterator[Family]:
        containers = self._index.current().containers
        memory: dict[tuple[str, str, str], list[float]] = {}
        sm: dict[tuple[str, str, str], list[float]] = {}
        for proc in processes:
            try:
                owner = container_of_pid(self._proc, proc.pid)
            except CgroupError as exc:  # e.g. no hostPID / host /proc not mounted
                self._stats.error("gpu")
                log.debug("GPU process %d: %s", proc.pid, exc)
                continue
            if owner is None or owner not in containers:
                continue  # exited, or not a pod's process (e.g. a host daemon)
            key = (*owner, proc.gpu_uuid)
            memory.setdefault(key, []).append(proc.memory_used_bytes)
            sm.setdefault(key, []).append(proc.sm_utilization_ratio)
        mem_family = c.CONTAINER_GPU_MEMORY_USED.family()
        sm_family = c.CONTAINER_GPU_SM_UTILIZATION.family()
        for family, values in ((mem_family, memory), (sm_family, sm)):
            for (uid, cid, gpu_uuid), parts in sorted(values.items()):
                known = [v for v in parts if not math.isnan(v)]
                if known:
                    family.add_pairs(self._ids(*containers[(uid, cid)])
                                     + _extra("gpu_uuid", gpu_uuid), sum(known))
        yield from (mem_family, sm_family)
