"""One blueprint per resource; :func:`api.app.create_app` registers them all."""

from api.routes.allocation import bp as allocation
from api.routes.assets import bp as assets
from api.routes.health import bp as health
from api.routes.openapi import bp as openapi

__all__ = ["BLUEPRINTS"]

BLUEPRINTS = (allocation, assets, health, openapi)
