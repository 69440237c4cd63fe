"""Grafana dashboards (charts/kubetally/files/dashboards/*.json): static checks, and every
panel query run against a real Prometheus that evaluates the recording rules.

Static: valid JSON, unique panel ids, every panel and target on ``${datasource}``, no
hard-coded datasource UIDs, template variables by ``label_values``.

Live: two simulated exporters (one with GPUs), the aggregator at 1 s intervals, the API
in-process with a 4 s ``metrics_period``, and the Debian ``prometheus`` binary scraping all
three every second with ``rule_files: [rules/kubetally.rules.yml]`` evaluated every second
(as ``test_prometheus_e2e``). Once the rules and the API gauges have data, every target
``expr`` of every panel, with its Grafana variables substituted, must run through
``/api/v1/query`` and return a non-empty result. A query Prometheus cannot parse comes back
as ``status: error``/``bad_data`` (the same parser as ``promtool``), so syntax is checked by
the same call. Each expr runs twice: every variable as Grafana's "All" (``.*``), and each
variable set to one value seen in the live data (a GPU node, a namespace with GPU cost).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from livestack import fetch_json, live_pipeline, promql, wait_until

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "charts" / "kubetally" / "files" / "dashboards"
RULES = ROOT / "rules" / "kubetally.rules.yml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
EXPECTED = {"kubetally-cluster-overview", "kubetally-workloads", "kubetally-gpu",
            "kubetally-nodes"}
#: What Grafana's built-in interval variables become in the live queries.
BUILTINS = {"$__rate_interval": "1m", "${__rate_interval}": "1m", "$__interval": "15s",
            "${__interval}": "15s", "$__range": "5m", "${__range}": "5m"}



# --- loading ---------------------------------------------------------------------------------
def _dashboards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """All panels, rows' nested (collapsed) panels included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) of a JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{path}.{k}", v
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield f"{path}[{i}]", v
            yield from _walk(v, f"{path}[{i}]")


def _all_exprs() -> list[tuple[str, str, str]]:
    """(dashboard, panel title / refId, expr) of every panel target."""
    return [(name, f"{panel.get('title')!r} {target.get('refId')}", target["expr"])
            for name, d in _dashboards().items() for panel, target in _targets(d)]


def _substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana's variable interpolation, for the variables these dashboards use."""
    for k, v in BUILTINS.items():
        expr = expr.replace(k, v)
    for name, value in values.items():
        expr = expr.replace(f"${{{name}}}", value)
        expr = re.sub(rf"\${name}\b", value, expr)
    assert "$" not in expr.replace("$1", ""), f"unsubstituted variable in {expr}"
    return expr


# --- static checks ---------------------------------------------------------------------------
def test_the_four_dashboards_exist_as_valid_json():
    assert not (DASHBOARDS / ".gitkeep").exists()
    found = _dashboards()
    assert set(found) == EXPECTED
    for name, d in found.items():
        assert d["uid"] == name, name
        assert d["title"] and d["schemaVersion"] >= 36, name
        assert d.get("id") is None, f"{name}: a fixed numeric id breaks provisioning"
        assert "__inputs" not in d, f"{name}: export for sharing, not for provisioning"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_panels_are_unique_and_on_the_datasource_variable(name):
    d = _dashboards()[name]
    ids = [p["id"] for p in _panels(d)]
    assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids {ids}"
    for panel in _panels(d):
        title = panel.get("title")
        if panel["type"] == "row":
            continue
        assert panel.get("datasource") == DATASOURCE, f"{name}: panel {title!r}"
        assert panel.get("targets"), f"{name}: panel {title!r} has no query"
        for target in panel["targets"]:
            assert target.get("datasource", DATASOURCE) == DATASOURCE, f"{name}: {title!r}"
            assert target.get("expr", "").strip(), f"{name}: {title!r} has an empty expr"
            assert target.get("refId"), f"{name}: {title!r}"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), f"{name}: panel {title!r} repeats a refId"
        assert "gridPos" in panel, f"{name}: panel {title!r}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_hard_coded_uids(name):
    d = _dashboards()[name]
    for path, value in _walk(d):
        if path.endswith(".uid") and path != ".uid":
            assert value in ("${datasource}", "$datasource", "-- Grafana --"), \
                f"{name}: literal uid {value!r} at {path}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_variables(name):
    variables = {v["name"]: v for v in _dashboards()[name]["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus", name
    for var_name, var in variables.items():
        if var["type"] != "query":
            continue
        assert var["datasource"] == DATASOURCE, f"{name}: ${var_name}"
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        assert query.startswith("label_values("), f"{name}: ${var_name}: {query}"
        assert var.get("includeAll") and var.get("allValue") == ".*", f"{name}: ${var_name}"
    # every variable used in an expr is defined (or a Grafana built-in)
    for _panel, target in _targets(_dashboards()[name]):
        for used in re.findall(r"\$\{?(\w+)", target["expr"]):
            assert used in variables or used.startswith("__") or used.isdigit(), \
                f"{name}: ${used} undefined"


# --- live checks -----------------------------------------------------------------------------
def _query(base: str, query: str) -> dict[str, Any]:
    return promql(base, query)


def _result(base: str, query: str) -> list[dict[str, Any]]:
    body = _query(base, query)
    assert body["status"] == "success", (query, body)
    return body["data"]["result"]


#: Series that must exist before the panels are queried: rule outputs and API gauges.
READY = ("node:kubetally_idle_cost_dollars_per_hour:clamp_min",
         'namespace:kubetally_cost_dollars_per_hour:sum{resource="gpu"} > 0',
         "container:kubetally_container_cpu_usage_cores:rate5m",
         "kubetally_controller_hourly_cost_dollars",
         "kubetally_namespace_efficiency_ratio",
         "kubetally_gpu_hourly_cost_dollars",
         "kubetally_node_gpu_unit_price_dollars",
         "kubetally_container_gpu_sm_utilization_ratio")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with live_pipeline(tmp_path_factory.mktemp("dashboards"), RULES) as p:
        base = p["prometheus"]
        deadline = time.monotonic() + 45

        def ready() -> bool:
            assert p["process"].poll() is None, p["log"].read_text()
            try:
                return all(_result(base, q) for q in READY)
            except OSError:
                return False  # not listening yet

        wait_until(deadline, f"rules and API gauges to have data ({READY})", ready)
        yield base


def _live_values(base: str) -> dict[str, str]:
    """A value from the live data for each dashboard variable."""
    def first(query: str, label: str) -> str:
        result = _result(base, query)
        assert result, query
        return result[0]["metric"][label]
    return {
        "cluster": first("kubetally_namespace_hourly_cost_dollars", "cluster"),
        "namespace": first('namespace:kubetally_cost_dollars_per_hour:sum{resource="gpu"} > 0',
                           "namespace"),
        "node": first("kubetally_gpu_hourly_cost_dollars", "node"),
        "controller": ".*", "controller_kind": ".*", "resource": ".*",
    }


@pytest.mark.integration
@pytest.mark.integration
def test_every_panel_query_returns_data(prometheus):
    values = {"all": dict.fromkeys(("cluster", "namespace", "node", "controller",
                                    "controller_kind", "resource"), ".*"),
              "one": _live_values(prometheus)}
    def failed(choice: str, dashboard: str, panel: str, expr: str) -> str | None:
        query = _substitute(expr, values[choice])
        body = _query(prometheus, query)
        if body.get("status") != "success":
            return f"{dashboard} {panel} [{choice}]: {body.get('error')}\n  {query}"
        if not body["data"]["result"]:
            return f"{dashboard} {panel} [{choice}]: empty result\n  {query}"
        return None

    todo = [(c, *e) for c in values for e in _all_exprs()]
    first = [t for t in todo if failed(*t)]
    # A series can be missing for one evaluation (a scrape at a period boundary, a
    # simulated process between samples): a query must succeed again 3 s later.
    time.sleep(3)
    failures = [msg for t in first if (msg := failed(*t))]
    assert not failures, "\n".join(failures)


@pytest.mark.integration
@pytest.mark.integration
def test_template_variable_queries_have_values(prometheus):
    """``label_values(metric{...}, label)`` as Grafana runs it: /api/v1/series, all values."""
    for name, d in _dashboards().items():
        for var in d["templating"]["list"]:
            if var["type"] != "query":
                continue
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
            assert m, f"{name}: ${var['name']}: {query}"
            selector = _substitute(m.group(1), dict.fromkeys(
                ("cluster", "namespace", "node"), ".*"))
            body = fetch_json(f"{prometheus}/api/v1/series?"
                        f"{urllib.parse.urlencode({'match[]': selector})}")
            assert body["status"] == "success", (name, var["name"], body)
            labels = {s.get(m.group(2)) for s in body["data"]} - {None, ""}
            assert labels, f"{name}: ${var['name']} has no values ({query})"
