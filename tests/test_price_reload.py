"""The aggregator prices each interval with the prices file as it is at that interval.

One node, 2 cores, 4 GiB, no GPU, no containers, an instance type no table lists, so
its unit prices are the defaults the file sets: RAM at $0, CPU at $1.20 then $3.00 per
core-hour. A 60 s interval costs 2 · price / 60: $0.04, then $0.10.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from aggregator.pricefile import PriceBookSource, write_prices
from aggregator.scrape import ScrapeResult
from aggregator.selfmetrics import AggregatorMetrics
from aggregator.service import Aggregator
from aggregator.store import Store
from aggregator.targets import Target
from exporter import contract as c
from exporter.exposition import render

T0 = 1_764_000_000 - 1_764_000_000 % 3600
TARGET = Target("http://n1:9102/metrics", "n1")


def _body() -> bytes:
    fams = {m: m.family() for m in c.ALL}
    fams[c.NODE_INFO].add(["n1", "test", "tiny", "nowhere-1", "nowhere-1a", "on-demand", "",
                           "none"], 1)
    fams[c.NODE_CPU_CAPACITY].add(["n1"], 2)
    fams[c.NODE_MEMORY_CAPACITY].add(["n1"], 4 * 2**30)
    text = render(fams.values())
    return text if isinstance(text, bytes) else text.encode()


class _Sources:
    """A TargetSource: name, cumulative errors, targets()."""

    name = "static"
    errors = 0

    def targets(self):
        return [TARGET]


class _Scraper:
    def scrape(self, targets):
        return [ScrapeResult(t, True, _body(), "text/plain", T0, 0.0, None, "") for t in targets]


def test_a_price_change_applies_from_the_next_interval(tmp_path):
    file = tmp_path / "prices.yaml"
    write_prices(file, {"cpu": 1.2, "ram": 0.0}, {})
    prices = PriceBookSource(file, environ={})
    with Store(tmp_path / "store", step=60) as store:
        agg = Aggregator(_Sources(), _Scraper(), store, prices,
                         AggregatorMetrics(CollectorRegistry()), clock=lambda: T0 + 120)
        first = agg.step(T0, T0 + 60, at=T0 + 60)
        write_prices(file, {"cpu": 3.0}, {})  # what PUT /api/v1/prices does
        second = agg.step(T0 + 60, T0 + 120, at=T0 + 120)
    assert first.nodes == 1
    assert abs(first.total_cost - 0.04) < 1e-12
    assert abs(second.total_cost - 0.10) < 1e-12
