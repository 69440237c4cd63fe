"""The whole pipeline running live for the tests that need a real Prometheus.

Two simulated nodes (one with GPUs) with real exporters, the aggregator's own wall-clock
loop at 1 s intervals, the API in-process (werkzeug, threaded) with its ``/metrics``
period shortened, and the Debian ``prometheus`` binary scraping all three every second,
optionally evaluating ``rules/``. Prometheus only ingests live scrapes, hence real time.
Everything is torn down in reverse order; Prometheus is always killed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

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

__all__ = ["INTERVAL", "PERIOD", "fetch_json", "live_pipeline", "promql", "wait_until"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch_json(url: str) -> Any:
    """GET ``url`` and decode its JSON body (Prometheus's 400/422 answers are JSON too)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as err:
        return json.load(err)


def promql(base: str, query: str, at: float | None = None) -> dict[str, Any]:
    """The raw answer of Prometheus's instant query API (``status``, ``data``...)."""
    params = {"query": query, **({"time": f"{at:.3f}"} if at is not None else {})}
    return fetch_json(f"{base}/api/v1/query?{urllib.parse.urlencode(params)}")


def wait_until(deadline: float, what: str, check: Callable[[], Any]) -> Any:
    """Poll ``check()`` until it returns something truthy, or fail naming ``what``."""
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


@contextmanager
def live_pipeline(tmp_path: Path, rules: Path | None = None) -> Iterator[dict[str, Any]]:
    """Yields ``prometheus`` and ``api`` base URLs, the Prometheus ``process`` and ``log``."""
    assert shutil.which(PROMETHEUS), "prometheus is missing: make tools (Debian's package)"
    with ExitStack() as stack:
        exporters = []
        for seed, gpu in ((31, False), (32, True)):
            sim = stack.enter_context(SimulatedNode(str(tmp_path / f"node{seed}"), seed=seed,
                                                    pods=6, gpu=gpu))
            sim.run_in_background(0.25)
            exporter = build_exporter(
                ExporterConfig(node_name=sim.node_name, cgroup_root=sim.cgroup_root,
                               proc_root=sim.proc_root, host="127.0.0.1", port=0),
                api_client_from(host=sim.api_url), sim.nvml)
            exporter.start()
            stack.callback(exporter.stop)
            assert exporter.pods.wait_synced(20) and exporter.nodes.wait_synced(20)
            exporters.append(f"127.0.0.1:{exporter.server.port}")
        store = tmp_path / "store"
        running = build_aggregator(
            AggregatorConfig(targets=tuple(exporters), store=str(store), timeout=0.8,
                             interval=INTERVAL, cluster="e2e"),
            load_price_book(None, environ={}), serve_metrics=False)
        stack.callback(running.close)
        loop = threading.Thread(target=running.aggregator.run, args=(INTERVAL,), daemon=True)
        loop.start()
        stack.callback(lambda: loop.join(10))

        app = create_app(ApiConfig(store=str(store), metrics_period=PERIOD,
                                   metrics_cache_seconds=0.5))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        stack.callback(server.shutdown)
        api = f"127.0.0.1:{server.server_port}"

        prom_port = _free_port()
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": "exporters", "static_configs": [{"targets": exporters}]},
                {"job_name": "kubetally-api", "static_configs": [{"targets": [api]}]}]}
        if rules is not None:
            config["rule_files"] = [str(rules)]
        (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        log_path = tmp_path / "prometheus.log"
        log = stack.enter_context(log_path.open("w"))
        prom = subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            yield {"prometheus": f"http://127.0.0.1:{prom_port}", "api": f"http://{api}",
                   "process": prom, "log": log_path}
        finally:
            prom.kill()
            prom.wait(10)
