"""``GET /api/v1/openapi.json``: an OpenAPI 3.0 document built from :mod:`api.params`.

The routes and parameters come from the same table the handlers validate with, so the
document cannot describe a parameter the API does not take, or miss one it does.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from api.allocation import FIELDS
from api.params import ROUTES, Param, Route

__all__ = ["bp", "document"]

bp = Blueprint("openapi", __name__)

_NUM = {"type": "number", "nullable": True}
_WINDOW = {"type": "object", "properties": {"start": {"type": "string", "format": "date-time"},
                                            "end": {"type": "string", "format": "date-time"}}}
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
    if route.path == "/readyz":
        responses["503"] = _json("the store cannot be read", "Error")
    op: dict[str, Any] = {"summary": route.summary, "parameters": [
        _parameter(p) for p in route.params], "responses": responses}
    if not route.auth:
        op["security"] = []
    return {"get": op}


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
        "paths": {r.path: _operation(r) for r in ROUTES},
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
            }},
        "security": [{"bearer": []}],
    }


@bp.get("/api/v1/openapi.json")
def openapi() -> Response:
    """The document, as JSON."""
    return jsonify(document())
