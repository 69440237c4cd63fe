"""``/api/v1/allocation`` against the hand-made store of :mod:`test_api_store`.

The window is the two hours of data, 2026-11-02 00:00–02:00 (a Unix pair), so
``hours`` = 2 when accumulated and 1 per step at ``step=1h``. Expected numbers are
worked out in each test's docstring from the table in ``test_api_store``.
"""

from __future__ import annotations

import csv
import io

import pytest
from test_api_store import GIB, NOW, T0, H, api_store, build_store  # noqa: F401

from api import ApiConfig, create_app

WINDOW = f"{T0},{T0 + 2 * H}"


@pytest.fixture(scope="module")
def client(api_store):  # noqa: F811
    return create_app(ApiConfig(store=str(api_store)), clock=lambda: NOW).test_client()


def get(client, **params):
    params.setdefault("window", WINDOW)
    response = client.get("/api/v1/allocation", query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_by_namespace_accumulated(client):
    """web = A + B over 2 h: charged CPU (2 + 2)·2 = 8 core-hours → 4 cores, $8;
    requests (2 + 1)·2 = 6 → average 3; usage (1 + 2)·2 = 6 → average 3; efficiency 1.
    RAM charged (4 + 2)·2 = 12 GiB-h → 6 GiB; request average 6 GiB, usage 3 GiB,
    efficiency 0.5, $1.20. total $9.20; total efficiency (8·1 + 1.2·0.5) / 9.2.
    batch = C in H1: 1 core-hour (0.5 cores), no request → efficiency null, GPU 1 h
    (0.5 GPUs) at 0.5 efficiency, $1 + $0.10 + $3 = $4.10, total efficiency null."""
    body = get(client, aggregate="namespace", accumulate="true")
    assert body["code"] == 200 and len(body["data"]) == 1
    web, batch = body["data"][0]["web"], body["data"][0]["batch"]
    assert web["properties"] == {"namespace": "web"}
    assert web["window"] == {"start": "2026-11-02T00:00:00Z", "end": "2026-11-02T02:00:00Z"}
    assert web["minutes"] == 120
    assert web["cpuCoreHours"] == 8 and web["cpuCores"] == 4
    assert web["cpuCoreRequestAverage"] == 3 and web["cpuCoreUsageAverage"] == 3
    assert web["cpuEfficiency"] == 1 and web["cpuCost"] == 8
    assert web["ramByteHours"] == 12 * GIB and web["ramBytes"] == 6 * GIB
    assert web["ramByteRequestAverage"] == 6 * GIB and web["ramByteUsageAverage"] == 3 * GIB
    assert web["ramEfficiency"] == 0.5 and web["ramCost"] == pytest.approx(1.2)
    assert web["gpuHours"] == 0 and web["gpuEfficiency"] is None
    assert web["totalCost"] == pytest.approx(9.2)
    assert web["totalEfficiency"] == pytest.approx(8.6 / 9.2)
    assert batch["cpuCores"] == 0.5 and batch["cpuEfficiency"] is None
    assert batch["ramBytes"] == 0.5 * GIB and batch["ramEfficiency"] is None
    assert batch["gpuHours"] == 1 and batch["gpuCount"] == 0.5 and batch["gpuEfficiency"] == 0.5
    assert batch["totalCost"] == pytest.approx(4.1) and batch["totalEfficiency"] is None


def test_step_one_hour_versus_accumulate(client):
    """step=1h: web costs $4.60 in each hour ($4 CPU + $0.60 RAM), batch only in H1.
    The sum of the steps equals the accumulated total ($9.20)."""
    body = get(client, aggregate="namespace", step="1h")
    h1, h2 = body["data"]
    assert set(h1) == {"web", "batch"} and set(h2) == {"web"}
    assert h1["web"]["totalCost"] == pytest.approx(4.6) == h2["web"]["totalCost"]
    assert h1["web"]["cpuCores"] == 4 and h1["web"]["minutes"] == 60
    assert h2["web"]["start"] == "2026-11-02T01:00:00Z"
    assert get(client, aggregate="namespace", step="1h", accumulate="true")["data"][0][
        "web"]["totalCost"] == pytest.approx(9.2)


def test_by_label_puts_pods_without_it_in_unallocated(client):
    """label:app → shop (A, B: $9.20) and __unallocated__ (C: $4.10)."""
    data = get(client, aggregate="label:app", accumulate="true")["data"][0]
    assert set(data) == {"shop", "__unallocated__"}
    assert data["shop"]["properties"] == {"labels": {"app": "shop"}}
    assert data["__unallocated__"]["properties"] == {}
    assert data["__unallocated__"]["totalCost"] == pytest.approx(4.1)


def test_by_controller_kind_and_controller(client):
    """Two keys join with '/': Deployment/frontend ($9.20) and Job/etl ($4.10)."""
    data = get(client, aggregate="controllerKind,controller", accumulate="true")["data"][0]
    assert set(data) == {"Deployment/frontend", "Job/etl"}
    assert data["Job/etl"]["properties"] == {"controllerKind": "Job", "controller": "etl"}


def test_default_aggregate_is_each_container(client):
    data = get(client, accumulate="true")["data"][0]
    assert set(data) == {"c1/n1/web/fe-1/app", "c1/n1/web/fe-2/app", "c1/n2/batch/etl-1/worker"}


def test_include_idle_adds_the_idle_of_every_node(client):
    """Idle CPU 4 + 3 + 4 + 4 = $15, RAM 1.0 + 0.7 + 1.0 + 0.8 = $3.50, GPU $3 (n2, H2):
    __idle__ costs $21.50; per step H1: 4 + 3 CPU, 1.7 RAM → $8.70."""
    idle = get(client, aggregate="namespace", accumulate="true", includeIdle="true")[
        "data"][0]["__idle__"]
    assert idle["cpuCost"] == 15 and idle["ramCost"] == pytest.approx(3.5)
    assert idle["gpuCost"] == 3 and idle["totalCost"] == pytest.approx(21.5)
    assert idle["cpuEfficiency"] is None
    h1 = get(client, aggregate="namespace", step="1h", includeIdle="true")["data"][0]
    assert h1["__idle__"]["totalCost"] == pytest.approx(8.7)


def test_include_idle_with_a_filter_keeps_only_the_nodes_in_scope(client):
    """namespace:"web" runs on n1 only: idle CPU 4 + 4 = $8, RAM $2, GPU 0 → $10."""
    data = get(client, aggregate="namespace", accumulate="true", includeIdle="true",
               filter='namespace:"web"')["data"][0]
    assert set(data) == {"web", "__idle__"}
    assert data["__idle__"]["totalCost"] == pytest.approx(10.0)


def test_share_idle_spreads_idle_by_cost_per_resource(client):
    """CPU idle $15 by CPU cost web 8 : batch 1 → web +13.33, batch +1.67;
    RAM idle $3.50 by RAM cost 1.2 : 0.1 → web +3.2308, batch +0.2692;
    GPU idle $3 all to batch (the only GPU cost). Nothing is left for __idle__ and the
    totals still add up to 9.2 + 4.1 + 21.5 = $34.80."""
    data = get(client, aggregate="namespace", accumulate="true", includeIdle="true",
               shareIdle="true")["data"][0]
    assert set(data) == {"web", "batch"}
    web, batch = data["web"], data["batch"]
    assert web["cpuCost"] == pytest.approx(8 + 15 * 8 / 9)
    assert web["ramCost"] == pytest.approx(1.2 + 3.5 * 1.2 / 1.3)
    assert batch["cpuCost"] == pytest.approx(1 + 15 / 9)
    assert batch["gpuCost"] == pytest.approx(6.0)
    assert web["totalCost"] + batch["totalCost"] == pytest.approx(34.8)
    assert web["totalEfficiency"] == pytest.approx(8.6 / 9.2)  # own costs, before sharing


@pytest.mark.parametrize(("flt", "expected"), [
    ('namespace!:"web"', {"batch"}),
    ('pod<~:"fe-"', {"web"}),
    ('container~>:"ker"', {"batch"}),
    ('label[app]:"shop"|namespace:"batch"', {"web", "batch"}),
    ('controllerKind~:"ploy"+pod!:"fe-1"', {"web"}),
    ('node:"n3"', set()),
])
def test_filter_operators(client, flt, expected):
    data = get(client, aggregate="namespace", accumulate="true", filter=flt)["data"][0]
    assert set(data) == expected


def test_filter_narrows_the_sums(client):
    """controllerKind~:"ploy" + pod!:"fe-1" keeps B only: CPU 2 core-hours a hour → $4."""
    data = get(client, aggregate="namespace", accumulate="true",
               filter='controllerKind~:"ploy"+pod!:"fe-1"')["data"][0]
    assert data["web"]["cpuCost"] == 4 and data["web"]["cpuCoreRequestAverage"] == 1


def test_csv_format(client):
    response = client.get("/api/v1/allocation", query_string={
        "window": WINDOW, "aggregate": "namespace,label:app", "step": "1h", "format": "csv"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["start"], r["name"]) for r in rows] == [
        ("2026-11-02T00:00:00Z", "batch/__unallocated__"), ("2026-11-02T00:00:00Z", "web/shop"),
        ("2026-11-02T01:00:00Z", "web/shop")]
    assert rows[1]["label:app"] == "shop" and float(rows[1]["totalCost"]) == pytest.approx(4.6)
    assert rows[0]["cpuEfficiency"] == ""  # null


def test_today_reports_only_the_steps_until_now(client):
    """window=today at 02:30 with step=1h: 24 steps in the window, three reported, the
    last clipped to 02:30 (30 minutes, empty: no data after 02:00)."""
    data = get(client, window="today", aggregate="namespace", step="1h")["data"]
    assert len(data) == 3 and data[2] == {} and data[0]["web"]["cpuCores"] == 4


def test_offset_moves_the_window(client):
    """2h ending now (00:30–02:30) moved back 30m is exactly the data: $9.20 for web."""
    data = get(client, window="2h", offset="30m", aggregate="namespace")["data"][0]
    assert data["web"]["totalCost"] == pytest.approx(9.2)


def test_missing_store_is_an_empty_answer_not_an_error(tmp_path):
    app = create_app(ApiConfig(store=str(tmp_path / "none")), clock=lambda: NOW)
    body = get(app.test_client(), aggregate="namespace", accumulate="true")
    assert body == {"code": 200, "data": [{}]}


def test_open_hour_from_the_wal_is_included(tmp_path):
    """The second hour stays in the WAL (not sealed): it still counts."""
    root = build_store(tmp_path / "s")
    app = create_app(ApiConfig(store=str(root)), clock=lambda: NOW)
    data = get(app.test_client(), aggregate="namespace", step="1h")["data"]
    assert data[1]["web"]["totalCost"] == pytest.approx(4.6)


def test_window_longer_than_the_data_averages_over_the_data(client):
    """A 4-hour window over the 2 hours of data (22:00–02:00): web still has 8 charged
    core-hours and $8, but averages are over the 2 hours with data, not 4: 4 cores;
    minutes 120, not 240 (OpenCost averages over running time)."""
    body = get(client, window=f"{T0 - 2 * H},{T0 + 2 * H}", aggregate="namespace",
               accumulate="true")
    web = body["data"][0]["web"]
    assert web["cpuCoreHours"] == 8 and web["cpuCost"] == 8
    assert web["minutes"] == 120 and web["cpuCores"] == 4
    assert web["cpuCoreRequestAverage"] == 3 and web["ramBytes"] == 6 * GIB
