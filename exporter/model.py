"""Plain data the exporter's parts hand each other.

The Kubernetes cache keeps raw JSON dicts; :mod:`exporter.pods` turns them into
these frozen records once per pod version, and the collectors read only these.
Quantities are floats in base units: cores, bytes, devices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ContainerInfo", "ContainerUsage", "PodInfo"]


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """One container of a pod spec, joined with its status."""

    name: str
    #: Runtime container ID without the ``containerd://`` scheme; "" until it has started.
    container_id: str
    requests: Mapping[str, float] = field(default_factory=dict)
    limits: Mapping[str, float] = field(default_factory=dict)
    #: An init container that is not a sidecar (restartPolicy Always) runs before the app.
    init: bool = False
    sidecar: bool = False
    restart_count: int = 0


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the collectors need to know of one pod on this node."""

    uid: str
    namespace: str
    name: str
    node: str
    qos_class: str
    phase: str
    controller_kind: str
    controller: str
    labels: Mapping[str, str]
    containers: tuple[ContainerInfo, ...]
    #: Pod-level requests and limits as the scheduler computes them (init containers, overhead).
    effective_requests: Mapping[str, float]
    effective_limits: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    """One reading of a container's cgroup; NaN where a file was missing or unreadable."""

    cpu_usage_seconds: float
    cpu_periods: float
    cpu_throttled_periods: float
    cpu_throttled_seconds: float
    memory_usage_bytes: float
    memory_working_set_bytes: float
    memory_rss_bytes: float
    #: How many files of this container could not be read (0 on a clean read).
    errors: int = 0
