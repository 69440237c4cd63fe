"""Price one interval: what each container is charged and what each node costs and idles.

The rules are the design's cost model (OpenCost's specification, plus shared
GPUs, which are ours):

* CPU and RAM are charged on max(request, usage) over the interval, at the
  unit prices of the container's node. A NaN usage (not measured) falls back
  to the request (``np.fmax``); a NaN request counts as 0 when charging, but
  the *request* measure keeps the NaN, so a missing sample never reads as 0.
* Whole GPUs are charged by allocation (``gpu_request``), MIG instances by
  their slice of the physical GPU (``mig_gpus``). A shared (time-sliced or
  MPS) device costs physical_share × hours × its node's GPU price, split among
  the containers that used it by their share of its measured SM time; if they
  measured none at all it is split equally (NaN SM shares count as 0 in the
  split). A shared device nobody used is idle.
* A node costs capacity × hours × unit price per resource (GPUs: physical
  ones). Its idle cost is that minus what its containers are charged, floored
  at 0. Containers *can* be charged more than their node (usage above
  allocatable in a burst, more GPU allocations than physical GPUs): that
  excess is charged to them as it should be and the node's idle is 0, so
  charged + idle ≥ node cost, with equality when nothing is over-charged.
* Containers on an unknown node (``node == -1``) keep their usage and request
  measures, but their costs are NaN: there is no price to charge them at.
  :attr:`IntervalCost.unknown_node_containers` counts them.

Everything is arrays: gathers by node index and ``np.bincount`` with weights
to sum by node or by device; no Python loop runs over containers or devices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aggregator.errors import AggregatorError
from aggregator.frame import IntervalFrame
from aggregator.measures import CONTAINER_MEASURES, NODE_MEASURES
from aggregator.pricebook import NodeUnitPrices

__all__ = ["CostError", "IntervalCost", "compute"]

F64 = np.float64


class CostError(AggregatorError):
    """The frame and the prices handed to :func:`compute` do not fit together."""


@dataclass
class IntervalCost:
    """Measures of one interval, named as :mod:`aggregator.measures` names them."""

    start: int
    end: int
    containers: dict[str, np.ndarray]  # every CONTAINER_MEASURES name → (n,)
    nodes: dict[str, np.ndarray]  # every NODE_MEASURES name → (m,)
    #: Containers whose node is unknown (NaN costs), for a counter.
    unknown_node_containers: int


def _at(per_node: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``per_node[index]`` with NaN where ``index`` is -1 (the unknown node)."""
    return np.append(per_node.astype(F64), np.nan)[index]


def _zero_nan(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=F64)
    return np.where(np.isnan(a), 0.0, a)


def _check(frame: IntervalFrame, prices: NodeUnitPrices) -> None:
    m, d, n = len(frame.nodes), len(frame.devices), len(frame.containers)
    if len(prices) != m:
        raise CostError(f"prices for {len(prices)} nodes, frame has {m}")
    if frame.end <= frame.start:
        raise CostError(f"empty interval [{frame.start}, {frame.end})")
    for what, idx, size in (("container.node", frame.containers.node, m),
                            ("device.node", frame.devices.node, m),
                            ("gpu_use.container", frame.gpu_use.container, n),
                            ("gpu_use.device", frame.gpu_use.device, d)):
        low = -1 if what.endswith(".node") else 0
        if len(idx) and (int(np.min(idx)) < low or int(np.max(idx)) >= size):
            raise CostError(f"{what} index outside [{low}, {size})")


def _shared_gpus(frame: IntervalFrame, prices: NodeUnitPrices
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per GPU-use row: GPU-hours used, GPU-hours charged, dollars charged, node charged."""
    use, dev, hours = frame.gpu_use, frame.devices, frame.hours
    d = len(dev)
    ud = np.asarray(use.device, dtype=np.intp)
    phys = np.asarray(dev.physical_share, dtype=F64)[ud]
    used_hours = np.asarray(use.sm_share, dtype=F64) * phys * hours
    shared = np.asarray(dev.shared, dtype=bool)[ud]
    sm = np.where(shared, np.clip(_zero_nan(use.sm_share), 0.0, None), 0.0)
    total_sm = np.bincount(ud, weights=sm, minlength=d)[ud]
    users = np.bincount(ud, weights=shared.astype(F64), minlength=d)[ud]
    by_sm = np.divide(sm, total_sm, out=np.zeros_like(sm), where=total_sm > 0)
    equal = np.divide(1.0, users, out=np.zeros_like(sm), where=users > 0)
    fraction = np.where(shared, np.where(total_sm > 0, by_sm, equal), 0.0)
    charged_hours = fraction * phys * hours
    node = np.asarray(dev.node, dtype=np.intp)[ud]
    dollars = charged_hours * _at(prices.gpu_per_gpu_hour, node)
    return used_hours, charged_hours, dollars, node


def compute(frame: IntervalFrame, prices: NodeUnitPrices) -> IntervalCost:
    """Every container and node measure of ``frame`` at ``prices`` (one row per node)."""
    _check(frame, prices)
    c, nodes, hours = frame.containers, frame.nodes, frame.hours
    n, m = len(c), len(nodes)
    node = np.asarray(c.node, dtype=np.intp)
    placed = node >= 0
    cpu_price = _at(prices.cpu_per_core_hour, node)
    ram_price = _at(prices.ram_per_byte_hour, node)
    gpu_price = _at(prices.gpu_per_gpu_hour, node)

    cpu_usage, cpu_request = (np.asarray(a, dtype=F64) for a in (c.cpu_usage_cores,
                                                                 c.cpu_request_cores))
    ram_usage, ram_request = (np.asarray(a, dtype=F64) for a in (c.ram_usage_bytes,
                                                                 c.ram_request_bytes))
    cpu_charged = np.fmax(_zero_nan(cpu_request), cpu_usage) * hours
    ram_charged = np.fmax(_zero_nan(ram_request), ram_usage) * hours

    used_u, charged_u, dollars_u, dev_node_u = _shared_gpus(frame, prices)
    uc = np.asarray(frame.gpu_use.container, dtype=np.intp)
    allocated = (_zero_nan(c.gpu_request) + _zero_nan(c.mig_gpus)) * hours
    gpu_cost_alloc = allocated * gpu_price

    out = {
        "minutes": np.full(n, (frame.end - frame.start) / 60.0),
        "cpu_usage_core_hours": cpu_usage * hours,
        "cpu_request_core_hours": cpu_request * hours,
        "cpu_core_hours": cpu_charged,
        "ram_usage_byte_hours": ram_usage * hours,
        "ram_request_byte_hours": ram_request * hours,
        "ram_byte_hours": ram_charged,
        "ram_usage_max_bytes": ram_usage.copy(),
        "gpu_request_hours": (np.asarray(c.gpu_request, dtype=F64)
                              + np.asarray(c.mig_gpus, dtype=F64)) * hours,
        "gpu_usage_hours": np.bincount(uc, weights=used_u, minlength=n),
        "gpu_hours": allocated + np.bincount(uc, weights=charged_u, minlength=n),
        "cpu_cost": cpu_charged * cpu_price,
        "ram_cost": ram_charged * ram_price,
        "gpu_cost": gpu_cost_alloc + np.bincount(uc, weights=dollars_u, minlength=n),
    }

    def by_node(index: np.ndarray, weights: np.ndarray) -> np.ndarray:
        keep = index >= 0
        return np.bincount(index[keep], weights=weights[keep], minlength=m)

    capacity = {"cpu": np.asarray(nodes.cpu_cores, dtype=F64) * hours,
                "ram": np.asarray(nodes.ram_bytes, dtype=F64) * hours,
                "gpu": np.asarray(nodes.gpus, dtype=F64) * hours}
    cost = {"cpu": capacity["cpu"] * prices.cpu_per_core_hour,
            "ram": capacity["ram"] * prices.ram_per_byte_hour,
            "gpu": capacity["gpu"] * prices.gpu_per_gpu_hour}
    charged = {"cpu": by_node(node, out["cpu_cost"]),
               "ram": by_node(node, out["ram_cost"]),
               "gpu": by_node(node, gpu_cost_alloc) + by_node(dev_node_u, dollars_u)}
    node_out = {
        "minutes": np.full(m, (frame.end - frame.start) / 60.0),
        "cpu_core_hours": capacity["cpu"],
        "ram_byte_hours": capacity["ram"],
        "gpu_hours": capacity["gpu"],
        **{f"{r}_cost": cost[r] for r in ("cpu", "ram", "gpu")},
        **{f"{r}_idle_cost": np.maximum(cost[r] - charged[r], 0.0) for r in ("cpu", "ram", "gpu")},
    }
    # In the measures' order; a name missing here fails loudly (KeyError), never silently.
    return IntervalCost(start=frame.start, end=frame.end,
                        containers={name: out[name] for name in CONTAINER_MEASURES},
                        nodes={name: node_out[name] for name in NODE_MEASURES},
                        unknown_node_containers=int(np.count_nonzero(~placed)))
