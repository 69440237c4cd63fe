"""kubetally's REST API over the store: OpenCost-compatible allocation, assets, health.

``create_app(ApiConfig(...))`` builds the Flask app; ``kubetally api`` serves it under
gunicorn (:mod:`api.server`).
"""

from api.app import create_app
from api.config import ApiConfig
from api.errors import ApiError, BadParameter

__all__ = ["ApiConfig", "ApiError", "BadParameter", "create_app"]
