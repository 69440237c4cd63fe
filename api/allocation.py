"""Allocation: what each item (namespace, controller, label value, …) used and cost, per step.

Everything is read through :meth:`StoreReader.query`, which groups and sums the stored
series in numpy; this module only derives OpenCost's fields from those sums, again as
whole ``(steps, groups)`` arrays, and loops over groups just to build the response.

Derived fields, per item and step (``hours`` = the hours of the step, clipped to now, that
the store has data for; ``minutes`` reports the same):

* ``cpuCores`` = ``cpuCoreHours / hours``; ``cpuCoreRequestAverage`` and
  ``cpuCoreUsageAverage`` = request and usage core-hours / hours (summed over the
  item's containers); likewise for RAM (bytes) and ``gpuCount``;
* ``cpuEfficiency`` = usage / request core-hours (null when nothing was requested);
  ``ramEfficiency`` alike; ``gpuEfficiency`` = GPU usage hours / GPU request hours;
* ``totalEfficiency`` = (cpuCost·cpuEff + ramCost·ramEff) / (cpuCost + ramCost) over the
  resources whose efficiency is defined, as OpenCost weighs it.

Idle (``includeIdle``): the nodes table's ``*_idle_cost`` of the nodes in scope (every
node without a filter; with one, the nodes that ran a matching container in that step),
as an ``__idle__`` item. ``shareIdle`` instead adds each resource's idle cost to the
items in proportion to their cost of that resource; idle that no item can take (no item
has any cost of that resource) stays in ``__idle__``. Efficiencies use the items' own
costs, before any idle is shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aggregator.store import StoreReader
from aggregator.store.layout import validate_column_name
from aggregator.store.model import join_columns
from api.errors import BadParameter
from api.filters import Node, compile_filter, label_column
from api.render import numbers, step_fields
from api.windows import Window

__all__ = ["AGGREGATES", "FIELDS", "IDLE", "UNALLOCATED", "AllocationRequest", "Step",
           "allocate", "parse_aggregate"]

#: API aggregate name → store column.
AGGREGATES = {"cluster": "cluster", "node": "node", "namespace": "namespace",
              "controllerKind": "controller_kind", "controller": "controller", "pod": "pod",
              "container": "container"}
_DEFAULT = ("cluster", "node", "namespace", "pod", "container")
UNALLOCATED = "__unallocated__"
IDLE = "__idle__"
_MEASURES = ("minutes", "cpu_usage_core_hours", "cpu_request_core_hours", "cpu_core_hours",
             "ram_usage_byte_hours", "ram_request_byte_hours", "ram_byte_hours",
             "gpu_request_hours", "gpu_usage_hours", "gpu_hours", "cpu_cost", "ram_cost",
             "gpu_cost")
_RESOURCES = ("cpu", "ram", "gpu")
#: Numeric fields of an item, in OpenCost's order (also the CSV's columns).
FIELDS = ("cpuCores", "cpuCoreHours", "cpuCoreRequestAverage", "cpuCoreUsageAverage",
          "cpuCost", "cpuEfficiency", "ramBytes", "ramByteHours", "ramByteRequestAverage",
          "ramByteUsageAverage", "ramCost", "ramEfficiency", "gpuCount", "gpuHours", "gpuCost",
          "gpuEfficiency", "totalCost", "totalEfficiency")


@dataclass(frozen=True)
class AllocationRequest:
    """A validated allocation query."""

    window: Window
    step: int
    aggregate: tuple[tuple[str, str], ...]  # (API name, store column)
    filter: Node | None
    include_idle: bool
    share_idle: bool
    now: int
    cluster: str = "default"


@dataclass
class Step:
    """One step's items, by name."""

    start: int
    end: int
    items: dict[str, dict[str, Any]]


def parse_aggregate(items: tuple[str, ...] | None) -> tuple[tuple[str, str], ...]:
    """``("namespace", "label:app")`` → ((name, column), …); BadParameter("aggregate")."""
    out: list[tuple[str, str]] = []
    for item in items or _DEFAULT:
        if item.startswith("label:"):
            column = label_column(item[len("label:"):])
            if not validate_column_name("containers", column):
                raise BadParameter("aggregate", f"not a usable label: {item!r}")
        elif item in AGGREGATES:
            column = AGGREGATES[item]
        else:
            raise BadParameter("aggregate", f"unknown aggregate {item!r} (one of "
                                            f"{', '.join(AGGREGATES)}, label:<key>)")
        if column in (c for _, c in out):
            raise BadParameter("aggregate", f"{item!r} named twice")
        out.append((item, column))
    return tuple(out)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, NaN where b is not positive."""
    out = np.full(np.broadcast(a, b).shape, np.nan)
    np.divide(a, b, out=out, where=np.broadcast_to(b > 0, out.shape))
    return out


def _node_keys(result: Any) -> np.ndarray:
    cols = [result.keys["cluster"], result.keys["node"]]
    return join_columns(cols, len(cols[0]))


def _idle(reader: StoreReader, req: AllocationRequest) -> np.ndarray:
    """``(steps, 3)`` idle dollars (cpu, ram, gpu) of the nodes in scope per step."""
    w = req.window
    nodes = reader.query(w.start, w.end, req.step, ("cluster", "node"), "nodes",
                         measures=[f"{r}_idle_cost" for r in _RESOURCES])
    idle = np.stack([np.nan_to_num(nodes.values[f"{r}_idle_cost"]) for r in _RESOURCES], -1)
    if req.filter is not None:
        used = reader.query(w.start, w.end, req.step, ("cluster", "node"), "containers",
                            where=compile_filter(req.filter), measures=["minutes"])
        used_keys, node_keys = _node_keys(used), _node_keys(nodes)
        order = np.argsort(used_keys)
        pos = np.searchsorted(used_keys[order], node_keys)
        pos = np.minimum(pos, max(len(used_keys) - 1, 0))
        found = (used_keys[order][pos] == node_keys) if len(used_keys) else \
            np.zeros(len(node_keys), dtype=bool)
        scope = np.zeros(idle.shape[:2], dtype=bool)
        minutes = used.values["minutes"][:, order[pos[found]]]
        scope[:, found] = ~np.isnan(minutes)
        idle = idle * scope[..., None]
    return idle.sum(axis=1)


def _derive(v: dict[str, np.ndarray], hours: np.ndarray) -> dict[str, np.ndarray]:
    """OpenCost's fields from the summed measures, all ``(steps, groups)``."""
    f: dict[str, np.ndarray] = {
        "cpuCores": v["cpu_core_hours"] / hours, "cpuCoreHours": v["cpu_core_hours"],
        "cpuCoreRequestAverage": v["cpu_request_core_hours"] / hours,
        "cpuCoreUsageAverage": v["cpu_usage_core_hours"] / hours,
        "cpuEfficiency": _div(v["cpu_usage_core_hours"], v["cpu_request_core_hours"]),
        "ramBytes": v["ram_byte_hours"] / hours, "ramByteHours": v["ram_byte_hours"],
        "ramByteRequestAverage": v["ram_request_byte_hours"] / hours,
        "ramByteUsageAverage": v["ram_usage_byte_hours"] / hours,
        "ramEfficiency": _div(v["ram_usage_byte_hours"], v["ram_request_byte_hours"]),
        "gpuCount": v["gpu_hours"] / hours, "gpuHours": v["gpu_hours"],
        "gpuEfficiency": _div(v["gpu_usage_hours"], v["gpu_request_hours"]),
    }
    num = np.zeros_like(hours * v["cpu_cost"])
    den = np.zeros_like(num)
    for r in ("cpu", "ram"):
        eff, cost = f[f"{r}Efficiency"], v[f"{r}_cost"]
        known = np.isfinite(eff)
        num += np.where(known, cost * np.where(known, eff, 0.0), 0.0)
        den += np.where(known, cost, 0.0)
    f["totalEfficiency"] = _div(num, den)
    return f


def allocate(reader: StoreReader, req: AllocationRequest) -> list[Step]:
    """Items per step; steps starting after ``now`` are left out, the last clipped to it."""
    w = req.window
    columns = tuple(c for _, c in req.aggregate)
    where = compile_filter(req.filter) if req.filter is not None else None
    res = reader.query(w.start, w.end, req.step, columns, "containers", where, _MEASURES)
    starts = res.edges[:-1]
    ends = np.minimum(res.edges[1:], max(req.now, w.start + 1))
    keep = starts < ends
    # Averages are over the time the store has data for in each step (a 7-day window over
    # a 2-day-old store averages over 2 days), as OpenCost averages over running time.
    covered = np.minimum(np.nan_to_num(res.coverage[:len(starts)]), (ends - starts) / 60.0)
    hours = np.maximum(covered, 1.0 / 60)[:, None] / 60.0
    raw = res.values
    present = ~(np.isnan(raw["minutes"]) & np.isnan(raw["cpu_cost"]) & np.isnan(raw["ram_cost"]))
    v = {m: np.nan_to_num(a) * present for m, a in raw.items()}
    fields = _derive(v, hours)
    idle = _idle(reader, req) if req.include_idle or req.share_idle else None
    idle_item = idle if idle is not None and req.include_idle and not req.share_idle else None
    for i, r in enumerate(_RESOURCES):
        cost = v[f"{r}_cost"]
        if req.share_idle and idle is not None:
            total = cost.sum(axis=1)
            share = _div(cost, total[:, None])
            cost = cost + idle[:, i, None] * np.nan_to_num(share)
            leftover = np.where(total > 0, 0.0, idle[:, i])
            idle_item = leftover[:, None] if idle_item is None else np.concatenate(
                [idle_item, leftover[:, None]], axis=1)
        fields[f"{r}Cost"] = cost
    fields["totalCost"] = fields["cpuCost"] + fields["ramCost"] + fields["gpuCost"]
    names, props = _names(res.keys, req)
    out: list[Step] = []
    values = [numbers(fields[k]) for k in FIELDS]  # per field: steps × groups, None for NaN
    for s in np.flatnonzero(keep).tolist():
        items: dict[str, dict[str, Any]] = {}
        by_group = list(zip(*(v[s] for v in values), strict=True))  # FIELDS of each group
        base = {**step_fields(int(starts[s]), int(ends[s])), "minutes": float(covered[s])}
        for g in np.flatnonzero(present[s]).tolist():
            item = {"name": names[g], "properties": props[g], **base}
            item.update(zip(FIELDS, by_group[g], strict=True))
            items[names[g]] = item
        if idle_item is not None and (not req.share_idle or idle_item[s].sum() > 0):
            items[IDLE] = _idle_fields(idle_item[s], base)
        out.append(Step(int(starts[s]), int(ends[s]), items))
    return out


def _idle_fields(costs: np.ndarray, base: dict[str, Any]) -> dict[str, Any]:
    cpu, ram, gpu = (float(c) for c in costs)
    item: dict[str, Any] = {"name": IDLE, "properties": {}, **base}
    item.update({k: 0.0 for k in FIELDS})
    item.update(cpuCost=cpu, ramCost=ram, gpuCost=gpu, totalCost=cpu + ram + gpu,
                cpuEfficiency=None, ramEfficiency=None, gpuEfficiency=None,
                totalEfficiency=None)
    return item


def _names(keys: dict[str, np.ndarray], req: AllocationRequest) -> tuple[
        list[str], list[dict[str, Any]]]:
    """Each group's item name ("a/b", empty values as __unallocated__) and properties."""
    n = len(next(iter(keys.values()))) if keys else 1
    cols = {c: (keys[c].tolist() if keys else [""] * n) for _, c in req.aggregate}
    names, props = [], []
    for g in range(n):
        parts, prop, labels = [], {}, {}
        for api_name, column in req.aggregate:
            value = cols[column][g]
            if column == "cluster" and not value:
                value = req.cluster
            parts.append(value or UNALLOCATED)
            if api_name.startswith("label:"):
                if value:
                    labels[api_name[len("label:"):]] = value
            elif value:
                prop[api_name] = value
        if labels:
            prop["labels"] = labels
        names.append("/".join(parts))
        props.append(prop)
    return names, props
