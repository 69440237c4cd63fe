"""The measures the store keeps: one source of truth for their names and how they roll up.

Every stored measure is additive over time (core-hours, byte-hours, GPU-hours,
dollars, minutes) except those ending in ``_max``; so a coarser tier is the sum
(or max) of the finer one, and any average the API reports is derived at read
time (e.g. mean request = request core-hours / hours). Costs are float64 so
sums stay exact to the cent; usage may be quantised by the store.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["CONTAINER_MEASURES", "NODE_MEASURES", "ROLLUP", "Rollup"]

Rollup = Literal["sum", "max"]

#: Per container per interval.
CONTAINER_MEASURES: dict[str, str] = {
    "minutes": "minutes the container was running in the interval",
    "cpu_usage_core_hours": "CPU used (mean cores × hours)",
    "cpu_request_core_hours": "CPU requested (cores × hours)",
    "cpu_core_hours": "CPU charged: max(request, usage) × hours",
    "ram_usage_byte_hours": "working set (mean bytes × hours)",
    "ram_request_byte_hours": "memory requested (bytes × hours)",
    "ram_byte_hours": "memory charged: max(request, usage) × hours",
    "ram_usage_max_bytes": "largest working set seen",
    "gpu_request_hours": "GPUs allocated (whole GPUs and MIG share) × hours",
    "gpu_usage_hours": "SM time used, in GPU-hours of the devices used",
    "gpu_hours": "GPU-hours charged (allocation, shared-GPU SM split, MIG slice share)",
    "cpu_cost": "dollars for CPU",
    "ram_cost": "dollars for memory",
    "gpu_cost": "dollars for GPUs",
}

#: Per node per interval.
NODE_MEASURES: dict[str, str] = {
    "minutes": "minutes the node was seen in the interval",
    "cpu_core_hours": "CPU capacity × hours",
    "ram_byte_hours": "memory capacity × hours",
    "gpu_hours": "physical GPUs × hours",
    "cpu_cost": "dollars the node's CPU cost",
    "ram_cost": "dollars the node's memory cost",
    "gpu_cost": "dollars the node's GPUs cost",
    "cpu_idle_cost": "CPU dollars charged to no container (never below 0)",
    "ram_idle_cost": "memory dollars charged to no container (never below 0)",
    "gpu_idle_cost": "GPU dollars charged to no container (never below 0)",
}

#: How a measure combines over time when a tier rolls up into the next.
ROLLUP: dict[str, Rollup] = {
    name: ("max" if name.endswith("_max_bytes") else "sum")
    for name in (*CONTAINER_MEASURES, *NODE_MEASURES)
}
