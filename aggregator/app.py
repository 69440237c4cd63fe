"""Wiring: build a running aggregator from its configuration (the CLI's only dependency).

Nothing here reads the environment: the configuration and the price book come in
already layered, so tests and the demo assemble the same thing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, start_http_server

from aggregator.config import AggregatorConfig
from aggregator.errors import AggregatorError
from aggregator.pricebook import PriceBook
from aggregator.scrape import Scraper
from aggregator.selfmetrics import AggregatorMetrics
from aggregator.service import Aggregator
from aggregator.store import Retention, Store
from aggregator.targets import (
    FileSDTargets,
    KubeTargets,
    ShardFilter,
    StaticTargets,
    Target,
    TargetSource,
    parse_shard,
)

__all__ = ["Running", "build_aggregator"]

log = logging.getLogger(__name__)

DAY = 86400


class _Union:
    """Targets of several sources, deduplicated by URL."""

    name = "union"

    def __init__(self, sources: list[TargetSource]) -> None:
        self.sources = sources

    @property
    def errors(self) -> int:
        """Errors of every source."""
        return sum(s.errors for s in self.sources)

    def targets(self) -> list[Target]:
        """Every source's targets, one per URL, sorted."""
        seen = {t.url: t for s in self.sources for t in s.targets()}
        return [seen[u] for u in sorted(seen)]


@dataclass
class Running:
    """A built aggregator with what must be stopped with it."""

    aggregator: Aggregator
    registry: CollectorRegistry
    kube: KubeTargets | None

    def close(self, wait: float = 30.0) -> None:
        """Stop the loop (letting the interval in progress finish, up to ``wait`` seconds),
        the watch, and release the store and HTTP pools."""
        if not self.aggregator.stop(wait):
            log.warning("closing the store with an interval still in progress: it is lost")
        if self.kube is not None:
            self.kube.stop()
        self.aggregator.scraper.close()
        self.aggregator.store.close()


def build_aggregator(cfg: AggregatorConfig, prices: PriceBook | Callable[[], PriceBook], *,
                     serve_metrics: bool = True) -> Running:
    """Assemble sources, scraper, store and loop; optionally serve /metrics on cfg.port."""
    sources: list[TargetSource] = []
    kube = None
    if cfg.targets:
        sources.append(StaticTargets(cfg.targets))
    if cfg.file_sd:
        sources.append(FileSDTargets(cfg.file_sd))
    if cfg.kube_selector:
        from exporter.kube import api_client_from

        client = api_client_from(cfg.kubeconfig or None, cfg.kube_api or None)
        kube = KubeTargets(client, cfg.kube_namespace or None, cfg.kube_selector,
                           port=cfg.exporter_port).start()
        sources.append(kube)
    if not sources:
        raise AggregatorError("no targets: set --targets, --file-sd or --kube-selector")
    index, count = parse_shard(cfg.shard)
    source: TargetSource = sources[0] if len(sources) == 1 else _Union(sources)
    if count > 1:
        source = ShardFilter(source, index, count)
    retention = Retention(raw=round(cfg.raw_retention_days * DAY),
                          hourly=round(cfg.hourly_retention_days * DAY),
                          daily=round(cfg.daily_retention_days * DAY))
    store = Store(cfg.store, cfg.shard, step=cfg.interval, retention=retention)
    registry = CollectorRegistry()
    metrics = AggregatorMetrics(registry)
    aggregator = Aggregator(source, Scraper(cfg.timeout), store, prices, metrics,
                            cluster=cfg.cluster)
    if serve_metrics:
        start_http_server(cfg.port, cfg.host, registry)
    return Running(aggregator, registry, kube)
