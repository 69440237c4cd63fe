"""``GET /api/v1/openapi.json``: an OpenAPI 3.0 document built from :mod:`api.params`.

The routes and parameters come from the same table the handlers validate with, so the
document cannot describe a parameter the API does not take, or miss one it does.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from api.allocation import FIELDS
from api.params import NAME_PATTERN, ROUTES, Param, Route
from api.routes.usage import SERIES_FIELDS

__all__ = ["bp", "document"]

bp = Blueprint("openapi", __name__)

_NUM = {"type": "number", "nullable": True}
_WINDOW = {"type": "object", "properties": {"start": {"type": "string", "format": "date-time"},
                                            "end": {"type": "string", "format": "date-time"}}}
#: The grammar of window, duration and step text (api.windows), for clients and for
#: generated tests; the server still checks each value's range.
_PATTERNS = {
    "window": r"^(today|yesterday|week|lastweek|month|lastmonth|\d{1,7}[mhdw]|\d{1,12},\d{1,12}"
              r"|[^,]+,[^,]+)$",
    "duration": r"^\d{1,7}[mhdw]$",
    "step": r"^(\d{1,7}[mhdw]|hour|day|week)$",
}
_ASSET_FIELDS = ("minutes", "hours", "cpuCores", "ramBytes", "gpuCount", "cpuCoreHours",
                 "ramByteHours", "gpuHours", "cpuCost", "ramCost", "gpuCost", "totalCost",
                 "cpuIdleCost", "ramIdleCost", "gpuIdleCost", "totalIdleCost")


def _schema(param: Param) -> dict[str, Any]:
    if param.kind == "bool":
        return {"type": "boolean", "default": param.default}
    if param.kind == "enum":
        return {"type": "string", "enum": list(param.choices), "default": param.default}
    if param.kind == "list":
        return {"type": "array", "items": {"type": "string"}}
    if param.kind == "name":
        return {"type": "string", "pattern": NAME_PATTERN, "maxLength": 253}
    if param.kind in _PATTERNS:
        return {"type": "string", "pattern": _PATTERNS[param.kind]}
    return {"type": "string"}


def _parameter(param: Param) -> dict[str, Any]:
    out: dict[str, Any] = {"name": param.name, "in": "query", "required": param.required,
                           "description": param.description, "schema": _schema(param)}
    if param.kind == "list":
        out.update(style="form", explode=False)
    if param.example is not None:
        out["example"] = param.example
    return out


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _operation(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _json("OK", route.schema)}
    if route.schema == "AllocationResponse":
        responses["200"]["content"]["text/csv"] = {"schema": {"type": "string"}}
    if route.params:
        responses["400"] = _json("a parameter is malformed; the body names it", "Error")
        responses["503"] = _json("the store cannot be read", "Error")
    if route.auth:
        responses["401"] = _json("missing or wrong bearer token (when auth is on)", "Error")
    if route.schema == "PrometheusText":  # not JSON: the exposition format, as text
        responses["200"] = {"description": "OK", "content": {
            "text/plain": {"schema": {"type": "string"}},
            "application/openmetrics-text": {"schema": {"type": "string"}}}}
        responses["503"] = _json("the store cannot be read", "Error")
    if route.path == "/readyz":
        responses["503"] = _json("the store cannot be read", "Error")
    if route.schema == "Prices":
        responses["503"] = _json("the prices file cannot be read", "Error")
    if route.body is not None:
        responses.update({
            "400": _json("a field of the body is malformed; the error names it", "Error"),
            "403": _json("no token is configured, so prices cannot be changed", "Error"),
            "409": _json("no prices file is configured, or it is broken", "Error"),
            "413": _json("the body is too large", "Error")})
    op: dict[str, Any] = {"summary": route.summary, "parameters": [
        _parameter(p) for p in route.params], "responses": responses}
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _ref(route.body)}}}
    if not route.auth:
        op["security"] = []
    return {route.method: op}


def _item(fields: tuple[str, ...], extra: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {"name": {"type": "string"}, "properties": {"type": "object"},
                             "window": _WINDOW, "start": {"type": "string"},
                             "end": {"type": "string"}, "minutes": {"type": "number"}}
    props.update(extra)
    props.update({f: _NUM for f in fields})
    return {"type": "object", "properties": props}


def _envelope(item: str) -> dict[str, Any]:
    return {"type": "object", "required": ["code", "data"], "properties": {
        "code": {"type": "integer"},
        "data": {"type": "array", "description": "one object per step, items by name",
                 "items": {"type": "object", "additionalProperties": _ref(item)}}}}


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "kubetally API", "version": "1",
                 "description": "Kubernetes cost allocation, OpenCost-compatible field names"},
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string"}, "parameter": {"type": "string"}}},
                "Status": {"type": "object", "properties": {"status": {"type": "string"}}},
                "AllocationItem": _item(FIELDS, {}),
                "AllocationResponse": _envelope("AllocationItem"),
                "AssetItem": _item(_ASSET_FIELDS, {k: {"type": "string"} for k in (
                    "type", "instanceType", "capacityType", "provider", "region")}),
                "AssetsResponse": _envelope("AssetItem"),
                "OpenApiDocument": {"type": "object"},
                **_usage_and_prices(),
            }},
        "security": [{"bearer": []}],
    }


def _paths() -> dict[str, Any]:
    """Each path's operations; a path may have several (GET and PUT of the prices)."""
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {}).update(_operation(route))
    return paths


def _usage_and_prices() -> dict[str, Any]:
    """Schemas of /api/v1/usage and /api/v1/prices."""
    price = {"type": "number", "minimum": 0}
    units = ("cpu", "ram", "gpu", "storage", "spot_cpu", "spot_ram", "spot_gpu")
    override = {"type": "object", "additionalProperties": False, "minProperties": 1,
                "properties": {k: price for k in ("hourly", "cpu", "ram", "gpu")}}
    step = {"type": "object", "properties": {
        "window": _WINDOW, "start": {"type": "string"}, "end": {"type": "string"},
        "minutes": {"type": "number"}, "coverageMinutes": {"type": "number"},
        **{f: _NUM for f in SERIES_FIELDS}}}
    return {
        "UsageResponse": {"type": "object", "required": ["code", "data"], "properties": {
            "code": {"type": "integer"},
            "data": {"type": "object", "required": ["name", "step", "series"], "properties": {
                "name": {"type": "string"},
                "step": {"type": "integer", "description": "seconds per step"},
                "series": {"type": "array", "items": step}}}}},
        "Prices": {"type": "object", "required": ["code", "data"], "properties": {
            "code": {"type": "integer"},
            "data": {"type": "object", "required": ["units", "overrides"], "properties": {
                "units": {"type": "object", "properties": {
                    **{u: price for u in units}, "region_fallback": {"type": "boolean"}}},
                "overrides": {"type": "object", "additionalProperties": override}}}}},
        "PricesUpdate": {"type": "object", "additionalProperties": False, "properties": {
            "units": {"type": "object", "additionalProperties": False,
                      "properties": {u: price for u in units}},
            "overrides": {"type": "object", "description": "node name → prices, or null to "
                          "remove the node's override",
                          "additionalProperties": {**override, "nullable": True}}}},
    }


@bp.get("/api/v1/openapi.json")
def openapi() -> Response:
    """The document, as JSON."""
    return jsonify(document())
