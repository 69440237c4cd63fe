"""The exporter contract: every metric the exporter publishes, in one place.

The aggregator, the recording rules and the tests import these definitions
rather than spelling metric names again, so a rename happens here or nowhere.
Names follow the Prometheus conventions: the ``kubetally_`` prefix, base
units as suffix (``_seconds_total``, ``_bytes``, ``_cores``, ``_ratio``,
``_watts``, ``_devices``), ``_total`` on counters only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from exporter.exposition import Family

MetricType = Literal["counter", "gauge"]

#: Identity of a container series; owner labels resolve ReplicaSet→Deployment, Job→CronJob.
CONTAINER_LABELS = ("namespace", "pod", "uid", "container", "node", "controller_kind", "controller")
#: Identity of a pod series.
POD_LABELS = ("namespace", "pod", "uid", "node", "controller_kind", "controller")
NODE_LABELS = ("node",)
GPU_LABELS = ("node", "gpu_uuid")
COLLECTOR_LABELS = ("collector",)

#: Prefix of the label names that carry allow-listed pod labels on ``kubetally_pod_labels``.
POD_LABEL_PREFIX = "label_"


@dataclass(frozen=True, slots=True, eq=False)
class Metric:
    """One metric family: its exposition name, type, unit, help text and label names.

    Compared by identity: each is a module-level singleton, and collectors key
    dicts by them on every scrape, where a field-by-field hash would cost.
    """

    name: str
    type: MetricType
    unit: str
    help: str
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.name.startswith("kubetally_"):
            raise ValueError(f"{self.name}: metric names carry the kubetally_ prefix")
        if (self.type == "counter") != self.name.endswith("_total"):
            raise ValueError(f"{self.name}: counters, and only counters, end in _total")
        base = self.name.removesuffix("_total")
        if self.unit and not base.endswith("_" + self.unit):
            raise ValueError(f"{self.name}: name must end with its unit {self.unit!r}")

    def family(self, extra_labels: Iterable[str] = ()) -> Family:
        """A fresh, empty family for one scrape."""
        return Family(self.name, self.type, self.help, (*self.labels, *extra_labels))


def _m(name: str, type_: MetricType, unit: str, help_: str, labels: tuple[str, ...]) -> Metric:
    return Metric(name, type_, unit, help_, labels)


# --- per container: usage read from cgroups --------------------------------------------------
CONTAINER_CPU_USAGE = _m(
    "kubetally_container_cpu_usage_seconds_total", "counter", "seconds",
    "CPU time consumed by the container (cgroup v2 cpu.stat usage_usec, v1 cpuacct.usage).",
    CONTAINER_LABELS)
CONTAINER_CPU_PERIODS = _m(
    "kubetally_container_cpu_periods_total", "counter", "",
    "CFS enforcement periods that elapsed while the container was runnable (containers with "
    "a CPU limit only: without a quota the kernel counts none).",
    CONTAINER_LABELS)
CONTAINER_CPU_THROTTLED_PERIODS = _m(
    "kubetally_container_cpu_throttled_periods_total", "counter", "",
    "CFS periods in which the container was throttled by its CPU limit.",
    CONTAINER_LABELS)
CONTAINER_CPU_THROTTLED = _m(
    "kubetally_container_cpu_throttled_seconds_total", "counter", "seconds",
    "Time the container spent throttled by its CPU limit.",
    CONTAINER_LABELS)
CONTAINER_MEMORY_WORKING_SET = _m(
    "kubetally_container_memory_working_set_bytes", "gauge", "bytes",
    "Memory working set: usage minus inactive file cache, floored at zero (what the kubelet "
    "evicts on).", CONTAINER_LABELS)
CONTAINER_MEMORY_RSS = _m(
    "kubetally_container_memory_rss_bytes", "gauge", "bytes",
    "Anonymous resident memory (v2 memory.stat anon, v1 total_rss).", CONTAINER_LABELS)

# --- per container: requests and limits from the pod spec ---------------------------------------
CONTAINER_CPU_REQUEST = _m(
    "kubetally_container_cpu_request_cores", "gauge", "cores",
    "CPU requested by the container in its pod spec.", CONTAINER_LABELS)
CONTAINER_CPU_LIMIT = _m(
    "kubetally_container_cpu_limit_cores", "gauge", "cores",
    "CPU limit of the container in its pod spec.", CONTAINER_LABELS)
CONTAINER_MEMORY_REQUEST = _m(
    "kubetally_container_memory_request_bytes", "gauge", "bytes",
    "Memory requested by the container in its pod spec.", CONTAINER_LABELS)
CONTAINER_MEMORY_LIMIT = _m(
    "kubetally_container_memory_limit_bytes", "gauge", "bytes",
    "Memory limit of the container in its pod spec.", CONTAINER_LABELS)
CONTAINER_GPU_REQUEST = _m(
    "kubetally_container_gpu_request_devices", "gauge", "devices",
    "GPU devices requested (resource nvidia.com/gpu or a MIG resource nvidia.com/mig-*).",
    (*CONTAINER_LABELS, "resource"))
CONTAINER_GPU_LIMIT = _m(
    "kubetally_container_gpu_limit_devices", "gauge", "devices",
    "GPU device limit (resource nvidia.com/gpu or a MIG resource nvidia.com/mig-*).",
    (*CONTAINER_LABELS, "resource"))

# --- per container: GPU usage from NVML processes -------------------------------------------
CONTAINER_GPU_MEMORY_USED = _m(
    "kubetally_container_gpu_memory_used_bytes", "gauge", "bytes",
    "GPU memory held by the container's processes on one GPU or MIG device.",
    (*CONTAINER_LABELS, "gpu_uuid"))
CONTAINER_GPU_SM_UTILIZATION = _m(
    "kubetally_container_gpu_sm_utilization_ratio", "gauge", "ratio",
    "Share of the device's SM time used by the container's processes since the last scrape "
    "(0-1); splits the cost of a shared GPU.", (*CONTAINER_LABELS, "gpu_uuid"))

# --- per pod ------------------------------------------------------------------------------------
POD_INFO = _m(
    "kubetally_pod_info", "gauge", "",
    "Pod identity and owner; always 1.", (*POD_LABELS, "qos_class", "phase"))
POD_LABELS_INFO = _m(
    "kubetally_pod_labels", "gauge", "",
    "Allow-listed pod labels as label_<name>; always 1.", ("namespace", "pod", "uid"))
POD_CPU_REQUEST = _m(
    "kubetally_pod_cpu_request_cores", "gauge", "cores",
    "Effective pod CPU request as the scheduler computes it: max(app + sidecars, any init "
    "container), plus pod overhead.", POD_LABELS)
POD_CPU_LIMIT = _m(
    "kubetally_pod_cpu_limit_cores", "gauge", "cores",
    "Effective pod CPU limit, computed like the effective request.", POD_LABELS)
POD_MEMORY_REQUEST = _m(
    "kubetally_pod_memory_request_bytes", "gauge", "bytes",
    "Effective pod memory request as the scheduler computes it.", POD_LABELS)
POD_MEMORY_LIMIT = _m(
    "kubetally_pod_memory_limit_bytes", "gauge", "bytes",
    "Effective pod memory limit, computed like the effective request.", POD_LABELS)
POD_GPU_REQUEST = _m(
    "kubetally_pod_gpu_request_devices", "gauge", "devices",
    "Effective pod GPU request per resource.", (*POD_LABELS, "resource"))

# --- per node -----------------------------------------------------------------------------------
NODE_INFO = _m(
    "kubetally_node_info", "gauge", "",
    "Node pricing identity; always 1. capacity_type is on_demand or spot.",
    ("node", "provider", "instance_type", "region", "zone", "capacity_type", "gpu_model",
     "gpu_sharing"))
NODE_CPU_CAPACITY = _m(
    "kubetally_node_cpu_capacity_cores", "gauge", "cores", "Node CPU capacity.", NODE_LABELS)
NODE_CPU_ALLOCATABLE = _m(
    "kubetally_node_cpu_allocatable_cores", "gauge", "cores",
    "Node CPU allocatable to pods.", NODE_LABELS)
NODE_MEMORY_CAPACITY = _m(
    "kubetally_node_memory_capacity_bytes", "gauge", "bytes", "Node memory capacity.",
    NODE_LABELS)
NODE_MEMORY_ALLOCATABLE = _m(
    "kubetally_node_memory_allocatable_bytes", "gauge", "bytes",
    "Node memory allocatable to pods.", NODE_LABELS)
NODE_GPU_CAPACITY = _m(
    "kubetally_node_gpu_capacity_devices", "gauge", "devices",
    "Node GPU capacity per extended resource (time-sliced replicas counted as advertised).",
    (*NODE_LABELS, "resource"))
NODE_GPU_ALLOCATABLE = _m(
    "kubetally_node_gpu_allocatable_devices", "gauge", "devices",
    "Node GPU allocatable per extended resource.", (*NODE_LABELS, "resource"))

# --- per GPU (physical device or MIG instance) --------------------------------------------------
GPU_INFO = _m(
    "kubetally_gpu_info", "gauge", "",
    "GPU or MIG device identity; always 1. mig_profile and parent_uuid are empty for whole GPUs.",
    (*GPU_LABELS, "gpu_index", "model", "mig_profile", "parent_uuid"))
GPU_PHYSICAL_SHARE = _m(
    "kubetally_gpu_physical_share_ratio", "gauge", "ratio",
    "Fraction of the physical GPU this device is: 1 for a whole GPU, its slices over the "
    "GPU's slices for a MIG instance.", GPU_LABELS)
GPU_MEMORY_TOTAL = _m(
    "kubetally_gpu_memory_total_bytes", "gauge", "bytes", "Device memory.", GPU_LABELS)
GPU_MEMORY_USED = _m(
    "kubetally_gpu_memory_used_bytes", "gauge", "bytes", "Device memory in use.", GPU_LABELS)
GPU_UTILIZATION = _m(
    "kubetally_gpu_utilization_ratio", "gauge", "ratio",
    "Share of the last sample period in which a kernel ran on the device (0-1).", GPU_LABELS)
GPU_POWER = _m(
    "kubetally_gpu_power_watts", "gauge", "watts", "Device power draw.", GPU_LABELS)

# --- the exporter itself ------------------------------------------------------------------------
EXPORTER_BUILD_INFO = _m(
    "kubetally_exporter_build_info", "gauge", "", "Exporter version; always 1.",
    ("version", "node"))
COLLECTOR_DURATION = _m(
    "kubetally_exporter_collector_duration_seconds", "gauge", "seconds",
    "Time the collector took in this scrape.", COLLECTOR_LABELS)
COLLECTOR_ERRORS = _m(
    "kubetally_exporter_collector_errors_total", "counter", "",
    "Errors met by the collector (unreadable files, API or NVML failures); its other output "
    "is still served.", COLLECTOR_LABELS)
COLLECTOR_AVAILABLE = _m(
    "kubetally_exporter_collector_available", "gauge", "",
    "1 when the collector's source is present (e.g. 0 for gpu on a node without NVML).",
    COLLECTOR_LABELS)
KUBE_CACHED_PODS = _m(
    "kubetally_exporter_kube_cached_pods", "gauge", "",
    "Pods of this node held in the exporter's cache.", ())
KUBE_SYNCED = _m(
    "kubetally_exporter_kube_synced", "gauge", "",
    "1 while the pod watch is live, 0 while serving from the cache after losing the API.", ())
KUBE_WATCH_RESTARTS = _m(
    "kubetally_exporter_kube_watch_restarts_total", "counter", "",
    "Watch restarts by reason (expired: 410 Gone and a relist; error: backoff; timeout).",
    ("resource", "reason"))
UNMATCHED_CGROUPS = _m(
    "kubetally_exporter_unmatched_cgroups", "gauge", "",
    "Container cgroups of this scrape that match no known pod (usage not attributed).", ())

#: Every family the exporter publishes, in exposition order.
ALL: tuple[Metric, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Metric))

__all__ = [
    "ALL",
    "COLLECTOR_LABELS",
    "CONTAINER_LABELS",
    "GPU_LABELS",
    "NODE_LABELS",
    "POD_LABELS",
    "POD_LABEL_PREFIX",
    "Metric",
    *(name for name, v in list(globals().items()) if isinstance(v, Metric)),
]
