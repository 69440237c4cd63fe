"""The whole pipeline under a real Prometheus: exporters → aggregator → store → API /metrics.

Two simulated nodes with real exporters, the aggregator's own wall-clock loop
(:meth:`Aggregator.run`) at 1 s intervals, the API in-process (werkzeug, threaded) with its
``/metrics`` period set to 4 s instead of an hour, and the Debian ``prometheus`` binary
scraping all three every second. Prometheus only ingests live scrapes, hence real time
rather than the synthetic past times of ``test_aggregator_e2e``.

Which sample to compare: a scrape taken just after a period ends may precede the
aggregator's last interval of that period, so the test takes the last scrape whose
``kubetally_cost_period_end_timestamp_seconds`` says E (late in the reporting window
``[E, E + P)``, ≥ 1.5 s after E; the API's cache is shorter than the scrape interval).
That value must equal ``/api/v1/allocation?window=E-P,E`` × 3600 / P (the gauge is
dollars per hour).
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from livestack import PERIOD, fetch_json, live_pipeline, promql, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Exporters, aggregator, API and Prometheus running (see :mod:`livestack`)."""
    with live_pipeline(tmp_path) as running:
        yield running


def _promql(base: str, query: str, at: float | None = None) -> list[dict[str, Any]]:
    body = promql(base, query, at)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_prometheus_scrapes_the_same_costs_as_the_allocation_api(pipeline):
    prom, api = pipeline["prometheus"], pipeline["api"]
    deadline = time.monotonic() + 45

    def all_up() -> bool:
        assert pipeline["process"].poll() is None, pipeline["log"].read_text()
        try:
            ups = _promql(prom, "up")
        except OSError:
            return False  # not listening yet
        return len(ups) == 3 and all(u["value"][1] == "1" for u in ups)

    wait_until(deadline, "all three targets up", all_up)

    # A period that starts after the aggregator and Prometheus were both running, and
    # whose reporting window [E, E + PERIOD) has fully passed.
    first = int(time.time()) // PERIOD * PERIOD + PERIOD  # next boundary: a whole period
    end = first + PERIOD
    wait_until(deadline, "the period's reporting window to pass",
                lambda: time.time() > end + PERIOD + 1.5)  # + a scrape and ingestion
    # The last scrape that reported period `end` (the API stamps each scrape with it).
    history = _promql(prom, f"kubetally_cost_period_end_timestamp_seconds[{4 * PERIOD}s]")
    stamps = [float(t) for t, v in history[0]["values"] if float(v) == end]
    assert stamps, history
    at = max(stamps)
    assert at >= end + 1.5, "no scrape late enough in the period's reporting window"
    scraped = _promql(prom, 'kubetally_namespace_hourly_cost_dollars{cluster="e2e"}', at)
    by_ns: dict[str, dict[str, float]] = {}
    for s in scraped:
        by_ns.setdefault(s["metric"]["namespace"], {})[s["metric"]["resource"]] = \
            float(s["value"][1])
    assert by_ns, "no namespace cost reached Prometheus"

    query = urllib.parse.urlencode({"window": f"{end - PERIOD},{end}",
                                    "aggregate": "namespace", "accumulate": "true"})
    allocation = fetch_json(f"{api}/api/v1/allocation?{query}")["data"][0]
    assert set(by_ns) == set(allocation)
    per_hour = 3600 / PERIOD
    for ns, item in allocation.items():
        for resource in ("cpu", "ram", "gpu"):
            assert by_ns[ns][resource] == pytest.approx(item[f"{resource}Cost"] * per_hour,
                                                        rel=1e-6, abs=1e-12), (ns, resource)
    assert sum(v["cpu"] for v in by_ns.values()) > 0  # real money, not zeros everywhere
