"""``GET /metrics`` of the API: cost gauges of the last complete hour of the hand-made
store of ``test_api_store`` (numbers from its docstring), promtool-clean, cached, capped.

The clock is set to 01:30, so the last complete hour is H1 (00:00–01:00), when all three
containers ran: web CPU 2 + 2 = $4, RAM 0.4 + 0.2 = $0.60; batch CPU $1, RAM $0.10, GPU $3.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_api_store import T0, H, api_store  # noqa: F401

from aggregator.store import StoreReader
from api import ApiConfig, create_app
from api.metrics import OTHER, CostCollector, MetricsSettings, last_period

AT_H1_END = T0 + H + 1800  # 01:30: the last complete hour is H1


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _get(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def _series(samples, name):
    return {dict(k[1]).get("controller", "") for k in samples if k[0] == name}


@pytest.fixture(scope="module")
def text(api_store):  # noqa: F811
    app = create_app(ApiConfig(store=str(api_store), token="s3cret"), clock=lambda: AT_H1_END)
    response = app.test_client().get("/metrics")  # no token: /metrics stays open
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return response.get_data(as_text=True)


def test_last_complete_period_is_epoch_aligned():
    assert last_period(T0 + H + 1800, H) == (T0, T0 + H)
    assert last_period(T0 + H, H) == (T0, T0 + H)  # at 01:00 sharp, 00:00–01:00 is complete
    assert last_period(107, 5) == (100, 105)


def test_namespace_costs_and_efficiency(text):
    s = _samples(text)
    ns = "kubetally_namespace_hourly_cost_dollars"
    assert _get(s, ns, cluster="c1", namespace="web", resource="cpu") == 4.0
    assert _get(s, ns, cluster="c1", namespace="web", resource="ram") == pytest.approx(0.6)
    assert _get(s, ns, cluster="c1", namespace="web", resource="gpu") == 0.0
    assert _get(s, ns, cluster="c1", namespace="batch", resource="cpu") == 1.0
    assert _get(s, ns, cluster="c1", namespace="batch", resource="ram") == pytest.approx(0.1)
    assert _get(s, ns, cluster="c1", namespace="batch", resource="gpu") == 3.0
    eff = "kubetally_namespace_efficiency_ratio"
    # web: CPU used 1 + 2 of 2 + 1 requested; RAM 2 + 1 of 4 + 2 GiB. batch: GPU 0.5 of 1.
    assert _get(s, eff, cluster="c1", namespace="web", resource="cpu") == 1.0
    assert _get(s, eff, cluster="c1", namespace="web", resource="ram") == 0.5
    assert _get(s, eff, cluster="c1", namespace="batch", resource="gpu") == 0.5
    # nothing requested → no efficiency (allocation reports null there)
    assert (eff, (("cluster", "c1"), ("namespace", "batch"), ("resource", "cpu"))) not in s
    assert (eff, (("cluster", "c1"), ("namespace", "web"), ("resource", "gpu"))) not in s


def test_node_idle_and_gpu_costs(text):
    s = _samples(text)
    node = "kubetally_node_hourly_cost_dollars"
    n1 = dict(cluster="c1", node="n1", instance_type="m5.2xlarge", capacity_type="on-demand")
    n2 = dict(cluster="c1", node="n2", instance_type="g4dn.xlarge", capacity_type="spot")
    assert [_get(s, node, **n1, resource=r) for r in ("cpu", "ram", "gpu")] == [8.0, 1.6, 0.0]
    assert [_get(s, node, **n2, resource=r) for r in ("cpu", "ram", "gpu")] == [4.0, 0.8, 3.0]
    idle = "kubetally_node_idle_hourly_cost_dollars"
    assert [_get(s, idle, cluster="c1", node="n1", resource=r)
            for r in ("cpu", "ram", "gpu")] == [4.0, 1.0, 0.0]
    assert [_get(s, idle, cluster="c1", node="n2", resource=r)
            for r in ("cpu", "ram", "gpu")] == [3.0, 0.7, 0.0]
    gpu = "kubetally_gpu_hourly_cost_dollars"
    assert _get(s, gpu, cluster="c1", node="n2") == 3.0
    assert (gpu, (("cluster", "c1"), ("node", "n1"))) not in s  # no GPU, no series
    assert _get(s, "kubetally_cost_period_end_timestamp_seconds") == T0 + H
    assert _get(s, "kubetally_cost_period_seconds") == H


def test_controllers_and_no_pod_labels(text):
    s = _samples(text)
    ctl = "kubetally_controller_hourly_cost_dollars"
    assert _get(s, ctl, cluster="c1", namespace="web", controller_kind="Deployment",
                controller="frontend", resource="cpu") == 4.0
    assert _get(s, ctl, cluster="c1", namespace="batch", controller_kind="Job",
                controller="etl", resource="gpu") == 3.0
    assert not any(dict(k[1]).keys() & {"pod", "container", "uid"} for k in s)


def test_controller_cap_sums_the_rest_per_namespace(api_store):  # noqa: F811
    """Cap 1: frontend ($4.60) stays; etl ($4.10) becomes batch's __other__."""
    collector = CostCollector(StoreReader(api_store), MetricsSettings(controllers=1),
                              clock=lambda: AT_H1_END)
    family = next(f for f in collector.collect()
                  if f.name == "kubetally_controller_hourly_cost_dollars")
    got = {(x.labels["namespace"], x.labels["controller"], x.labels["resource"]): x.value
           for x in family.samples}
    assert got[("web", "frontend", "cpu")] == 4.0
    assert got[("batch", OTHER, "gpu")] == 3.0 and got[("batch", OTHER, "cpu")] == 1.0
    assert ("batch", "etl", "cpu") not in got


def test_cache_reuses_until_stale_or_next_period(api_store):  # noqa: F811
    now, mono = [AT_H1_END], [0.0]
    collector = CostCollector(StoreReader(api_store), MetricsSettings(cache_seconds=30),
                              clock=lambda: now[0], monotonic=lambda: mono[0])
    first = collector.collect()
    mono[0] = 29
    assert collector.collect() is first and collector.computations == 1
    mono[0] = 31
    collector.collect()
    assert collector.computations == 2
    now[0] += H  # the next hour completed: recompute at once
    mono[0] = 32
    collector.collect()
    assert collector.computations == 3


def test_period_other_than_an_hour_reports_dollars_per_hour(api_store):  # noqa: F811
    """A 2 h period (00:00–02:00): web CPU $8 over 2 h → $4 per hour."""
    collector = CostCollector(StoreReader(api_store), MetricsSettings(period=2 * H),
                              clock=lambda: T0 + 2 * H + 1800)
    family = next(f for f in collector.collect()
                  if f.name == "kubetally_namespace_hourly_cost_dollars")
    got = {(x.labels["namespace"], x.labels["resource"]): x.value for x in family.samples}
    assert got[("web", "cpu")] == 4.0 and got[("batch", "gpu")] == 1.5


def test_gzip_and_openmetrics(api_store, text):  # noqa: F811
    client = create_app(ApiConfig(store=str(api_store)), clock=lambda: AT_H1_END).test_client()
    response = client.get("/metrics", headers={"Accept-Encoding": "gzip, deflate"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.get_data()).decode() == text
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.content_type.startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).endswith("# EOF\n")


def test_empty_store_serves_only_the_period(tmp_path):
    client = create_app(ApiConfig(store=str(tmp_path)), clock=lambda: AT_H1_END).test_client()
    s = _samples(client.get("/metrics").get_data(as_text=True))
    assert {k[0] for k in s} == {"kubetally_cost_period_end_timestamp_seconds",
                                 "kubetally_cost_period_seconds"}


@pytest.mark.integration
def test_promtool_finds_nothing(text):
    assert shutil.which("promtool"), "promtool is missing: make tools (Debian's prometheus)"
    done = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                          capture_output=True, timeout=30)
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), \
        done.stdout + done.stderr
