"""The API's options, declared once (flags, environment, file and README come from here)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from kubetally.config import option

__all__ = ["SECTION", "ApiConfig"]

SECTION = "api"


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Options of ``kubetally api``.

    ``token`` is kept out of ``repr`` so that logging the config never leaks it.
    """

    port: int = option(9000, "TCP port of the API", env_aliases=("PORT",))
    host: str = option("0.0.0.0", "address to listen on")
    store: str = option("./kubetally-data", "store URL: a directory or an fsspec URL")
    wal_dir: str = option("", "folder of the write-ahead logs when the store is an "
                              "object-store URL (empty: inside the store's folder)")
    token_file: str = option("", "file holding the bearer token required on /api/ "
                                 "(empty: no file)")
    token: str = dataclasses.field(default="", repr=False, metadata={
        "help": "bearer token required on /api/ (empty with no token file: no auth)",
        "env_aliases": (), "flag": ""})
    workers: int = option(2, "gunicorn worker processes")
    cluster: str = option("default", "cluster name reported for series stored without one")
    prices_file: str = option("", "YAML file PUT /api/v1/prices writes and the aggregator "
                                  "reloads (empty: <store dir>/prices.yaml for a local store)")
    metrics_period: int = option(3600, "seconds of the period /metrics reports: the last "
                                       "complete one, aligned to the epoch (an hour)")
    metrics_controllers: int = option(200, "most controller series on /metrics: the top N "
                                           "by cost, the rest summed per namespace into "
                                           "controller=\"__other__\"")
    metrics_cache_seconds: float = option(30.0, "seconds /metrics reuses its computed values")

    def bearer_token(self) -> str:
        """The token clients must present: ``token``, else ``token_file``'s first line."""
        if self.token:
            return self.token
        if self.token_file:
            return Path(self.token_file).read_text().strip()
        return ""
