"""What one app instance holds: its config, its store reader and its clock.

Kept in ``app.extensions`` (never a module global), so two apps in one process, as the
tests create, never share a reader or a token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flask import current_app

from aggregator.store import StoreReader
from api.config import ApiConfig

__all__ = ["EXTENSION", "ApiState", "state"]

EXTENSION = "kubetally"


@dataclass(frozen=True)
class ApiState:
    """Per-app state; ``token`` is empty when auth is off (kept out of repr)."""

    config: ApiConfig
    reader: StoreReader
    clock: Callable[[], float]
    token: str = field(default="", repr=False)

    def now(self) -> int:
        """The current time in whole Unix seconds."""
        return int(self.clock())


def state() -> ApiState:
    """The current app's state."""
    found: ApiState = current_app.extensions[EXTENSION]
    return found
