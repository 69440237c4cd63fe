"""The exporter's view of itself: per-collector duration, errors and availability.

:class:`Instrumented` is the scrape's edge: it times a collector and turns
anything it raises into an error count, so one broken source costs only its
own families and the scrape still succeeds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

from exporter import contract as c
from exporter.exposition import Collector, Family

__all__ = ["CollectorStats", "Instrumented", "KubeState", "SelfCollector"]

log = logging.getLogger(__name__)


class KubeState(NamedTuple):
    """The Kubernetes side's health, read at scrape time from the watchers and resolver."""

    cached_pods: int
    synced: bool
    restarts: Mapping[tuple[str, str], int]  # (resource, reason) → count
    errors: int  # failed API calls and malformed objects


class CollectorStats:
    """Counters shared by the collectors and reported by :class:`SelfCollector`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.durations: dict[str, float] = {}
        self.errors: Counter[str] = Counter()
        self.available: dict[str, bool] = {}
        self.unmatched_cgroups = 0

    def error(self, collector: str, count: int = 1) -> None:
        """Count ``count`` errors against ``collector`` (a file, a pod, a device…)."""
        if count:
            with self._lock:
                self.errors[collector] += count


class Instrumented:
    """Wraps one collector: serialises it, times it, and contains its failures."""

    def __init__(self, name: str, inner: Collector, stats: CollectorStats) -> None:
        self.name = name
        self._inner = inner
        self._stats = stats
        self._lock = threading.Lock()
        stats.errors[name] += 0

    def collect(self) -> Iterator[Family]:
        """Run the inner collector; on failure log it, count it and yield what is whole."""
        with self._lock:
            start = time.perf_counter()
            families: list[Family] = []
            try:
                families.extend(self._inner.collect())
            except Exception:  # the scrape's edge: one source must not fail the scrape
                log.exception("collector %s failed", self.name)
                self._stats.error(self.name)
                families.clear()
            self._stats.durations[self.name] = time.perf_counter() - start
        yield from families


class SelfCollector:
    """Build info, per-collector stats and the Kubernetes watch state."""

    def __init__(self, stats: CollectorStats, version: str, node: str,
                 kube_state: Callable[[], KubeState]) -> None:
        self._stats = stats
        self._version = version
        self._node = node
        self._kube_state = kube_state

    def collect(self) -> Iterator[Family]:
        """Yield the self-metrics families."""
        build = c.EXPORTER_BUILD_INFO.family()
        build.add([self._version, self._node], 1)
        yield build
        kube = self._kube_state()
        duration, errors, available = (c.COLLECTOR_DURATION.family(),
                                       c.COLLECTOR_ERRORS.family(),
                                       c.COLLECTOR_AVAILABLE.family())
        for name, seconds in sorted(self._stats.durations.items()):
            duration.add([name], seconds)
        counts = Counter(self._stats.errors)
        counts["kube"] += kube.errors
        for name, count in sorted(counts.items()):
            errors.add([name], count)
        for name, ok in sorted(self._stats.available.items()):
            available.add([name], 1.0 if ok else 0.0)
        yield from (duration, errors, available)
        pods, live, restarts_family = (c.KUBE_CACHED_PODS.family(), c.KUBE_SYNCED.family(),
                                       c.KUBE_WATCH_RESTARTS.family())
        pods.add([], kube.cached_pods)
        live.add([], 1.0 if kube.synced else 0.0)
        for (resource, reason), count in sorted(kube.restarts.items()):
            restarts_family.add([resource, reason], count)
        unmatched = c.UNMATCHED_CGROUPS.family()
        unmatched.add([], self._stats.unmatched_cgroups)
        yield from (pods, live, restarts_family, unmatched)
