"""``GET /api/v1/assets``: each node's capacity, cost and idle cost per step.

Grouped by the node's whole identity in the store (a node whose instance type changed
is two assets); keyed ``cluster/node`` like OpenCost's node assets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import Blueprint, Response, request

from aggregator.frame import NODE_IDENTITY
from api.filters import compile_filter
from api.params import ASSETS, parse_args
from api.render import numbers, ok, step_fields
from api.state import state
from api.windows import step_seconds

__all__ = ["bp"]

bp = Blueprint("assets", __name__)

_PROPS = {"cluster": "cluster", "provider": "provider", "region": "region", "zone": "zone",
          "instanceType": "instance_type", "capacityType": "capacity_type",
          "gpuModel": "gpu_model"}


@bp.get("/api/v1/assets")
def assets() -> Response:
    """Per node and step: minutes seen, capacity-hours, costs and idle costs."""
    st = state()
    args = parse_args(ASSETS, request.args, st.now())
    w = args["window"]
    step = step_seconds(w, args["step"], args["accumulate"])
    where = compile_filter(args["filter"], "nodes") if args["filter"] is not None else None
    res = st.reader.query(w.start, w.end, step, NODE_IDENTITY, "nodes", where)
    v = res.values
    present = ~np.isnan(v["minutes"])
    z = {m: np.nan_to_num(a) for m, a in v.items()}
    hours = z["minutes"] / 60.0
    with np.errstate(divide="ignore", invalid="ignore"):
        fields = {
            "minutes": z["minutes"], "hours": hours,
            "cpuCores": z["cpu_core_hours"] / hours, "ramBytes": z["ram_byte_hours"] / hours,
            "gpuCount": z["gpu_hours"] / hours, "cpuCoreHours": z["cpu_core_hours"],
            "ramByteHours": z["ram_byte_hours"], "gpuHours": z["gpu_hours"],
            "cpuCost": z["cpu_cost"], "ramCost": z["ram_cost"], "gpuCost": z["gpu_cost"],
            "totalCost": z["cpu_cost"] + z["ram_cost"] + z["gpu_cost"],
            "cpuIdleCost": z["cpu_idle_cost"], "ramIdleCost": z["ram_idle_cost"],
            "gpuIdleCost": z["gpu_idle_cost"],
            "totalIdleCost": z["cpu_idle_cost"] + z["ram_idle_cost"] + z["gpu_idle_cost"],
        }
    keys = {c: res.keys[c].tolist() for c in NODE_IDENTITY}
    now = max(st.now(), w.start + 1)
    data = []
    for s in range(len(res.edges) - 1):
        start, end = int(res.edges[s]), min(int(res.edges[s + 1]), now)
        if start >= end:
            continue
        base = step_fields(start, end)
        rows = {k: numbers(a[s]) for k, a in fields.items()}
        items: dict[str, dict[str, Any]] = {}
        for g in np.flatnonzero(present[s]):
            cluster = keys["cluster"][g] or st.config.cluster
            key = f"{cluster}/{keys['node'][g]}"
            if key in items:  # the same node under another identity (e.g. resized)
                key = f"{key}/{keys['instance_type'][g]}/{keys['capacity_type'][g]}"
            props = {p: keys[c][g] for p, c in _PROPS.items()}
            props["cluster"] = cluster
            items[key] = {"type": "Node", "name": keys["node"][g], "properties": props,
                          "instanceType": props["instanceType"],
                          "capacityType": props["capacityType"], "provider": props["provider"],
                          "region": props["region"], **base,
                          **{k: rows[k][g] for k in fields}}
        data.append(items)
    return ok(data)
