"""Every route's query parameters, declared once: validation and the OpenAPI document
both read this table, so what is checked and what is documented cannot drift apart.

A parameter's ``kind`` says how its text is checked and converted; anything malformed
raises BadParameter naming it. Unknown parameters are ignored, as OpenCost does, so
tools that send OpenCost options we lack still work.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from api.errors import BadParameter
from api.filters import parse_filter
from api.windows import parse_duration, parse_step, parse_window

__all__ = ["ALLOCATION", "ASSETS", "NAME_PATTERN", "ROUTES", "USAGE", "Param", "Route",
           "parse_args"]

Kind = Literal["window", "duration", "step", "bool", "enum", "list", "filter", "name"]
#: A Kubernetes object name (DNS subdomain or label, or a controller kind like
#: ``Deployment``): a ``name`` parameter must match it whole.
NAME_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,251}[A-Za-z0-9])?$"
_NAME = re.compile(NAME_PATTERN)
_TRUE = ("1", "t", "true")
_FALSE = ("0", "f", "false")


@dataclass(frozen=True)
class Param:
    """One query parameter: its name, kind, description, default and choices."""

    name: str
    kind: Kind
    description: str
    default: str | bool | None = None
    required: bool = False
    choices: tuple[str, ...] = ()
    example: str | None = None
    #: For ``filter``: which table's fields it may name.
    table: str = "containers"


@dataclass(frozen=True)
class Route:
    """A GET route: path, summary, parameters and the name of its response schema."""

    path: str
    summary: str
    params: tuple[Param, ...]
    schema: str
    auth: bool = True
    #: HTTP method, lower case; a route with a request body names its schema in ``body``.
    method: str = "get"
    body: str | None = None


_WINDOW = Param("window", "window", "today, yesterday, week, lastweek, month, lastmonth, a "
                "duration ending now (30m, 24h, 7d, 2w), an RFC3339 pair or a Unix-seconds pair",
                required=True, example="24h")
_OFFSET = Param("offset", "duration", "move the window earlier by this duration", example="1d")
_STEP = Param("step", "step", "length of each step: a duration or hour/day/week; it must "
              "divide the window (default: the whole window)", example="1h")

ALLOCATION = (
    _WINDOW, _OFFSET, _STEP,
    Param("aggregate", "list", "comma list of cluster, node, namespace, controllerKind, "
          "controller, pod, container, label:<key> (default: each container)",
          example="namespace"),
    Param("accumulate", "bool", "one step for the whole window", default=False),
    Param("includeIdle", "bool", "add an __idle__ item per step: the idle cost of the nodes "
          "in scope", default=False),
    Param("shareIdle", "bool", "spread the idle cost over the items by their share of each "
          "resource's cost", default=False),
    Param("filter", "filter", 'OpenCost filter, e.g. namespace:"a","b"+label[app]~:"web"',
          example='namespace:"default"'),
    Param("format", "enum", "response format", default="json", choices=("json", "csv")),
)
ASSETS = (
    _WINDOW, _OFFSET, _STEP,
    Param("accumulate", "bool", "one step for the whole window", default=False),
    Param("filter", "filter", 'OpenCost filter on node fields, e.g. instanceType~:"m5"',
          example='node:"node-a"', table="nodes"),
)
USAGE = (
    _WINDOW, _OFFSET, _STEP,
    Param("namespace", "name", "the namespace to report; with pod= the pod's namespace, with "
          "controller= an optional scope", example="default"),
    Param("controller", "name", "the controller (Deployment, Job, … name) to report",
          example="frontend"),
    Param("controllerKind", "name", "with controller=: only controllers of this kind",
          example="Deployment"),
    Param("pod", "name", "the pod to report (needs namespace=)", example="frontend-1"),
)
ROUTES = (
    Route("/api/v1/allocation", "Cost and usage per item per step, OpenCost-compatible",
          ALLOCATION, "AllocationResponse"),
    Route("/api/v1/assets", "Cost, capacity and idle cost per node per step", ASSETS,
          "AssetsResponse"),
    Route("/api/v1/usage", "Usage, requests and cost of one namespace, controller or pod "
          "per step; null where the store holds no data", USAGE, "UsageResponse"),
    Route("/api/v1/prices", "Unit prices in force and per-node overrides", (), "Prices"),
    Route("/api/v1/prices", "Change unit prices and per-node overrides (needs a token)", (),
          "Prices", method="put", body="PricesUpdate"),
    Route("/api/v1/openapi.json", "This document", (), "OpenApiDocument"),
    Route("/healthz", "Liveness: 200 while the process runs", (), "Status", auth=False),
    Route("/readyz", "Readiness: 200 when the store can be read, else 503", (), "Status",
          auth=False),
    Route("/metrics", "Cost gauges of the last complete hour in Prometheus's text format "
          "(OpenMetrics when asked, gzip when accepted)", (), "PrometheusText", auth=False),
)


def _bool(name: str, text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise BadParameter(name, f"expected true or false, got {text!r}")


def _convert(param: Param, text: str) -> Any:
    if param.kind == "duration":
        return parse_duration(text, param.name)
    if param.kind == "step":
        return parse_step(text)
    if param.kind == "bool":
        return _bool(param.name, text)
    if param.kind == "enum":
        if text not in param.choices:
            raise BadParameter(param.name, f"one of {', '.join(param.choices)}, got {text!r}")
        return text
    if param.kind == "list":
        items = tuple(i.strip() for i in text.split(","))
        if not all(items):
            raise BadParameter(param.name, f"empty item in {text!r}")
        return items
    if param.kind == "filter":
        return parse_filter(text, param.table)
    if param.kind == "name" and not _NAME.fullmatch(text):
        raise BadParameter(param.name, f"not a Kubernetes name: {text[:64]!r}")
    return text


def parse_args(params: tuple[Param, ...], args: Mapping[str, str], now: int) -> dict[str, Any]:
    """Check and convert ``args`` (first value of each); defaults where absent.

    The window is resolved last, with the offset, at ``now``.
    """
    out: dict[str, Any] = {}
    for param in params:
        text = args.get(param.name)
        if text is None or (text == "" and param.kind != "window"):
            if param.required:
                raise BadParameter(param.name, "is required")
            out[param.name] = param.default
        elif param.kind != "window":
            out[param.name] = _convert(param, text)
    if any(p.kind == "window" for p in params):
        out["window"] = parse_window(args.get("window", ""), now, out.get("offset") or 0)
    return out
