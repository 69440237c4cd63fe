"""Serving the app under gunicorn, started from ``kubetally api`` (no gunicorn CLI needed).

gunicorn's master handles SIGTERM gracefully: it stops accepting, lets workers finish
their requests for up to ``graceful_timeout`` seconds, then exits — what a Kubernetes
pod's termination expects. The app is built in the master before forking, so a broken
config fails once, loudly, instead of in every worker.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from api.app import create_app
from api.config import ApiConfig

__all__ = ["GunicornServer", "gunicorn_options", "serve"]

log = logging.getLogger("kubetally.api")


class GunicornServer(BaseApplication):
    """gunicorn around an already built WSGI app, with options from a dict."""

    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        """Copy our options into gunicorn's settings (unknown keys are a programming error)."""
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def gunicorn_options(config: ApiConfig) -> dict[str, Any]:
    """Bind, workers and timeouts from ``config``."""
    return {"bind": f"{config.host}:{config.port}", "workers": max(1, config.workers),
            "graceful_timeout": 30, "timeout": 120, "proc_name": "kubetally-api",
            "accesslog": "-", "errorlog": "-"}


def serve(config: ApiConfig) -> int:
    """Run until SIGTERM/SIGINT; 0 on a clean stop."""
    app = create_app(config)
    log.info("kubetally api on %s:%d, store %s, %d workers, auth %s", config.host,
             config.port, config.store, config.workers,
             "on" if app.extensions["kubetally"].token else "off")
    GunicornServer(app, gunicorn_options(config)).run()
    return 0
