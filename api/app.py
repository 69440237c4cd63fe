"""The Flask app factory: blueprints, JSON error handlers, optional bearer-token auth.

Nothing lives at module level: each :func:`create_app` call builds its own reader from
its config, so tests (and gunicorn workers) never share state by accident.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from flask import Flask, Response, jsonify, request

from aggregator.store import StoreReader
from api.config import ApiConfig
from api.errors import register_error_handlers
from api.jsonprovider import OrjsonProvider
from api.routes import BLUEPRINTS
from api.state import EXTENSION, ApiState, state

__all__ = ["create_app"]

_PROTECTED = "/api/"
#: What the app's reader may keep of sealed partitions (see StoreReader): a 30-day, 1-day
#: step query over 10,000 containers keeps about 40 MB; the bound keeps a long-running
#: API's memory flat whatever its clients ask.
CACHE_BYTES = 256 << 20


def create_app(config: ApiConfig, *, reader: StoreReader | None = None,
               clock: Callable[[], float] = time.time) -> Flask:
    """A ready app for ``config``; ``reader`` and ``clock`` may be injected by tests."""
    app = Flask("kubetally.api")
    app.json = OrjsonProvider(app)
    if reader is None:
        reader = StoreReader(config.store, wal_dir=config.wal_dir or None,
                             cache_bytes=CACHE_BYTES)
    app.extensions[EXTENSION] = ApiState(config, reader, clock, config.bearer_token())
    register_error_handlers(app)
    app.before_request(_authorize)
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    return app


def _authorize() -> Response | None:
    """401 on /api/ without ``Authorization: Bearer <token>`` when a token is set.

    ``hmac.compare_digest`` takes the same time wherever the strings differ, so the
    token cannot be guessed byte by byte from response times.
    """
    token = state().token
    if not token or not request.path.startswith(_PROTECTED):
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                          token.encode()):
        return None
    response = jsonify({"error": "missing or invalid bearer token"})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="kubetally"'
    return response
