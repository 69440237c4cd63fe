"""Requests and limits from a pod spec, and the pod totals the scheduler uses.

Quantities are parsed by the ``kubernetes`` client's own ``parse_quantity``
(every suffix the API accepts) and kept as floats in base units: cores, bytes,
devices. Only the resources kubetally prices are kept: cpu, memory and the
NVIDIA GPU resources, including MIG slices and renamed time-sliced replicas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kubernetes.utils import parse_quantity

__all__ = ["GPU_RESOURCES_PREFIXES", "is_gpu_resource", "pod_totals", "quantities"]

GPU_RESOURCES_PREFIXES = ("nvidia.com/gpu", "nvidia.com/mig-")


def is_gpu_resource(name: str) -> bool:
    """``nvidia.com/gpu``, ``nvidia.com/gpu.shared`` (time-slicing, renamed) or a MIG profile."""
    return name == "nvidia.com/gpu" or name.startswith(("nvidia.com/gpu.", "nvidia.com/mig-"))


def _priced(name: str) -> bool:
    return name in ("cpu", "memory") or is_gpu_resource(name)


def quantities(raw: Mapping[str, object] | None) -> dict[str, float]:
    """Parse a ``resources.requests``/``limits`` mapping, keeping priced resources.

    A malformed quantity raises ValueError: the API server would have refused it,
    so it means a broken payload, and the caller counts it.
    """
    if not raw:
        return {}
    return {name: float(parse_quantity(value)) for name, value in raw.items() if _priced(name)}


def _add(into: dict[str, float], other: Mapping[str, float]) -> None:
    for name, value in other.items():
        into[name] = into.get(name, 0.0) + value


def _max(into: dict[str, float], other: Mapping[str, float]) -> None:
    for name, value in other.items():
        into[name] = max(into.get(name, 0.0), value)


def pod_totals(
    app: Iterable[Mapping[str, float]],
    init: Iterable[tuple[Mapping[str, float], bool]],
    overhead: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """The pod's effective amount of each resource, as Kubernetes computes it.

    This follows ``PodRequests`` in k8s.io/component-helpers: app containers add
    up; sidecars (init containers with restartPolicy Always) run beside them and
    add too, and are also running while each later init container runs; every
    init container's own need is compared with that, and the pod reserves the
    larger of the two totals, plus the pod overhead. ``init`` yields
    ``(amounts, is_sidecar)`` in spec order. The same rule gives the limits.
    """
    total: dict[str, float] = {}
    for amounts in app:
        _add(total, amounts)
    sidecars: dict[str, float] = {}
    init_peak: dict[str, float] = {}
    for amounts, is_sidecar in init:
        if is_sidecar:
            _add(sidecars, amounts)
            _max(init_peak, sidecars)
        else:
            during = dict(sidecars)
            _add(during, amounts)
            _max(init_peak, during)
    _add(total, sidecars)
    _max(total, init_peak)
    if overhead:
        _add(total, overhead)
    return total
