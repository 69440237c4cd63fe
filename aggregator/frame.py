"""One interval of the whole cluster (or shard), as column arrays: what ingest hands to cost.

Ingest turns every exporter's scrape into one :class:`IntervalFrame`; the cost
engine prices it without a Python loop over containers; the store keeps the
result. Every array of a table has the table's length; identity columns are
numpy arrays of Python ``str`` (dtype object). Quantities are in base units:
cores, bytes, devices; time in Unix seconds. A value the exporters did not
report is NaN, never 0 (a request the pod spec does not set *is* 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["CONTAINER_IDENTITY", "NODE_IDENTITY", "ContainerTable", "DeviceTable",
           "GPUUseTable", "IntervalFrame", "NodeTable", "empty_strings"]

#: Identity columns of a container series, in the store's order.
CONTAINER_IDENTITY = ("cluster", "node", "namespace", "controller_kind", "controller", "pod",
                      "container", "uid")
#: Identity columns of a node series.
NODE_IDENTITY = ("cluster", "node", "provider", "region", "zone", "instance_type",
                 "capacity_type", "gpu_model")

F64 = np.float64


def empty_strings(n: int) -> np.ndarray:
    """An object array of ``n`` empty strings."""
    out = np.empty(n, dtype=object)
    out[:] = ""
    return out


@dataclass
class NodeTable:
    """Nodes seen this interval (m rows)."""

    identity: dict[str, np.ndarray]  # NODE_IDENTITY columns
    cpu_cores: np.ndarray  # capacity, cores
    ram_bytes: np.ndarray  # capacity, bytes
    #: Physical GPUs (a MIG-partitioned GPU counts once; time-sliced replicas do not count).
    gpus: np.ndarray

    def __len__(self) -> int:
        return len(self.cpu_cores)


@dataclass
class ContainerTable:
    """Containers seen this interval (n rows)."""

    identity: dict[str, np.ndarray]  # CONTAINER_IDENTITY columns
    #: Allow-listed pod labels, ``label_<key>`` → column ("" when the pod lacks it).
    labels: dict[str, np.ndarray]
    node: np.ndarray  # int32 row of NodeTable, -1 when the node is unknown
    cpu_usage_cores: np.ndarray  # mean cores over the interval, from the counter's rate
    cpu_request_cores: np.ndarray
    ram_usage_bytes: np.ndarray  # working set
    ram_request_bytes: np.ndarray
    #: Whole GPUs requested (``nvidia.com/gpu``), charged by allocation.
    gpu_request: np.ndarray
    #: Physical-GPU equivalents held through MIG resources: Σ requested × slice share.
    mig_gpus: np.ndarray

    def __len__(self) -> int:
        return len(self.cpu_usage_cores)


@dataclass
class DeviceTable:
    """GPU devices (physical GPUs and MIG instances) seen this interval (d rows)."""

    uuid: np.ndarray  # object
    node: np.ndarray  # int32 row of NodeTable
    physical_share: np.ndarray  # 1 for a whole GPU, slices / max slices for MIG
    #: True for a time-sliced or MPS GPU: its cost is split by measured SM share.
    shared: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.uuid)


@dataclass
class GPUUseTable:
    """Which container used which device, and how much of its SM time (k rows)."""

    container: np.ndarray  # int32 row of ContainerTable
    device: np.ndarray  # int32 row of DeviceTable
    sm_share: np.ndarray  # 0..1 of the device's SM time over the interval

    def __len__(self) -> int:
        return len(self.container)


@dataclass
class IntervalFrame:
    """The cluster during [start, end)."""

    start: int
    end: int
    nodes: NodeTable
    containers: ContainerTable
    devices: DeviceTable
    gpu_use: GPUUseTable
    #: Per-target scrape failures of the interval, for the record (target → reason).
    failed_targets: dict[str, str] = field(default_factory=dict)

    @property
    def hours(self) -> float:
        """Length of the interval in hours."""
        return (self.end - self.start) / 3600.0
