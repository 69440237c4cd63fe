"""``GET`` and ``PUT /api/v1/prices``: the unit prices in force and per-node overrides.

The API and the aggregator share one prices file (:mod:`aggregator.pricefile`); a PUT
rewrites it atomically and the aggregator prices its next interval with it. Changing
prices changes every cost stored from then on, so writes are never open: with no
bearer token configured a PUT is refused (403) rather than allowed to anyone.

The request body is checked field by field before anything is written; each refusal
names the field (``units.cpu``, ``overrides.<node>``). Node names are checked as
Kubernetes node names and only ever become YAML keys, never part of a path.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request

from aggregator.pricebook import NodeOverride, PriceBook, load_price_book
from aggregator.pricefile import UNIT_FIELDS, default_prices_file, write_prices
from aggregator.prices import PriceError
from api.errors import ApiError, BadParameter
from api.render import ok
from api.state import state

__all__ = ["MAX_BODY", "bp", "prices_file"]

bp = Blueprint("prices", __name__)

#: Largest accepted PUT body: thousands of overrides fit; more is a mistake or abuse.
MAX_BODY = 1 << 20
#: A Kubernetes node name: a DNS subdomain (RFC 1123), at most 253 characters.
_NODE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_OVERRIDE_KEYS = ("hourly", "cpu", "ram", "gpu")


def prices_file() -> Path | None:
    """This app's prices file: configured, else ``<store dir>/prices.yaml`` if local."""
    cfg = state().config
    return Path(cfg.prices_file) if cfg.prices_file else default_prices_file(cfg.store)


def _body(book: PriceBook) -> dict[str, Any]:
    units: dict[str, Any] = {f: getattr(book.units, f) for f in UNIT_FIELDS}
    units["region_fallback"] = book.units.region_fallback
    overrides = {node: {k: getattr(o, k) for k in _OVERRIDE_KEYS if getattr(o, k) is not None}
                 for node, o in sorted(book.overrides.items())}
    return {"units": units, "overrides": overrides}


def _current(file: Path | None) -> PriceBook:
    try:
        return load_price_book(file if file is not None and file.exists() else None,
                               environ={})
    except PriceError as exc:
        raise ApiError(f"prices file unusable: {exc.message}", status=503) from None


@bp.get("/api/v1/prices")
def get_prices() -> Response:
    """The prices the API's file sets (the defaults where it sets none)."""
    return ok(_body(_current(prices_file())))


def _number(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadParameter(field, f"must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise BadParameter(field, f"must be a finite number >= 0, got {value!r}")
    return number


def _units(raw: object) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise BadParameter("units", "must be an object of unit prices")
    out = {}
    for name, value in raw.items():
        if name not in UNIT_FIELDS:
            raise BadParameter(f"units.{str(name)[:64]}", f"unknown unit price (one of "
                                                          f"{', '.join(UNIT_FIELDS)})")
        out[name] = _number(f"units.{name}", value)
    return out


def _overrides(raw: object) -> dict[str, NodeOverride | None]:
    if not isinstance(raw, dict):
        raise BadParameter("overrides", "must be an object of node name → prices")
    out: dict[str, NodeOverride | None] = {}
    for node, value in raw.items():
        if len(node) > 253 or not _NODE.fullmatch(node):
            raise BadParameter("overrides", f"not a Kubernetes node name: {node[:64]!r}")
        field = f"overrides.{node}"
        if value is None:  # null removes the node's override
            out[node] = None
            continue
        if not isinstance(value, dict):
            raise BadParameter(field, "must be {hourly} or some of {cpu, ram, gpu}, or null")
        for key, number in value.items():
            if key not in _OVERRIDE_KEYS:
                raise BadParameter(f"{field}.{str(key)[:64]}", "unknown key (hourly, cpu, ram "
                                                               "or gpu)")
            _number(f"{field}.{key}", number)
        try:
            out[node] = NodeOverride.from_mapping(value)
        except PriceError as exc:
            raise BadParameter(field, exc.message) from None
    return out


@bp.put("/api/v1/prices")
def put_prices() -> Response:
    """Check the body, merge it into the prices file atomically, answer the new prices."""
    if not state().token:
        return _refuse(403, "set a token to allow price changes")
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _refuse(413, f"body larger than {MAX_BODY} bytes")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadParameter("body", "must be a JSON object with units and/or overrides")
    unknown = sorted(set(body) - {"units", "overrides"})
    if unknown:
        raise BadParameter(str(unknown[0])[:64], "unknown field (units or overrides)")
    units = _units(body.get("units", {}))
    overrides = _overrides(body.get("overrides", {}))
    file = prices_file()
    if file is None:
        return _refuse(409, "no prices file: set prices_file for a store that is not local")
    try:
        book = write_prices(file, units, overrides)
    except PriceError as exc:  # the file on disk is broken; the request was fine
        raise ApiError(f"prices file unusable: {exc.message}", status=409) from None
    return ok(_body(book))


def _refuse(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response
