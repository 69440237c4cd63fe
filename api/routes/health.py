"""``/healthz`` (liveness) and ``/readyz`` (readiness): both open, without auth.

Liveness only says the process answers; restarting it would not bring back a missing
store. Readiness says the store can be listed: a local store's folder must exist (an
empty listing of a folder that is not there would otherwise look healthy).
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Blueprint, Response, jsonify

from aggregator.store import StoreError
from api.errors import StoreUnavailable
from api.state import state

__all__ = ["bp"]

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """200 while the process runs."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """200 with the partition count when the store can be listed, else 503."""
    st = state()
    url = st.config.store
    local = url[len("file://"):] if url.startswith("file://") else url
    if "://" not in local and not Path(local).is_dir():
        raise StoreUnavailable("store unavailable: no store folder at the configured path")
    try:
        count = len(st.reader.partitions())
        heads = len(st.reader.heads())
    except (StoreError, OSError) as exc:
        raise StoreUnavailable(f"store unavailable: {type(exc).__name__}") from exc
    return jsonify({"status": "ready", "partitions": count, "openHours": heads,
                    "pid": os.getpid()})
