"""The API's errors, and the handlers that turn every failure into a JSON body.

A client must always be able to tell what it did wrong, so every refusal names the
parameter at fault (``{"error": ..., "parameter": ...}``) and no input can produce a
500: parameters are checked before the store is asked, the store's own
:class:`~aggregator.store.QueryError` becomes a 400 naming our parameter, and any
other :class:`~aggregator.store.StoreError` (disk gone, corrupt partition) a 503, since
it is the server's state and not the request that is wrong.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from aggregator.store import QueryError, StoreError

__all__ = ["ApiError", "BadParameter", "StoreUnavailable", "register_error_handlers"]

log = logging.getLogger("kubetally.api")

#: The store's parameter names, as the API's (the store validates once more; we name ours).
_STORE_PARAMS = {"start": "window", "end": "window", "step": "step", "group_by": "aggregate",
                 "where": "filter", "table": "table", "measures": "measures"}


class ApiError(Exception):
    """A refusal with an HTTP status, a message and, when one is at fault, a parameter."""

    status = 500

    def __init__(self, message: str, parameter: str | None = None, *,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter
        if status is not None:
            self.status = status

    def body(self) -> dict[str, object]:
        """The JSON body: the message, and the parameter when there is one."""
        out: dict[str, object] = {"error": self.message}
        if self.parameter is not None:
            out["parameter"] = self.parameter
        return out


class BadParameter(ApiError):
    """A query parameter is missing or malformed: 400, naming it."""

    status = 400

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}", parameter)


class StoreUnavailable(ApiError):
    """The store cannot be read right now: 503, so a load balancer retries elsewhere."""

    status = 503


def _json(body: dict[str, object], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def _api_error(exc: ApiError) -> Response:
    return _json(exc.body(), exc.status)


def _query_error(exc: QueryError) -> Response:
    param = _STORE_PARAMS.get(exc.param, exc.param)
    return _json({"error": f"{param}: {exc.message}", "parameter": param}, 400)


def _store_error(exc: StoreError) -> Response:
    log.warning("store unavailable: %s", exc)
    return _json({"error": f"store unavailable: {exc}"}, 503)


def _http_error(exc: HTTPException) -> Response:
    response = _json({"error": exc.description or exc.name}, exc.code or 500)
    if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
        response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    return response


def register_error_handlers(app: Flask) -> None:
    """Answer every error in JSON: ours, the store's, and Werkzeug's (404, 405, 500)."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(QueryError, _query_error)
    app.register_error_handler(StoreError, _store_error)
    app.register_error_handler(HTTPException, _http_error)
