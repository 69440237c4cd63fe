"""Cost gauges for Prometheus and Grafana, computed from the store at scrape time.

Why a custom collector: the numbers live in the store, not in this process, so each
scrape reads them (through :meth:`StoreReader.query`, like ``/api/v1/allocation``) instead
of the app keeping gauges up to date. The computed families are cached for
``metrics_cache_seconds`` (30 s) so that several Prometheus replicas or a 1 s scrape
interval do not query the store each time; a new period invalidates the cache at once.

What is reported: the **last complete period** of ``metrics_period`` seconds (an hour by
default), aligned to the epoch: at 10:17 UTC, 09:00–10:00. Values are dollars **per hour**:
the period's cost × 3600 / period, which for the default hour is exactly the hour's cost
as stored (and what ``/api/v1/allocation?window=<that hour>`` reports). A complete period is
reported rather than the open one because a partial period's cost is not yet final.

Families (all gauges; ``resource`` is ``cpu``, ``ram`` or ``gpu``):

* ``kubetally_node_hourly_cost_dollars{cluster,node,instance_type,capacity_type,resource}``
* ``kubetally_node_idle_hourly_cost_dollars{cluster,node,resource}`` — charged to no container
* ``kubetally_gpu_hourly_cost_dollars{cluster,node}`` — nodes with GPUs only
* ``kubetally_namespace_hourly_cost_dollars{cluster,namespace,resource}``
* ``kubetally_controller_hourly_cost_dollars{cluster,namespace,controller_kind,controller,
  resource}`` — the ``metrics_controllers`` costliest controllers; the others summed per
  namespace into ``controller_kind="__other__", controller="__other__"``
* ``kubetally_namespace_efficiency_ratio{cluster,namespace,resource}`` — usage / request
  (absent where nothing was requested, as allocation's efficiency is null there)
* ``kubetally_node_{cpu,ram,gpu}_unit_price_dollars{cluster,node,instance_type,capacity_type}``
  — the unit prices charged (per core-, byte- and GPU-hour), derived as node cost over
  capacity-hours; what the recording rules of ``rules/`` price usage with
* ``kubetally_cost_period_end_timestamp_seconds`` and ``kubetally_cost_period_seconds`` —
  which period the values describe

Cardinality stays bounded: no pod, container or label-value labels; controllers capped.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from aggregator.store import StoreReader
from api.allocation import UNALLOCATED

__all__ = ["OTHER", "CostCollector", "MetricsSettings", "build_registry", "last_period"]

OTHER = "__other__"
RESOURCES = ("cpu", "ram", "gpu")
_HOUR = 3600.0


@dataclass(frozen=True)
class MetricsSettings:
    """What the collector reports: period length, controller cap, cache lifetime."""

    period: int = 3600
    controllers: int = 200
    cache_seconds: float = 30.0
    cluster: str = "default"


def last_period(now: float, period: int) -> tuple[int, int]:
    """``[start, end)`` of the last complete ``period`` aligned to the epoch before ``now``."""
    end = int(now) - int(now) % period
    return end - period, end


class CostCollector(Collector):
    """Reads the store for the last complete period and yields the cost families."""

    def __init__(self, reader: StoreReader, settings: MetricsSettings, *,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if settings.period <= 0:
            raise ValueError(f"metrics period must be positive, got {settings.period}")
        self.reader, self.settings = reader, settings
        self.clock, self.monotonic = clock, monotonic
        self._lock = threading.Lock()
        self._cached: tuple[float, int, list[Metric]] | None = None
        #: How many times the store was queried for a full set (the cache's test seam).
        self.computations = 0

    def describe(self) -> Iterable[Metric]:
        """Nothing: registering must not query the store (the registry would collect)."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The cached families while fresh and for the same period, else recomputed.

        The lock makes concurrent scrapes (threaded servers) compute once, not N times.
        """
        start, end = last_period(self.clock(), self.settings.period)
        with self._lock:
            cached = self._cached
            fresh = cached is not None and cached[1] == end and \
                self.monotonic() - cached[0] < self.settings.cache_seconds
            if not fresh:
                families = list(self._compute(start, end))
                self.computations += 1
                self._cached = (self.monotonic(), end, families)
                return families
            assert cached is not None
            return cached[2]

    # ---- computing ----------------------------------------------------------------------

    def _compute(self, start: int, end: int) -> Iterator[Metric]:
        period = self.settings.period
        scale = _HOUR / period  # dollars per period → dollars per hour (1.0 for an hour)
        meta_end = GaugeMetricFamily(
            "kubetally_cost_period_end_timestamp_seconds",
            "End (Unix time) of the complete period the cost gauges describe")
        meta_end.add_metric([], float(end))
        meta_len = GaugeMetricFamily("kubetally_cost_period_seconds",
                                     "Length of the period the cost gauges describe")
        meta_len.add_metric([], float(period))
        yield meta_end
        yield meta_len
        yield from self._nodes(start, end, scale)
        yield from self._namespaces(start, end, scale)
        yield self._controllers(start, end, scale)

    def _cluster(self, values: np.ndarray) -> list[str]:
        """Clusters as allocation names them: the configured one for series without one."""
        return [v or self.settings.cluster for v in values.tolist()]

    def _nodes(self, start: int, end: int, scale: float) -> Iterator[Metric]:
        cols = ("cluster", "node", "instance_type", "capacity_type")
        measures = [*(f"{r}_cost" for r in RESOURCES), *(f"{r}_idle_cost" for r in RESOURCES),
                    "gpu_hours", "cpu_core_hours", "ram_byte_hours"]
        res = self.reader.query(start, end, end - start, cols, "nodes", measures=measures)
        prices = {r: GaugeMetricFamily(
            f"kubetally_node_{r}_unit_price_dollars",
            f"Unit price the aggregator charged on the node over the last complete period: "
            f"dollars per {unit}-hour (0 where the node has none); inputs of rules/",
            labels=list(cols)) for r, unit in (("cpu", "core"), ("ram", "byte"),
                                              ("gpu", "GPU"))}
        cost = GaugeMetricFamily(
            "kubetally_node_hourly_cost_dollars",
            "Node cost per hour over the last complete period, by resource",
            labels=[*cols, "resource"])
        idle = GaugeMetricFamily(
            "kubetally_node_idle_hourly_cost_dollars",
            "Node cost per hour charged to no container over the last complete period",
            labels=["cluster", "node", "resource"])
        gpu = GaugeMetricFamily(
            "kubetally_gpu_hourly_cost_dollars",
            "GPU cost per hour of nodes with GPUs over the last complete period",
            labels=["cluster", "node"])
        v, present = _first_step(res.values)
        clusters = self._cluster(res.keys["cluster"])
        nodes, types = res.keys["node"].tolist(), res.keys["instance_type"].tolist()
        capacity = res.keys["capacity_type"].tolist()
        idle_sum: dict[tuple[str, str], np.ndarray] = {}
        gpu_sum: dict[tuple[str, str], float] = {}
        for g in np.flatnonzero(present):
            key = (clusters[g], nodes[g])
            for r in RESOURCES:
                cost.add_metric([*key, types[g], capacity[g], r], v[f"{r}_cost"][g] * scale)
            # cost = capacity-hours × unit price, so the price is their ratio
            for r, hours in (("cpu", "cpu_core_hours"), ("ram", "ram_byte_hours"),
                             ("gpu", "gpu_hours")):
                amount = v[hours][g]
                price = v[f"{r}_cost"][g] / amount if amount > 0 else 0.0
                prices[r].add_metric([*key, types[g], capacity[g]], price)
            own = np.array([v[f"{r}_idle_cost"][g] for r in RESOURCES])
            idle_sum[key] = idle_sum.get(key, 0.0) + own  # a node re-typed within the period
            if v["gpu_hours"][g] > 0:
                gpu_sum[key] = gpu_sum.get(key, 0.0) + v["gpu_cost"][g]
        for key, amounts in idle_sum.items():
            for r, amount in zip(RESOURCES, amounts.tolist(), strict=True):
                idle.add_metric([*key, r], amount * scale)
        for key, amount in gpu_sum.items():
            gpu.add_metric(list(key), amount * scale)
        yield from (cost, idle, gpu, *prices.values())

    def _namespaces(self, start: int, end: int, scale: float) -> Iterator[Metric]:
        measures = [*(f"{r}_cost" for r in RESOURCES), "minutes",
                    "cpu_usage_core_hours", "cpu_request_core_hours",
                    "ram_usage_byte_hours", "ram_request_byte_hours",
                    "gpu_usage_hours", "gpu_request_hours"]
        res = self.reader.query(start, end, end - start, ("cluster", "namespace"),
                                "containers", measures=measures)
        cost = GaugeMetricFamily(
            "kubetally_namespace_hourly_cost_dollars",
            "Cost per hour of a namespace's containers over the last complete period",
            labels=["cluster", "namespace", "resource"])
        eff = GaugeMetricFamily(
            "kubetally_namespace_efficiency_ratio",
            "Usage over request of a namespace's containers over the last complete period",
            labels=["cluster", "namespace", "resource"])
        v, present = _first_step(res.values)
        clusters = self._cluster(res.keys["cluster"])
        names = [n or UNALLOCATED for n in res.keys["namespace"].tolist()]
        usage = {"cpu": ("cpu_usage_core_hours", "cpu_request_core_hours"),
                 "ram": ("ram_usage_byte_hours", "ram_request_byte_hours"),
                 "gpu": ("gpu_usage_hours", "gpu_request_hours")}
        for g in np.flatnonzero(present):
            labels = [clusters[g], names[g]]
            for r in RESOURCES:
                cost.add_metric([*labels, r], v[f"{r}_cost"][g] * scale)
                used, requested = (v[m][g] for m in usage[r])
                if requested > 0 and math.isfinite(used):
                    eff.add_metric([*labels, r], used / requested)
        yield from (cost, eff)

    def _controllers(self, start: int, end: int, scale: float) -> Metric:
        cols = ("cluster", "namespace", "controller_kind", "controller")
        res = self.reader.query(start, end, end - start, cols, "containers",
                                measures=[f"{r}_cost" for r in RESOURCES])
        family = GaugeMetricFamily(
            "kubetally_controller_hourly_cost_dollars",
            "Cost per hour of a controller's containers over the last complete period; "
            "beyond the cap, the rest of a namespace is controller=\"__other__\"",
            labels=[*cols, "resource"])
        v, present = _first_step(res.values)
        rows = np.flatnonzero(present)
        costs = np.stack([v[f"{r}_cost"][rows] for r in RESOURCES], axis=-1) if len(rows) \
            else np.zeros((0, len(RESOURCES)))
        # Top N by total cost; ties broken by key order (the store's sort), so stable.
        order = np.argsort(-costs.sum(axis=1), kind="stable")
        keep = order[:max(self.settings.controllers, 0)]
        rest = order[len(keep):]
        clusters = self._cluster(res.keys["cluster"])
        cols_lists = {c: res.keys[c].tolist() for c in cols[1:]}

        def labels(g: int) -> list[str]:
            ns = cols_lists["namespace"][g] or UNALLOCATED
            return [clusters[g], ns, cols_lists["controller_kind"][g] or UNALLOCATED,
                    cols_lists["controller"][g] or UNALLOCATED]

        for i in sorted(keep.tolist()):
            _add(family, labels(int(rows[i])), costs[i], scale)
        other: dict[tuple[str, str], np.ndarray] = {}
        for i in rest.tolist():
            key = tuple(labels(int(rows[i]))[:2])
            other[key] = other.get(key, 0.0) + costs[i]  # type: ignore[index]
        for key, summed in sorted(other.items()):
            _add(family, [*key, OTHER, OTHER], summed, scale)
        return family


def _add(family: GaugeMetricFamily, labels: Sequence[str], costs: np.ndarray,
         scale: float) -> None:
    for r, amount in zip(RESOURCES, costs.tolist(), strict=True):
        family.add_metric([*labels, r], amount * scale)


def _first_step(values: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The single step's values (NaN → 0) and which groups had any data in it."""
    raw = {m: a[0] if len(a) else a for m, a in values.items()}
    present = np.zeros(len(next(iter(raw.values()))), dtype=bool)
    for a in raw.values():
        present |= ~np.isnan(a)
    return {m: np.nan_to_num(a) for m, a in raw.items()}, present


def build_registry(reader: StoreReader, settings: MetricsSettings, *,
                   clock: Callable[[], float] = time.time) -> tuple[CollectorRegistry,
                                                                  CostCollector]:
    """A registry of its own (never the process-global one) holding the cost collector.

    Per app, so that two apps in one process (as in the tests) never report each
    other's store, and the API's gauges never mix with whatever else the process has.
    """
    registry = CollectorRegistry(auto_describe=False)
    collector = CostCollector(reader, settings, clock=clock)
    registry.register(collector)
    return registry, collector
