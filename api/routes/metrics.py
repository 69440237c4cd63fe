"""``GET /metrics``: the cost gauges of :mod:`api.metrics` in Prometheus's text format.

Open like ``/healthz`` (auth guards only ``/api/``): Prometheus scrapes it without a
token. The registry is built on the first scrape of each app, not at import, so every app
(and every gunicorn worker) has its own; each worker keeps its own 30 s cache.
"""

from __future__ import annotations

import gzip
import threading

from flask import Blueprint, Response, current_app, request
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from api.metrics import MetricsSettings, build_registry
from api.state import state

__all__ = ["bp", "registry"]

bp = Blueprint("metrics", __name__)

_EXTENSION = "kubetally.metrics"
_LOCK = threading.Lock()


def registry() -> CollectorRegistry:
    """This app's registry, created on first use."""
    found = current_app.extensions.get(_EXTENSION)
    if found is None:
        with _LOCK:
            found = current_app.extensions.get(_EXTENSION)
            if found is None:
                st = state()
                cfg = st.config
                settings = MetricsSettings(period=cfg.metrics_period,
                                           controllers=cfg.metrics_controllers,
                                           cache_seconds=cfg.metrics_cache_seconds,
                                           cluster=cfg.cluster)
                found, _collector = build_registry(st.reader, settings, clock=st.clock)
                current_app.extensions[_EXTENSION] = found
    assert isinstance(found, CollectorRegistry)
    return found


@bp.get("/metrics")
def metrics() -> Response:
    """The exposition Prometheus asked for (text or OpenMetrics), gzipped when accepted."""
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encoder(registry())
    headers = {"Content-Type": content_type}
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    headers["Vary"] = "Accept-Encoding"
    return Response(body, status=200, headers=headers)
