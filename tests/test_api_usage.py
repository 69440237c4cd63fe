"""``/api/v1/usage`` against the hand-made store of :mod:`test_api_store`.

Per hour (from the table there): namespace web = A + B uses 1 + 2 = 3 cores and
requests 2 + 1 = 3; RAM use 2 + 1 = 3 GiB, request 4 + 2 = 6 GiB; costs CPU $4,
RAM $0.60. batch = C in H1 only: 1 core used, nothing requested, 1 GiB used, 1 GPU-hour,
$1 + $0.10 + $3. The clock is 02:30, half an hour after the data ends.
"""

from __future__ import annotations

import pytest
from test_api_store import GIB, NOW, T0, H, api_store, build_store  # noqa: F401

from api import ApiConfig, create_app

WINDOW = f"{T0},{T0 + 2 * H}"
NULLS = ("cpuCoreUsageAverage", "cpuCoreRequestAverage", "ramByteUsageAverage",
         "ramByteRequestAverage", "gpuHours", "cpuCost", "ramCost", "gpuCost", "totalCost")


@pytest.fixture(scope="module")
def client(api_store):  # noqa: F811
    return create_app(ApiConfig(store=str(api_store)), clock=lambda: NOW).test_client()


def get(client, status=200, **params):
    params.setdefault("window", WINDOW)
    params.setdefault("step", "1h")
    response = client.get("/api/v1/usage", query_string=params)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def test_namespace_per_hour(client):
    """web: the same each hour — 3 cores used and requested, 3 / 6 GiB, $4.60."""
    data = get(client, namespace="web")["data"]
    assert data["name"] == "web" and data["step"] == H
    h1, h2 = data["series"]
    assert h1["start"] == "2026-11-02T00:00:00Z" and h2["end"] == "2026-11-02T02:00:00Z"
    for s in (h1, h2):
        assert s["cpuCoreUsageAverage"] == 3 and s["cpuCoreRequestAverage"] == 3
        assert s["ramByteUsageAverage"] == 3 * GIB and s["ramByteRequestAverage"] == 6 * GIB
        assert s["gpuHours"] == 0 and s["cpuCost"] == 4 and s["gpuCost"] == 0
        assert s["ramCost"] == pytest.approx(0.6) and s["totalCost"] == pytest.approx(4.6)
        assert s["minutes"] == 60 and s["coverageMinutes"] == 60


def test_covered_step_without_the_item_is_zero_not_null(client):
    """batch ran in H1 only ($4.10, 1 GPU-hour); H2 is covered by the store: zeros."""
    h1, h2 = get(client, namespace="batch")["data"]["series"]
    assert h1["cpuCoreUsageAverage"] == 1 and h1["cpuCoreRequestAverage"] == 0
    assert h1["ramByteUsageAverage"] == GIB and h1["gpuHours"] == 1
    assert h1["gpuCost"] == 3 and h1["totalCost"] == pytest.approx(4.1)
    assert all(h2[f] == 0 for f in NULLS)


def test_steps_without_data_are_null(client):
    """An hour before the data and the half hour up to now hold nothing: null, not 0.
    The step after now (02:30–03:00 is clipped; 03:00–04:00 is left out)."""
    series = get(client, namespace="web", window=f"{T0 - H},{T0 + 4 * H}")["data"]["series"]
    assert [s["start"][11:16] for s in series] == ["23:00", "00:00", "01:00", "02:00"]
    before, after = series[0], series[3]
    for s in (before, after):
        assert s["coverageMinutes"] == 0 and all(s[f] is None for f in NULLS)
    assert after["end"] == "2026-11-02T02:30:00Z" and after["minutes"] == 30
    assert series[1]["totalCost"] == pytest.approx(4.6)


def test_pod_and_controller(client):
    """fe-1 (A): 1 core used of 2 requested, 2 / 4 GiB, $2.40 an hour; the frontend
    Deployment is A + B (= web); a Job named frontend does not exist: zeros."""
    pod = get(client, namespace="web", pod="fe-1", step="2h")["data"]
    assert pod["name"] == "web/fe-1" and len(pod["series"]) == 1
    s = pod["series"][0]
    assert s["cpuCoreUsageAverage"] == 1 and s["cpuCoreRequestAverage"] == 2
    assert s["ramByteUsageAverage"] == 2 * GIB and s["totalCost"] == pytest.approx(4.8)
    ctl = get(client, controller="frontend", controllerKind="Deployment")["data"]
    assert ctl["name"] == "Deployment/frontend"
    assert [s["totalCost"] for s in ctl["series"]] == pytest.approx([4.6, 4.6])
    scoped = get(client, controller="frontend", namespace="batch")["data"]
    assert scoped["name"] == "batch/frontend"
    assert [s["totalCost"] for s in scoped["series"]] == [0, 0]
    job = get(client, controller="frontend", controllerKind="Job")["data"]["series"]
    assert [s["totalCost"] for s in job] == [0, 0]


def test_whole_window_without_step(client):
    """No step: one step of 2 h; averages over 2 h, costs summed ($9.20)."""
    response = client.get("/api/v1/usage", query_string={"window": WINDOW, "namespace": "web"})
    (s,) = response.get_json()["data"]["series"]
    assert s["cpuCoreUsageAverage"] == 3 and s["totalCost"] == pytest.approx(9.2)


@pytest.mark.parametrize(("params", "parameter"), [
    ({}, "namespace"),
    ({"pod": "fe-1"}, "namespace"),
    ({"pod": "fe-1", "namespace": "web", "controller": "frontend"}, "controller"),
    ({"pod": "fe-1", "namespace": "web", "controllerKind": "Job"}, "controllerKind"),
    ({"controllerKind": "Job", "namespace": "web"}, "controllerKind"),
    ({"namespace": "a b"}, "namespace"),
    ({"namespace": "web\n"}, "namespace"),
    ({"pod": "x" * 300, "namespace": "web"}, "pod"),
    ({"controller": "-x"}, "controller"),
    ({"namespace": "web", "step": "7m"}, "step"),
    ({"namespace": "web", "step": "soon"}, "step"),
    ({"namespace": "web", "window": ""}, "window"),
    ({"namespace": "web", "window": "forever"}, "window"),
    ({"namespace": "web", "offset": "-1h"}, "offset"),
])
def test_bad_input_is_a_400_naming_the_parameter(client, params, parameter):
    body = get(client, 400, **params)
    assert body["parameter"] == parameter, body


def test_openapi_describes_usage(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    op = doc["paths"]["/api/v1/usage"]["get"]
    names = [p["name"] for p in op["parameters"]]
    assert names == ["window", "offset", "step", "namespace", "controller", "controllerKind",
                     "pod"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UsageResponse"}
    assert "UsageResponse" in doc["components"]["schemas"]
