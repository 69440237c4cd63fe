"""The API's HTTP surface: 400s naming the parameter, 404/405 in JSON, auth, health,
assets, and the OpenAPI document. Numbers come from the store of ``test_api_store``."""

from __future__ import annotations

import hmac
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_api_store import GIB, NOW, T0, H, api_store  # noqa: F401

import api.app
from api import ApiConfig, create_app
from api.params import ROUTES

WINDOW = f"{T0},{T0 + 2 * H}"


@pytest.fixture(scope="module")
def client(api_store):  # noqa: F811
    return create_app(ApiConfig(store=str(api_store)), clock=lambda: NOW).test_client()


@pytest.mark.parametrize(("params", "parameter"), [
    ({}, "window"),
    ({"window": ""}, "window"),
    ({"window": "fortnight"}, "window"),
    ({"window": "0m"}, "window"),
    ({"window": "2026-11-02T00:00:00,2026-11-03T00:00:00"}, "window"),  # no zone
    ({"window": "2026-11-03T00:00:00Z,2026-11-02T00:00:00Z"}, "window"),  # reversed
    ({"window": "1700086400,1700000000"}, "window"),
    ({"window": "99999999999999,1"}, "window"),
    ({"window": WINDOW, "offset": "yesterday"}, "offset"),
    ({"window": WINDOW, "step": "7x"}, "step"),
    ({"window": WINDOW, "step": "7h"}, "step"),  # does not divide 2 h
    ({"window": "lastmonth", "step": "1m"}, "step"),  # too many steps
    ({"window": WINDOW, "aggregate": "deployment"}, "aggregate"),
    ({"window": WINDOW, "aggregate": "namespace,,pod"}, "aggregate"),
    ({"window": WINDOW, "aggregate": "namespace,namespace"}, "aggregate"),
    ({"window": WINDOW, "aggregate": "label:9lives"}, "aggregate"),
    ({"window": WINDOW, "filter": 'namespace:web'}, "filter"),
    ({"window": WINDOW, "filter": 'flavour:"x"'}, "filter"),
    ({"window": WINDOW, "filter": "(" * 5000}, "filter"),
    ({"window": WINDOW, "filter": 'pod:"x'}, "filter"),
    ({"window": WINDOW, "format": "xml"}, "format"),
    ({"window": WINDOW, "accumulate": "maybe"}, "accumulate"),
    ({"window": WINDOW, "includeIdle": "yes please"}, "includeIdle"),
    ({"window": WINDOW, "shareIdle": "2"}, "shareIdle"),
])
def test_every_bad_parameter_is_a_400_naming_it(client, params, parameter):
    response = client.get("/api/v1/allocation", query_string=params)
    assert response.status_code == 400
    body = response.get_json()
    assert body["parameter"] == parameter and body["error"].startswith(parameter)


def test_filter_errors_give_the_position(client):
    body = client.get("/api/v1/allocation", query_string={
        "window": WINDOW, "filter": 'namespace:"a"+'}).get_json()
    assert "position 14" in body["error"]


def test_unknown_route_and_wrong_method_answer_in_json(client):
    response = client.get("/api/v1/nope")
    assert response.status_code == 404 and "error" in response.get_json()
    response = client.post("/api/v1/allocation")
    assert response.status_code == 405 and "error" in response.get_json()
    assert "GET" in response.headers["Allow"]


def test_assets_per_node(client):
    """n1 over 2 h: 120 minutes, 16 core-hours (8 cores), CPU $16, RAM $3.20, idle CPU $8,
    RAM $2 → $10. n2: CPU $8, RAM $1.60, GPU $6 → $15.60; idle 3 + 4, 0.7 + 0.8, 0 + 3
    → $11.50."""
    body = client.get("/api/v1/assets", query_string={"window": WINDOW}).get_json()
    n1, n2 = body["data"][0]["c1/n1"], body["data"][0]["c1/n2"]
    assert n1["instanceType"] == "m5.2xlarge" and n2["capacityType"] == "spot"
    assert n1["minutes"] == 120 and n1["hours"] == 2 and n1["cpuCores"] == 8
    assert n1["ramBytes"] == 16 * GIB and n1["cpuCost"] == 16
    assert n1["ramCost"] == pytest.approx(3.2) and n1["totalIdleCost"] == pytest.approx(10)
    assert n2["gpuCost"] == 6 and n2["totalCost"] == pytest.approx(15.6)
    assert n2["cpuIdleCost"] == 7 and n2["totalIdleCost"] == pytest.approx(11.5)
    assert n2["properties"]["gpuModel"] == "T4" and n2["region"] == "us-east-1"


def test_assets_filter_and_step(client):
    body = client.get("/api/v1/assets", query_string={
        "window": WINDOW, "step": "1h", "filter": 'instanceType<~:"g4dn"'}).get_json()
    assert [list(step) for step in body["data"]] == [["c1/n2"], ["c1/n2"]]
    assert body["data"][1]["c1/n2"]["gpuIdleCost"] == 3
    bad = client.get("/api/v1/assets", query_string={"window": WINDOW,
                                                     "filter": 'namespace:"web"'})
    assert bad.status_code == 400 and bad.get_json()["parameter"] == "filter"


def test_health_and_readiness(client, tmp_path):
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"
    missing = create_app(ApiConfig(store=str(tmp_path / "absent"))).test_client()
    assert missing.get("/healthz").status_code == 200
    response = missing.get("/readyz")
    assert response.status_code == 503 and "store unavailable" in response.get_json()["error"]


def test_bearer_token_auth_uses_a_constant_time_compare(api_store, monkeypatch):  # noqa: F811
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(api.app.hmac, "compare_digest", spy)
    app = create_app(ApiConfig(store=str(api_store), token="s3cret"), clock=lambda: NOW)
    assert "s3cret" not in repr(app.extensions["kubetally"])
    assert "s3cret" not in repr(ApiConfig(token="s3cret"))
    c = app.test_client()
    query = {"window": WINDOW, "aggregate": "namespace"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        response = c.get("/api/v1/allocation", query_string=query, headers=headers)
        assert response.status_code == 401 and response.get_json()["error"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    ok = c.get("/api/v1/allocation", query_string=query,
               headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and calls
    assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
    assert c.get("/api/v1/openapi.json").status_code == 401


def test_token_file_and_auth_off(api_store, tmp_path):  # noqa: F811
    (tmp_path / "token").write_text("from-file\n")
    c = create_app(ApiConfig(store=str(api_store), token_file=str(tmp_path / "token")),
                   clock=lambda: NOW).test_client()
    assert c.get("/api/v1/openapi.json").status_code == 401
    assert c.get("/api/v1/openapi.json",
                 headers={"Authorization": "Bearer from-file"}).status_code == 200
    off = create_app(ApiConfig(store=str(api_store))).test_client()
    assert off.get("/api/v1/openapi.json").status_code == 200


def test_openapi_document_lists_every_route_and_parameter(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.0")
    served = {r.rule for r in client.application.url_map.iter_rules()
              if r.endpoint != "static"}
    assert set(doc["paths"]) == served == {r.path for r in ROUTES}
    for route in ROUTES:
        op = doc["paths"][route.path]["get"]
        assert [p["name"] for p in op["parameters"]] == [p.name for p in route.params]
        assert "200" in op["responses"]
    alloc = doc["paths"]["/api/v1/allocation"]["get"]
    assert {"window", "step", "aggregate", "accumulate", "includeIdle", "shareIdle", "filter",
            "format", "offset"} == {p["name"] for p in alloc["parameters"]}
    item = doc["components"]["schemas"]["AllocationItem"]["properties"]
    assert {"cpuCoreHours", "totalEfficiency", "window"} <= set(item)
    refs = [v for v in _walk(doc) if isinstance(v, str) and v.startswith("#/")]
    for ref in refs:  # every $ref resolves
        node = doc
        for part in ref[2:].split("/"):
            node = node[part]
    json.dumps(doc, allow_nan=False)


def _walk(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)
    else:
        yield node


def test_store_failure_is_a_503_not_a_500(api_store, monkeypatch):  # noqa: F811
    from aggregator.store import StoreIOError, StoreReader

    def broken(*args, **kwargs):
        raise StoreIOError("disk on fire")

    monkeypatch.setattr(StoreReader, "query", broken)
    c = create_app(ApiConfig(store=str(api_store)), clock=lambda: NOW).test_client()
    response = c.get("/api/v1/allocation", query_string={"window": WINDOW})
    assert response.status_code == 503 and "disk on fire" in response.get_json()["error"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(
    st.sampled_from(["window", "offset", "step", "aggregate", "accumulate", "includeIdle",
                     "shareIdle", "filter", "format"]),
    st.one_of(st.text(max_size=30), st.sampled_from([
        "today", "1h", "30m", "lastweek", "0001-01-01T00:00:00+14:00,2026-01-01T00:00:00Z",
        "9999-12-31T23:59:59-14:00,9999-12-31T23:59:59Z", f"{T0},{T0 + 2 * H}", "true",
        "label:app", 'node:"n3"', "csv", "hour", "1d", "label:", '(pod:"x")'])),
    max_size=6))
def test_no_input_gives_a_500(client, params):
    for path in ("/api/v1/allocation", "/api/v1/assets"):
        response = client.get(path, query_string=params)
        assert response.status_code in (200, 400), (params, response.get_data(as_text=True))
        if response.status_code == 400:
            assert response.get_json()["parameter"]
