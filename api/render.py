"""Shaping numbers and responses: the one place NaN and infinities become ``null``.

A bare ``NaN`` token is not JSON: every array of numbers goes out through
:func:`numbers` (None where not finite), whatever encoder the app uses.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from flask import Response, jsonify

from api.windows import rfc3339

__all__ = ["csv_response", "numbers", "ok", "step_fields"]


def numbers(values: np.ndarray) -> list[Any]:
    """A 1-d or 2-d float array as (nested) lists of JSON-safe floats, None for NaN/inf.

    One ``tolist`` for a whole array, not one conversion per value: a 30-day hourly
    allocation answer has 260,000 values.
    """
    out: list[Any] = np.asarray(values, dtype=np.float64).tolist()
    bad = np.argwhere(~np.isfinite(values)).tolist()
    if values.ndim == 1:
        for (i,) in bad:
            out[i] = None
    else:
        for i, j in bad:
            out[i][j] = None
    return out


def step_fields(start: int, end: int) -> dict[str, Any]:
    """The window fields OpenCost puts on every item."""
    s, e = rfc3339(start), rfc3339(end)
    return {"window": {"start": s, "end": e}, "start": s, "end": e,
            "minutes": (end - start) / 60.0}


def ok(data: Any) -> Response:
    """OpenCost's envelope: ``{"code": 200, "data": ...}``."""
    return jsonify({"code": 200, "data": data})


def csv_response(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    """A CSV body; ``None`` cells are written empty."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return Response(buf.getvalue(), mimetype="text/csv")
