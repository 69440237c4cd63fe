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

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from aggregator.app import build_aggregator
from aggregator.config import AggregatorConfig
from aggregator.pricebook import load_price_book
from api import ApiConfig, create_app
from exporter.app import build_exporter
from exporter.config import ExporterConfig
from exporter.kube import api_client_from
from exporter.simulate.node import SimulatedNode

PROMETHEUS = "/usr/bin/prometheus"
PERIOD = 4  # seconds the API's /metrics reports instead of an hour
INTERVAL = 1  # the aggregator's (and the store's) step

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which(PROMETHEUS) is None,
                                 reason="prometheus not installed")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def _wait_until(deadline: float, what: str, check: Any) -> Any:
    """Poll ``check()`` until it returns something truthy, or fail naming ``what``."""
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Everything running; yields the URLs. Torn down in reverse, Prometheus always killed."""
    stack: list[Any] = []
    try:
        exporters = []
        for seed, gpu in ((31, False), (32, True)):
            sim = SimulatedNode(str(tmp_path / f"node{seed}"), seed=seed, pods=6,
                                gpu=gpu).__enter__()
            stack.append(sim.close)
            sim.run_in_background(0.25)
            exporter = build_exporter(
                ExporterConfig(node_name=sim.node_name, cgroup_root=sim.cgroup_root,
                               proc_root=sim.proc_root, host="127.0.0.1", port=0),
                api_client_from(host=sim.api_url), sim.nvml)
            exporter.start()
            stack.append(exporter.stop)
            assert exporter.pods.wait_synced(20) and exporter.nodes.wait_synced(20)
            exporters.append(f"127.0.0.1:{exporter.server.port}")
        store = tmp_path / "store"
        running = build_aggregator(
            AggregatorConfig(targets=tuple(exporters), store=str(store), timeout=0.8,
                             interval=INTERVAL, cluster="e2e"),
            load_price_book(None, environ={}), serve_metrics=False)
        stack.append(running.close)
        loop = threading.Thread(target=running.aggregator.run, args=(INTERVAL,), daemon=True)
        loop.start()
        stack.append(lambda: loop.join(10))

        app = create_app(ApiConfig(store=str(store), metrics_period=PERIOD,
                                   metrics_cache_seconds=0.5))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        stack.append(server.shutdown)
        api = f"127.0.0.1:{server.server_port}"

        prom_port = _free_port()
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                  "scrape_configs": [{"job_name": "exporters",
                                      "static_configs": [{"targets": exporters}]},
                                     {"job_name": "kubetally-api",
                                      "static_configs": [{"targets": [api]}]}]}
        (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        log = (tmp_path / "prometheus.log").open("w")
        prom = subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=log, stderr=subprocess.STDOUT)

        def kill_prometheus() -> None:
            prom.kill()
            prom.wait(10)
            log.close()

        stack.append(kill_prometheus)
        yield {"prometheus": f"http://127.0.0.1:{prom_port}", "api": f"http://{api}",
               "process": prom, "log": tmp_path / "prometheus.log"}
    finally:
        for close in reversed(stack):
            close()


def _promql(base: str, query: str, at: float | None = None) -> list[dict[str, Any]]:
    params = {"query": query, **({"time": f"{at:.3f}"} if at is not None else {})}
    body = _json(f"{base}/api/v1/query?{urllib.parse.urlencode(params)}")
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

    _wait_until(deadline, "all three targets up", all_up)

    # A period that starts after the aggregator and Prometheus were both running, and
    # whose reporting window [E, E + PERIOD) has fully passed.
    first = int(time.time()) // PERIOD * PERIOD + PERIOD  # next boundary: a whole period
    end = first + PERIOD
    _wait_until(deadline, "the period's reporting window to pass",
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
    allocation = _json(f"{api}/api/v1/allocation?{query}")["data"][0]
    assert set(by_ns) == set(allocation)
    per_hour = 3600 / PERIOD
    for ns, item in allocation.items():
        for resource in ("cpu", "ram", "gpu"):
            assert by_ns[ns][resource] == pytest.approx(item[f"{resource}Cost"] * per_hour,
                                                        rel=1e-6, abs=1e-12), (ns, resource)
    assert sum(v["cpu"] for v in by_ns.values()) > 0  # real money, not zeros everywhere
