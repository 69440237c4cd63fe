"""One aggregator: discover → scrape → parse → ingest → price → cost → store, each interval.

:meth:`Aggregator.step` does one interval and is what the loop, the tests and the
demo's backfill call; the interval's times are arguments, so a backfill can run the
real scrape path over simulated exporters while storing past intervals. Failures
stay per target: a dead, slow or malformed exporter is counted and its series are
simply absent (NaN) from that interval; the others are stored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from aggregator import cost
from aggregator.errors import ParseError
from aggregator.frame import IntervalFrame
from aggregator.ingest import Ingest, TargetScrape
from aggregator.pricebook import PriceBook
from aggregator.schedule import Ticker
from aggregator.scrape import Scraper
from aggregator.selfmetrics import AggregatorMetrics
from aggregator.store import Block, Store
from aggregator.targets import TargetSource
from aggregator.textparse import parse

__all__ = ["Aggregator", "StepReport"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StepReport:
    """What one interval did."""

    start: int
    end: int
    targets: int
    failed: dict[str, str]
    containers: int
    nodes: int
    total_cost: float


class Aggregator:
    """The aggregator's loop around its parts, each passed in (seams for tests and demo)."""

    def __init__(self, sources: TargetSource, scraper: Scraper, store: Store,
                 prices: PriceBook | Callable[[], PriceBook], metrics: AggregatorMetrics, *,
                 cluster: str = "default",
                 clock: Callable[[], float] = time.time) -> None:
        # A callable (e.g. PriceBookSource) is asked once per interval, so price changes
        # apply from the next interval without a restart; a PriceBook is fixed.
        self.sources, self.scraper, self.store, self.prices = sources, scraper, store, prices
        self.metrics, self.clock = metrics, clock
        self.ingest = Ingest(cluster)
        self._stop = threading.Event()
        self._idle = threading.Event()  # set while run() is not stepping
        self._idle.set()
        self._ticker: Ticker | None = None

    def step(self, start: int, end: int, *, at: float | None = None) -> StepReport:
        """Scrape every target now and store the result as the interval [start, end).

        Counter rates divide by the time between a target's scrapes: the fetch's own
        start time, or ``at`` for every target when given (a backfill over simulated
        exporters whose clock is not the wall clock); ``at`` is then also the "now" of
        the store's sealing and retention.
        """
        t0 = time.perf_counter()
        targets = self.sources.targets()
        self.metrics.record_discovery(self.sources.name, len(targets),
                                      self.sources.errors)
        results = self.scraper.scrape(targets)
        self.metrics.record_scrapes(results)
        t1 = time.perf_counter()
        scrapes, failed = [], {}
        for r in results:
            url = r.target.url
            if not r.ok or r.body is None:
                failed[url] = r.reason or "error"
                continue
            try:
                parsed = parse(r.body, self.ingest.state(url).table, content_type=r.content_type)
            except ParseError as exc:
                failed[url] = "parse"
                self.metrics.count_error(r.target, "parse")
                log.warning("target %s: malformed payload: %s", url, exc)
                continue
            self.metrics.set_samples(r.target, len(parsed))
            scrapes.append(TargetScrape(url, parsed, r.started if at is None else at))
        self.ingest.forget(t.url for t in targets)
        frame = self.ingest.frame(start, end, scrapes, failed)
        t2 = time.perf_counter()
        book = self.prices if isinstance(self.prices, PriceBook) else self.prices()
        priced = cost.compute(frame, book.node_unit_prices(frame.nodes))
        t3 = time.perf_counter()
        self.store.append(start, end, *blocks(frame, priced))
        self.store.maintain(int(self.clock() if at is None else at))
        t4 = time.perf_counter()
        for stage, seconds in (("scrape", t1 - t0), ("parse", t2 - t1), ("cost", t3 - t2),
                               ("store", t4 - t3)):
            self.metrics.set_stage_duration(stage, seconds)
        self.metrics.interval_done()
        total = float(sum(priced.nodes[k].sum() for k in ("cpu_cost", "ram_cost", "gpu_cost")))
        return StepReport(start, end, len(targets), failed, len(frame.containers),
                          len(frame.nodes), total)

    def run(self, interval: int) -> None:
        """Step at every wall-clock boundary until :meth:`stop`."""
        self._idle.clear()
        try:
            ticker = Ticker(interval, clock=self.clock)
            self._ticker = ticker
            for start, end in ticker:
                if self._stop.is_set():
                    break
                report = self.step(int(start), int(end))
                log.info("interval %d: %d/%d targets, %d containers, $%.4f", report.start,
                         report.targets - len(report.failed), report.targets,
                         report.containers, report.total_cost)
        finally:
            self._idle.set()

    def stop(self, wait: float = 0.0) -> bool:
        """End :meth:`run` at its next wake-up; True once no interval is in progress.

        With ``wait``, give the interval in progress up to that many seconds to finish:
        the caller closes the store next, and an interval cut off by that is lost.
        """
        self._stop.set()
        if self._ticker is not None:
            self._ticker.stop()
        return self._idle.wait(wait) if wait > 0 else self._idle.is_set()


def blocks(frame: IntervalFrame, priced: cost.IntervalCost) -> tuple[Block, Block]:
    """The store's two blocks of one priced interval."""
    containers = Block({**frame.containers.identity, **frame.containers.labels},
                       priced.containers)
    nodes = Block(dict(frame.nodes.identity), priced.nodes)
    return containers, nodes
