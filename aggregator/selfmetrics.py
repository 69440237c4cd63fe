"""The aggregator's own metrics: is every exporter scraped, and how long each stage takes.

The per-target families answer "which nodes are missing from the cost data, and why"
(``target_up`` and ``target_errors_total{reason}``); the interval families answer "is
the aggregator keeping up with its interval". They go to a registry passed in, never
prometheus_client's global one, so tests and several instances do not collide.

One custom collector holds plain numbers rather than ``Gauge``/``Counter`` children:
prometheus_client's counters add a ``_created`` series each (twice the per-target series
for no use here), and a collector can mirror the discovery sources' own error totals
instead of re-counting them. Targets that leave discovery are removed from every
per-target family, counters included: exporter pods get new IPs on each DaemonSet
rollout, and keeping their series would grow the exposition without bound.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from aggregator.errors import AggregatorError
from aggregator.scrape import REASONS, ScrapeResult
from aggregator.targets import Target

__all__ = ["ERROR_REASONS", "STAGES", "AggregatorMetrics", "MetricsError"]

#: The stages of one interval, in order.
STAGES = ("scrape", "parse", "cost", "store")
#: Reasons of ``target_errors_total``: the scraper's, plus ``parse`` for the caller's parser.
ERROR_REASONS = (*REASONS[1:], "parse")

_Key = tuple[str, str]  # (target URL, node): the per-target label values


class MetricsError(AggregatorError, ValueError):
    """A label value outside the documented set (it would be unbounded cardinality)."""


@dataclass
class _TargetState:
    up: float | None = None
    duration: float | None = None
    samples: float | None = None
    errors: dict[str, float] = field(default_factory=dict)


class AggregatorMetrics:
    """Registers itself on ``registry``; the scrape loop feeds it after each step."""

    def __init__(self, registry: CollectorRegistry, prefix: str = "kubetally_aggregator") -> None:
        self.prefix = prefix
        self._lock = threading.Lock()
        self._targets: dict[_Key, _TargetState] = {}
        self._stages = dict.fromkeys(STAGES, 0.0)
        self._intervals = 0
        self._source_targets: dict[str, float] = {}
        self._source_errors: dict[str, float] = {}  # the counter
        self._source_seen: dict[str, int] = {}  # the source's own total last time
        registry.register(self)

    # --- feeding ----------------------------------------------------------------------------
    def record_scrapes(self, results: Iterable[ScrapeResult]) -> None:
        """Publish one interval's scrapes; targets absent from ``results`` are removed."""
        with self._lock:
            live: dict[_Key, _TargetState] = {}
            for r in results:
                key = (r.target.url, r.target.node)
                state = live[key] = self._targets.get(key) or _TargetState()
                state.up, state.duration = (1.0 if r.ok else 0.0), r.duration
                if not r.ok:
                    _count(state, r.reason or "connection")
            self._targets = live

    def count_error(self, target: Target, reason: str) -> None:
        """Count a failure found after the scrape (``parse`` from the caller's parser);
        the target reads as down until its next scrape."""
        with self._lock:
            state = self._targets.setdefault((target.url, target.node), _TargetState())
            _count(state, reason)
            state.up = 0.0

    def set_samples(self, target: Target, samples: int) -> None:
        """The number of samples the caller parsed from ``target``'s last scrape."""
        with self._lock:
            self._targets.setdefault((target.url, target.node), _TargetState()).samples = samples

    def set_stage_duration(self, stage: str, seconds: float) -> None:
        """How long ``stage`` (one of :data:`STAGES`) took in the last interval."""
        if stage not in STAGES:
            raise MetricsError(f"unknown stage {stage!r}: expected one of {', '.join(STAGES)}")
        with self._lock:
            self._stages[stage] = seconds

    def interval_done(self) -> None:
        """Count one completed interval."""
        with self._lock:
            self._intervals += 1

    def record_discovery(self, source: str, targets: int, errors: int) -> None:
        """A source's current target count and its cumulative ``errors`` attribute.

        The counter follows the source's total; a lower total (a recreated source) is
        taken as the new baseline rather than making the counter go backwards.
        """
        with self._lock:
            self._source_targets[source] = targets
            seen = self._source_seen.get(source, 0)
            self._source_errors[source] = self._source_errors.get(source, 0) + max(
                0, errors - seen)
            self._source_seen[source] = errors

    # --- exposition -------------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        """The families, from one consistent copy of the state."""
        p = self.prefix
        with self._lock:
            targets = sorted((k, _TargetState(s.up, s.duration, s.samples, dict(s.errors)))
                             for k, s in self._targets.items())
            stages, intervals = dict(self._stages), self._intervals
            sources, errors = dict(self._source_targets), dict(self._source_errors)
        per_target = ["target", "node"]
        families: list[tuple[GaugeMetricFamily, str]] = [
            (GaugeMetricFamily(f"{p}_target_up", "1 if the last scrape of the target "
                               "succeeded, else 0.", labels=per_target), "up"),
            (GaugeMetricFamily(f"{p}_target_scrape_duration_seconds", "Duration of the last "
                               "scrape of the target.", labels=per_target), "duration"),
            (GaugeMetricFamily(f"{p}_target_samples", "Samples parsed from the last scrape of "
                               "the target.", labels=per_target), "samples"),
        ]
        for family, attr in families:
            for key, state in targets:
                value = getattr(state, attr)
                if value is not None:
                    family.add_metric(list(key), value)
            yield family
        failed = CounterMetricFamily(f"{p}_target_errors_total", "Failed scrapes of the target "
                                     "by reason.", labels=[*per_target, "reason"])
        for key, state in targets:
            for reason, n in sorted(state.errors.items()):
                failed.add_metric([*key, reason], n)
        yield failed
        stage = GaugeMetricFamily(f"{p}_interval_duration_seconds", "Duration of each stage "
                                  "of the last interval.", labels=["stage"])
        for name in STAGES:
            stage.add_metric([name], stages[name])
        yield stage
        yield CounterMetricFamily(f"{p}_intervals_total", "Intervals completed.",
                                  value=intervals)
        known = GaugeMetricFamily(f"{p}_targets", "Targets currently known, by discovery "
                                  "source.", labels=["source"])
        discovery = CounterMetricFamily(f"{p}_discovery_errors_total", "Failed target "
                                        "discovery attempts, by source.", labels=["source"])
        for source in sorted(sources):
            known.add_metric([source], sources[source])
            discovery.add_metric([source], errors.get(source, 0))
        yield known
        yield discovery


def _count(state: _TargetState, reason: str) -> None:
    if reason not in ERROR_REASONS:
        raise MetricsError(f"unknown scrape error reason {reason!r}: expected one of "
                           f"{', '.join(ERROR_REASONS)}")
    state.errors[reason] = state.errors.get(reason, 0) + 1
