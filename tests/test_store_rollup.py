"""Rollups checked by hand, and queries that pick tiers.

The hand case: containers A and B, scraped every 20 minutes (step 1200) from
2024-01-31 22:00 to 2024-02-01 01:00 (three hours, k = 0…8), then one more interval at
01:00 so that January 31 and January are over::

    A: every interval, cpu_cost 0.25, ram_usage_max_bytes 1000 + 10k, minutes 20
    B: hours 22:00 and 00:00 only (k = 0,1,2,6,7,8): cpu_cost 0.5 (k + 1),
       ram_usage_max_bytes 2000 − k
    01:00 interval: A only, cpu_cost 0.25, ram_usage_max_bytes 1090
    node n1: every interval, cpu_cost 0.125

Hourly 2024-01-31 (rows 22:00, 23:00), sum for cpu_cost, max for ram_usage_max_bytes:
    A cpu_cost 3 × 0.25 = 0.75, 0.75        A max 1020, 1050
    B cpu_cost 0.5 + 1.0 + 1.5 = 3.0, NaN    B max 2000, NaN (absent that hour)
    n1 cpu_cost 0.375, 0.375; seconds 3600, 3600
Daily 2024-01 (row Jan 31): A 1.5, max 1050; B 3.0, max 2000; n1 0.75; seconds 7200.
Raw 2024-02-01T00 (sealed, not rolled: Feb 1 is not over): A 0.75, B 3.5+4+4.5 = 12.
A day-step query over Jan 31 – Feb 1 reads daily + raw + the open hour's WAL:
    A [1.5, 0.75 + 0.25 = 1.0], B [3.0, 12.0], max A [1050, 1090], B [2000, 1994],
    coverage [120, 60 + 20 = 80] minutes.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from storefakes import by_key, containers, nodes, ts

from aggregator.store import Block, Store, StoreReader
from aggregator.store.layout import DAY, HOUR

STEP = 1200
T22 = ts("2024-01-31T22:00")
nan = np.nan


def _interval(k: int) -> tuple[Block, Block]:
    names = ["A", "B"] if k in (0, 1, 2, 6, 7, 8) else ["A"]
    cost = {"A": 0.25, "B": 0.5 * (k + 1)}
    peak = {"A": 1000.0 + 10 * k, "B": 2000.0 - k}
    return (containers(*names, cpu_cost=[cost[n] for n in names],
                       ram_usage_max_bytes=[peak[n] for n in names],
                       minutes=[20.0] * len(names)),
            nodes("n1", cpu_cost=[0.125], minutes=[20.0]))


@pytest.fixture(scope="module")
def hand(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Store]:
    root = str(tmp_path_factory.mktemp("hand"))
    store = Store(root, step=STEP)
    for k in range(10):
        store.append(T22 + STEP * k, T22 + STEP * (k + 1), *_interval(k))
    report = store.maintain(T22 + 3 * HOUR + 1200)
    assert report.rolled == [("hourly", "2024-01-31"), ("daily", "2024-01")]
    assert report.deleted == []
    return root, store


def _table(root: str, tier: str, period: str, table: str) -> zarr.Group:
    group = zarr.open_group(f"{root}/shard-0-of-1/{tier}/{period}", mode="r")
    return group[table]


def _column(group: zarr.Group, name: str, measure: str) -> np.ndarray:
    """The (time,) values of the series whose ``container`` (or ``node``) is ``name``."""
    col = "container" if "container" in group else "node"
    names = np.asarray(group[col][:]).astype(object)
    return np.asarray(group[measure][:])[:, list(names).index(name)]


def test_hourly_rollup_by_hand(hand: tuple[str, Store]) -> None:
    root, _ = hand
    g = _table(root, "hourly", "2024-01-31", "containers")
    assert list(g["time"][:]) == [T22, T22 + HOUR]
    assert list(g["seconds"][:]) == [3600, 3600]
    np.testing.assert_array_equal(_column(g, "A", "cpu_cost"), [0.75, 0.75])
    np.testing.assert_array_equal(_column(g, "B", "cpu_cost"), [3.0, nan])
    np.testing.assert_array_equal(_column(g, "A", "ram_usage_max_bytes"), [1020, 1050])
    np.testing.assert_array_equal(_column(g, "B", "ram_usage_max_bytes"), [2000, nan])
    np.testing.assert_array_equal(_column(g, "B", "minutes"), [60, nan])
    assert np.isnan(_column(g, "A", "gpu_cost")).all()  # never reported: NaN, not 0
    n = _table(root, "hourly", "2024-01-31", "nodes")
    np.testing.assert_array_equal(_column(n, "n1", "cpu_cost"), [0.375, 0.375])


def test_daily_rollup_by_hand(hand: tuple[str, Store]) -> None:
    root, _ = hand
    g = _table(root, "daily", "2024-01", "containers")
    assert list(g["time"][:]) == [ts("2024-01-31")]
    assert list(g["seconds"][:]) == [7200]
    np.testing.assert_array_equal(_column(g, "A", "cpu_cost"), [1.5])
    np.testing.assert_array_equal(_column(g, "B", "cpu_cost"), [3.0])
    np.testing.assert_array_equal(_column(g, "A", "ram_usage_max_bytes"), [1050])
    np.testing.assert_array_equal(_column(g, "B", "ram_usage_max_bytes"), [2000])
    np.testing.assert_array_equal(_column(_table(root, "daily", "2024-01", "nodes"), "n1",
                                          "cpu_cost"), [0.75])


def test_day_query_reads_daily_raw_and_wal(hand: tuple[str, Store]) -> None:
    root, _ = hand
    res = StoreReader(root).query(ts("2024-01-31"), ts("2024-02-02"), DAY, ["container"])
    assert [(t, p) for _, t, p in res.sources] == [
        ("daily", "2024-01"), ("raw", "2024-02-01T00"), ("wal", "2024-02-01T01")]
    assert list(res.edges) == [ts("2024-01-31"), ts("2024-02-01"), ts("2024-02-02")]
    cost = by_key(res, "container", "cpu_cost")
    np.testing.assert_array_equal(cost["A"], [1.5, 1.0])
    np.testing.assert_array_equal(cost["B"], [3.0, 12.0])
    peak = by_key(res, "container", "ram_usage_max_bytes")
    np.testing.assert_array_equal(peak["A"], [1050, 1090])
    np.testing.assert_array_equal(peak["B"], [2000, 1994])
    np.testing.assert_array_equal(res.coverage, [120, 80])
    total = StoreReader(root).query(ts("2024-01-31"), ts("2024-02-02"), DAY, [], table="nodes")
    assert total.keys == {}
    np.testing.assert_array_equal(total.values["cpu_cost"], [[0.75], [0.5]])


def test_hour_query_uses_hourly_not_daily(hand: tuple[str, Store]) -> None:
    root, _ = hand
    res = StoreReader(root).query(T22, T22 + 4 * HOUR, HOUR, ["container"],
                                  measures=["cpu_cost"])
    assert [t for _, t, _ in res.sources] == ["hourly", "raw", "wal"]
    cost = by_key(res, "container", "cpu_cost")
    np.testing.assert_array_equal(cost["A"], [0.75, 0.75, 0.75, 0.25])
    np.testing.assert_array_equal(cost["B"], [3.0, nan, 12.0, nan])
    assert list(res.values) == ["cpu_cost"]


def test_sub_hour_step_reads_raw(hand: tuple[str, Store]) -> None:
    root, _ = hand
    res = StoreReader(root).query(T22, T22 + HOUR, STEP, ["container"])
    assert {t for _, t, _ in res.sources} == {"raw"}
    np.testing.assert_array_equal(by_key(res, "container", "cpu_cost")["B"], [0.5, 1.0, 1.5])
    np.testing.assert_array_equal(res.coverage, [20, 20, 20])


def test_maintain_is_idempotent(hand: tuple[str, Store]) -> None:
    root, store = hand
    before = StoreReader(root).partitions()
    report = store.maintain(T22 + 3 * HOUR + 1200)
    assert (report.rolled, report.deleted, report.sealed) == ([], [], [])
    assert StoreReader(root).partitions() == before
