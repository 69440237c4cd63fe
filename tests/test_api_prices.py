"""``GET``/``PUT /api/v1/prices`` and the prices file the aggregator reloads.

Prices are round so every expectation is mental arithmetic.
"""

from __future__ import annotations

import logging
import os

import pytest
import yaml

from aggregator.pricebook import NodeOverride, load_price_book
from aggregator.pricefile import PriceBookSource, write_prices
from aggregator.prices import UnitPrices
from aggregator.store import StoreReader
from api import ApiConfig, create_app

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def store(tmp_path):
    (tmp_path / "store").mkdir()
    return tmp_path / "store"


@pytest.fixture
def client(store):
    return create_app(ApiConfig(store=str(store), token=TOKEN)).test_client()


def put(client, body, status=200, **kw):
    response = client.put("/api/v1/prices", json=body, headers=AUTH, **kw)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def test_get_gives_the_defaults_before_any_change(client):
    data = client.get("/api/v1/prices", headers=AUTH).get_json()["data"]
    assert data["units"]["cpu"] == UnitPrices().cpu and data["overrides"] == {}
    assert data["units"]["region_fallback"] is True and "table" not in data["units"]


def test_put_is_refused_without_a_configured_token(store):
    client = create_app(ApiConfig(store=str(store))).test_client()
    response = client.put("/api/v1/prices", json={"units": {"cpu": 1}})
    assert response.status_code == 403
    assert response.get_json() == {"error": "set a token to allow price changes"}
    assert not (store / "prices.yaml").exists()


def test_put_needs_the_token(client, store):
    assert client.put("/api/v1/prices", json={"units": {"cpu": 1}}).status_code == 401
    assert not (store / "prices.yaml").exists()


def test_put_merges_persists_and_get_reads_back(client, store):
    """cpu → 1.5 and n1 at $2/h; then ram → 0.2 keeps both; null removes n1."""
    data = put(client, {"units": {"cpu": 1.5}, "overrides": {"n1": {"hourly": 2},
                                                             "n2.example.com": {"gpu": 3}}})
    assert data["data"]["units"]["cpu"] == 1.5
    assert data["data"]["overrides"] == {"n1": {"hourly": 2.0}, "n2.example.com": {"gpu": 3.0}}
    book = load_price_book(store / "prices.yaml", environ={})
    assert book.units.cpu == 1.5 and book.overrides["n1"] == NodeOverride(hourly=2.0)
    put(client, {"units": {"ram": 0.2}})
    got = client.get("/api/v1/prices", headers=AUTH).get_json()["data"]
    assert got["units"]["cpu"] == 1.5 and got["units"]["ram"] == 0.2
    assert set(got["overrides"]) == {"n1", "n2.example.com"}
    put(client, {"overrides": {"n1": None}})
    assert set(load_price_book(store / "prices.yaml", environ={}).overrides) == {
        "n2.example.com"}
    assert sorted(os.listdir(store)) == ["prices.yaml", "prices.yaml.lock"]  # no temp left


def test_prices_file_option_and_other_sections_kept(tmp_path, store):
    file = tmp_path / "conf.yaml"
    file.write_text("api:\n  port: 9001\nprices:\n  gpu: 2.5\n")
    client = create_app(ApiConfig(store=str(store), token=TOKEN,
                                  prices_file=str(file))).test_client()
    put(client, {"units": {"cpu": 1}})
    doc = yaml.safe_load(file.read_text())
    assert doc["api"] == {"port": 9001}
    assert doc["prices"]["gpu"] == 2.5 and doc["prices"]["cpu"] == 1
    assert not (store / "prices.yaml").exists()


@pytest.mark.parametrize(("body", "parameter"), [
    ([], "body"),
    ({"unit": {}}, "unit"),
    ({"units": []}, "units"),
    ({"units": {"cpu": -1}}, "units.cpu"),
    ({"units": {"cpu": "1"}}, "units.cpu"),
    ({"units": {"cpu": True}}, "units.cpu"),
    ({"units": {"table": "/etc/passwd"}}, "units.table"),
    ({"units": {"region_fallback": False}}, "units.region_fallback"),
    ({"overrides": []}, "overrides"),
    ({"overrides": {"../etc": {"hourly": 1}}}, "overrides"),
    ({"overrides": {"N1": {"hourly": 1}}}, "overrides"),
    ({"overrides": {"n1": 5}}, "overrides.n1"),
    ({"overrides": {"n1": {}}}, "overrides.n1"),
    ({"overrides": {"n1": {"hourly": 1, "cpu": 1}}}, "overrides.n1"),
    ({"overrides": {"n1": {"disk": 1}}}, "overrides.n1.disk"),
    ({"overrides": {"n1": {"hourly": -2}}}, "overrides.n1.hourly"),
])
def test_bad_bodies_are_400_naming_the_field(client, store, body, parameter):
    assert put(client, body, 400)["parameter"] == parameter
    assert not (store / "prices.yaml").exists()


def test_non_finite_numbers_and_non_json_are_refused(client, store):
    for raw in ('{"units": {"cpu": Infinity}}', '{"units": {"cpu": NaN}}', "not json"):
        response = client.put("/api/v1/prices", data=raw, headers=AUTH,
                              content_type="application/json")
        assert response.status_code == 400, raw
    assert not (store / "prices.yaml").exists()


def test_remote_store_without_prices_file_is_409(store):
    app = create_app(ApiConfig(store="s3://bucket/kubetally", token=TOKEN),
                     reader=StoreReader(store))
    assert put(app.test_client(), {"units": {"cpu": 1}}, 409)["error"].startswith("no prices")


def test_source_reloads_on_change_and_keeps_the_last_good_book(tmp_path, caplog):
    file = tmp_path / "prices.yaml"
    fallback = tmp_path / "main.yaml"
    fallback.write_text("prices:\n  cpu: 0.5\n")
    source = PriceBookSource(file, fallback=str(fallback), environ={})
    assert source().units.cpu == 0.5  # no prices file yet: the config file's
    write_prices(file, {"cpu": 2.0}, {})
    assert source().units.cpu == 2.0
    file.write_text("prices:\n  cpu: [broken\n")
    with caplog.at_level(logging.WARNING, logger="aggregator.pricefile"):
        assert source().units.cpu == 2.0
    assert "keeping the previous prices" in caplog.text
