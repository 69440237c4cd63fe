"""Exporter payloads → one :class:`~aggregator.frame.IntervalFrame`, vectorized per target.

Each target keeps its parser's series table plus, per series index, what the series
feeds (a *role*) and which container, pod or device it belongs to. Those are learned
once, when a series first appears; a steady-state interval is then a handful of
numpy operations per target over its ~3,000 samples: counters become rates with
reset handling, gauges land in their columns, requests add up per resource class.

GPU accounting rules (documented in docs/architecture.md):
- ``nvidia.com/gpu`` on a node without a sharing strategy is an exclusive GPU,
  charged by allocation;
- ``nvidia.com/gpu.shared``, or ``nvidia.com/gpu`` on a time-slicing/MPS node that
  does not rename its replicas, is a slice of a shared device: the devices its
  processes use are marked shared and their cost is split by measured SM share;
- ``nvidia.com/mig-<profile>`` holds the profile's share of a physical GPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from aggregator import ingest_target as it
from aggregator.frame import (
    CONTAINER_IDENTITY,
    NODE_IDENTITY,
    ContainerTable,
    DeviceTable,
    GPUUseTable,
    IntervalFrame,
    NodeTable,
    empty_strings,
)
from aggregator.textparse import Scrape

__all__ = ["Ingest", "TargetScrape"]

_REBUILD_FACTOR = 4


@dataclass(frozen=True, slots=True)
class TargetScrape:
    """One target's parsed payload and when it was taken (Unix seconds)."""

    target: str
    scrape: Scrape
    time: float


class Ingest:
    """Keeps per-target state across intervals and assembles each interval's frame."""

    def __init__(self, cluster: str = "default") -> None:
        self.cluster = cluster
        self._targets: dict[str, it.TargetState] = {}

    def state(self, target: str) -> it.TargetState:
        """The target's state (its SeriesTable is what the scraper parses into)."""
        state = self._targets.get(target)
        if state is None:
            state = self._targets[target] = it.TargetState()
        return state

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the state of targets no longer discovered."""
        keep = set(keep)
        for name in [t for t in self._targets if t not in keep]:
            del self._targets[name]

    def frame(self, start: int, end: int, scrapes: Iterable[TargetScrape],
              failed: Mapping[str, str] | None = None) -> IntervalFrame:
        """The interval [start, end) from every target that answered."""
        scrapes = list(scrapes)
        parts = [self.state(s.target).ingest(s.scrape, s.time) for s in scrapes]
        parts = [p for p in parts if p is not None]
        for s in scrapes:
            # Series tables never forget (indices must stay stable), so pod churn grows
            # them; a table far larger than what its target serves starts afresh (that
            # target's counters then need one interval to give rates again).
            if len(self._targets[s.target].table) > _REBUILD_FACTOR * len(s.scrape) + 10_000:
                del self._targets[s.target]
        nodes = _nodes(parts, self.cluster)
        offsets = np.cumsum([0, *(len(p.c_node) for p in parts)])
        d_offsets = np.cumsum([0, *(len(p.d_uuid) for p in parts)])
        containers = _containers(parts, self.cluster)
        devices = DeviceTable(
            uuid=_cat([p.d_uuid for p in parts], object),
            node=_cat([np.full(len(p.d_uuid), i, np.int32) for i, p in enumerate(parts)],
                      np.int32),
            physical_share=_cat([p.d_share for p in parts], np.float64),
            shared=_cat([p.d_shared for p in parts], bool))
        gpu_use = GPUUseTable(
            container=_cat([p.u_container + offsets[i] for i, p in enumerate(parts)], np.int32),
            device=_cat([p.u_device + d_offsets[i] for i, p in enumerate(parts)], np.int32),
            sm_share=_cat([p.u_sm for p in parts], np.float64))
        return IntervalFrame(start=start, end=end, nodes=nodes, containers=containers,
                             devices=devices, gpu_use=gpu_use,
                             failed_targets=dict(failed or {}))


def _cat(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
    if not arrays:
        return np.empty(0, dtype=dtype)
    return np.concatenate(arrays).astype(dtype, copy=False)


def _nodes(parts: list[it.TargetPart], cluster: str) -> NodeTable:
    identity = {k: empty_strings(len(parts)) for k in NODE_IDENTITY}
    identity["cluster"][:] = cluster
    for i, part in enumerate(parts):
        for key, value in part.node_identity.items():
            identity[key][i] = value
    return NodeTable(identity=identity,
                     cpu_cores=np.array([p.node_cpu for p in parts], np.float64),
                     ram_bytes=np.array([p.node_ram for p in parts], np.float64),
                     gpus=np.array([p.node_gpus for p in parts], np.float64))


def _containers(parts: list[it.TargetPart], cluster: str) -> ContainerTable:
    n = sum(len(p.c_node) for p in parts)
    identity = {k: _cat([p.c_identity[k] for p in parts], object)
                for k in CONTAINER_IDENTITY if k != "cluster"}
    identity["cluster"] = empty_strings(n)
    identity["cluster"][:] = cluster
    identity = {k: identity[k] for k in CONTAINER_IDENTITY}
    keys = sorted({k for p in parts for k in p.c_labels})
    labels = {}
    for key in keys:
        labels[key] = _cat([p.c_labels[key] if key in p.c_labels else empty_strings(len(p.c_node))
                            for p in parts], object)
    return ContainerTable(
        identity=identity, labels=labels,
        node=_cat([np.full(len(p.c_node), i, np.int32) for i, p in enumerate(parts)], np.int32),
        cpu_usage_cores=_cat([p.c_cpu for p in parts], np.float64),
        cpu_request_cores=_cat([p.c_cpu_req for p in parts], np.float64),
        ram_usage_bytes=_cat([p.c_ram for p in parts], np.float64),
        ram_request_bytes=_cat([p.c_ram_req for p in parts], np.float64),
        gpu_request=_cat([p.c_gpu for p in parts], np.float64),
        mig_gpus=_cat([p.c_mig for p in parts], np.float64))
