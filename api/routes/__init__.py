"""One blueprint per resource; :func:`api.app.create_app` registers them all."""

from api.routes.allocation import bp as allocation
from api.routes.assets import bp as assets
from api.routes.health import bp as health
from api.routes.metrics import bp as metrics
from api.routes.openapi import bp as openapi
from api.routes.prices import bp as prices
from api.routes.usage import bp as usage

__all__ = ["BLUEPRINTS"]

BLUEPRINTS = (allocation, assets, health, metrics, openapi, prices, usage)
