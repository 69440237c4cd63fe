"""``GET /api/v1/usage``: one namespace's, controller's or pod's time series.

A chart of one workload wants every step, including those the store knows nothing
about, and must not draw those as zero: a step whose coverage is 0 (no interval of
the store's data falls in it, e.g. the aggregator was down) has ``null`` in every
field. A step the store covers in which the workload did not run has zeros, because
it then really used and cost nothing. ``coverageMinutes`` says how much of each step
the store holds, so a client can also tell a partly covered step.

The selection is a ``where`` mask on the identity columns (exact equality), so the
store reads and sums only the chosen series into a single group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from flask import Blueprint, Response, request

from aggregator.store.reader import Where
from api.errors import BadParameter
from api.params import USAGE, parse_args
from api.render import numbers, ok, step_fields
from api.state import state
from api.windows import step_seconds

__all__ = ["SERIES_FIELDS", "bp", "selection"]

bp = Blueprint("usage", __name__)

_MEASURES = ("cpu_usage_core_hours", "cpu_request_core_hours", "ram_usage_byte_hours",
             "ram_request_byte_hours", "gpu_hours", "cpu_cost", "ram_cost", "gpu_cost")
#: Numeric fields of each step, in order.
SERIES_FIELDS = ("cpuCoreUsageAverage", "cpuCoreRequestAverage", "ramByteUsageAverage",
                 "ramByteRequestAverage", "gpuHours", "cpuCost", "ramCost", "gpuCost",
                 "totalCost")


def selection(args: Mapping[str, str | None]) -> tuple[str, dict[str, str]]:
    """The item's name and its ``column → value`` equalities; BadParameter if ambiguous.

    Exactly one target: ``pod`` (with ``namespace``), else ``controller`` (optionally
    scoped by ``namespace`` and ``controllerKind``), else ``namespace``.
    """
    ns, ctl, kind, pod = (args.get(k) for k in ("namespace", "controller", "controllerKind",
                                                "pod"))
    if pod is not None:
        if ctl is not None:
            raise BadParameter("controller", "give pod or controller, not both")
        if kind is not None:
            raise BadParameter("controllerKind", "only goes with controller")
        if ns is None:
            raise BadParameter("namespace", "is required with pod")
        return f"{ns}/{pod}", {"namespace": ns, "pod": pod}
    if ctl is not None:
        where = {"controller": ctl}
        if kind is not None:
            where["controller_kind"] = kind
        if ns is not None:
            where["namespace"] = ns
        return "/".join(v for v in (ns, kind, ctl) if v is not None), where
    if kind is not None:
        raise BadParameter("controllerKind", "only goes with controller")
    if ns is None:
        raise BadParameter("namespace", "give one of namespace, controller or pod "
                                        "(with namespace)")
    return ns, {"namespace": ns}


def _where(equal: dict[str, str]) -> Where:
    def where(columns: Mapping[str, np.ndarray]) -> np.ndarray:
        mask: np.ndarray | None = None
        for column, value in equal.items():
            hit = np.asarray(columns[column] == value, dtype=bool)
            mask = hit if mask is None else mask & hit
        assert mask is not None  # selection() always gives at least one column
        return mask
    return where


@bp.get("/api/v1/usage")
def usage() -> Response:
    """Validate every parameter first (400 naming it), then ask the store once."""
    st = state()
    args = parse_args(USAGE, request.args, st.now())
    name, equal = selection(args)
    w = args["window"]
    step = step_seconds(w, args["step"], False)
    res = st.reader.query(w.start, w.end, step, (), "containers", _where(equal), _MEASURES)
    starts, ends = res.edges[:-1], np.minimum(res.edges[1:], max(st.now(), w.start + 1))
    hours = np.maximum(ends - starts, 1) / 3600.0
    if res.values["cpu_cost"].shape[1]:
        v = {m: np.nan_to_num(a[:, 0]) for m, a in res.values.items()}
    else:  # the item has no data anywhere in the window
        v = {m: np.zeros(len(starts)) for m in _MEASURES}
    known = res.coverage > 0
    fields = {
        "cpuCoreUsageAverage": v["cpu_usage_core_hours"] / hours,
        "cpuCoreRequestAverage": v["cpu_request_core_hours"] / hours,
        "ramByteUsageAverage": v["ram_usage_byte_hours"] / hours,
        "ramByteRequestAverage": v["ram_request_byte_hours"] / hours,
        "gpuHours": v["gpu_hours"], "cpuCost": v["cpu_cost"], "ramCost": v["ram_cost"],
        "gpuCost": v["gpu_cost"], "totalCost": v["cpu_cost"] + v["ram_cost"] + v["gpu_cost"],
    }
    rows = {k: numbers(np.where(known, a, np.nan)) for k, a in fields.items()}
    series: list[dict[str, Any]] = []
    for s in np.flatnonzero(starts < ends):
        item = step_fields(int(starts[s]), int(ends[s]))
        item["coverageMinutes"] = float(res.coverage[s])
        item.update({k: rows[k][s] for k in SERIES_FIELDS})
        series.append(item)
    return ok({"name": name, "step": step, "series": series})
