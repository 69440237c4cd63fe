"""Queries against a brute-force sum of the data appended, and retention.

The history store holds a small simulated cluster (30 containers, 5 namespaces, scraped
every 20 minutes) on 2024-01-31 22:00–24:00, 2024-02-01 22:00–24:00 and 2024-02-02
00:00–02:40, maintained as it goes, so January is a daily partition, February 1 an
hourly one, 2024-02-02 00:00 and 01:00 sealed raw hours, and 02:00–02:20 the open hour in
the WAL. (Hours without data are simply absent: coverage says so.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from storefakes import by_key, containers, nodes, ts

from aggregator.measures import CONTAINER_MEASURES, ROLLUP
from aggregator.store import QueryError, Retention, Store, StoreReader
from aggregator.store.layout import DAY, HOUR, USAGE_MEASURES, quantise
from aggregator.store.synthetic import SimCluster

STEP = 1200
T0 = ts("2024-01-31")
TEND = ts("2024-02-02T02:40")  # exclusive: last interval starts 02:20
STARTS = [*range(ts("2024-01-31T22:00"), ts("2024-02-01"), STEP),
          *range(ts("2024-02-01T22:00"), TEND, STEP)]
SIM = SimCluster(30, nodes=3, namespaces=5, seed=3)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("history")
    store = Store(root, step=STEP)
    for start in STARTS:
        store.append(start, start + STEP, *SIM.blocks(start, start + STEP))
        if (start + STEP) % HOUR == 0:
            store.maintain(start + STEP)
    store.close()
    return root


def brute(start: int, end: int, step: int, measure: str) -> dict[str, np.ndarray]:
    """Per namespace, per step: the sum or max of what was appended (usage rounded)."""
    out: dict[str, np.ndarray] = {}
    how = ROLLUP[measure]
    for t in (t for t in STARTS if start <= t < end):
        block = SIM.blocks(t, t + STEP)[0]
        values = block.measures[measure]
        if measure in USAGE_MEASURES:
            values = quantise(values)
        for ns in np.unique(block.identity["namespace"]):
            acc = out.setdefault(str(ns), np.full((end - start) // step, np.nan))
            v = values[block.identity["namespace"] == ns]
            k = (t - start) // step
            cell = v.max() if how == "max" else v.sum()
            acc[k] = cell if np.isnan(acc[k]) else (max(acc[k], cell) if how == "max"
                                                    else acc[k] + cell)
    return out


def _assert_matches(res: object, start: int, end: int, step: int) -> None:
    for m in CONTAINER_MEASURES:
        got, want = by_key(res, "namespace", m), brute(start, end, step, m)
        assert sorted(got) == sorted(want)
        for ns in want:
            # usage is rounded to 13 bits at each tier (≤ 6.1e-5 each); the rest is exact
            rtol = 3e-4 if m in USAGE_MEASURES else 1e-12
            np.testing.assert_allclose(got[ns], want[ns], rtol=rtol, err_msg=f"{m} {ns}")


def test_query_spanning_all_tiers_matches_raw_data(history: Path) -> None:
    start, end = T0, ts("2024-02-03")
    res = StoreReader(history).query(start, end, DAY, ["namespace"])
    assert [(t, p) for _, t, p in res.sources] == [
        ("daily", "2024-01"), ("hourly", "2024-02-01"), ("raw", "2024-02-02T00"),
        ("raw", "2024-02-02T01"), ("wal", "2024-02-02T02")]
    _assert_matches(res, start, end, DAY)
    np.testing.assert_array_equal(res.coverage, [120, 120, 160])
    cost = by_key(res, "namespace", "cpu_cost")
    total = sum(np.nansum(v) for v in cost.values())
    want = sum(SIM.blocks(t, t + STEP)[0].measures["cpu_cost"].sum() for t in STARTS)
    assert abs(total - want) < 1e-9  # to far below the cent


def test_finer_steps_agree(history: Path) -> None:
    reader = StoreReader(history)
    hourly = reader.query(T0, ts("2024-02-03"), HOUR, ["namespace"], measures=["cpu_cost"])
    assert "daily" not in {t for _, t, _ in hourly.sources}
    _assert_matches_one(hourly, T0, ts("2024-02-03"), HOUR, "cpu_cost")
    raw = reader.query(ts("2024-02-02"), ts("2024-02-03"), STEP, ["namespace"],
                       measures=["cpu_cost", "ram_usage_max_bytes"])
    assert {t for _, t, _ in raw.sources} == {"raw", "wal"}
    _assert_matches_one(raw, ts("2024-02-02"), ts("2024-02-03"), STEP, "ram_usage_max_bytes")


def _assert_matches_one(res: object, start: int, end: int, step: int, m: str) -> None:
    got, want = by_key(res, "namespace", m), brute(start, end, step, m)
    for ns in want:
        np.testing.assert_allclose(got[ns], want[ns], rtol=3e-4)


def test_group_by_two_columns_and_where(history: Path) -> None:
    start, end = ts("2024-02-01"), ts("2024-02-03")
    keep = {"ns-001", "ns-003"}
    seen: list[set[str]] = []

    def where(cols: object) -> np.ndarray:
        seen.append(set(cols))  # type: ignore[arg-type]
        return np.isin(cols["namespace"], list(keep))  # type: ignore[index]

    res = StoreReader(history).query(start, end, DAY, ["namespace", "label_team"],
                                     where=where, measures=["cpu_cost"])
    assert all({"namespace", "label_team", "pod"} <= s for s in seen)
    pairs = list(zip(res.keys["namespace"], res.keys["label_team"], strict=True))
    assert pairs == sorted(pairs) and {p[0] for p in pairs} == keep
    for i, (ns, team) in enumerate(pairs):
        want = np.zeros(2)
        for t in (t for t in STARTS if t >= start):
            block = SIM.blocks(t, t + STEP)[0]
            sel = (block.identity["namespace"] == ns) & (block.identity["label_team"] == team)
            want[(t - start) // DAY] += block.measures["cpu_cost"][sel].sum()
        np.testing.assert_allclose(res.values["cpu_cost"][:, i], want, rtol=1e-12)


def test_where_selecting_nothing_and_empty_window(history: Path) -> None:
    reader = StoreReader(history)
    res = reader.query(T0, T0 + DAY, DAY, ["namespace"],
                       where=lambda c: np.zeros(len(c["pod"]), dtype=bool))
    assert res.values["cpu_cost"].shape == (1, 0) and len(res.keys["namespace"]) == 0
    np.testing.assert_array_equal(res.coverage, [120])  # data was there, none matched
    before = reader.query(ts("2023-01-01"), ts("2023-01-02"), HOUR, ["namespace"])
    assert before.values["minutes"].shape == (24, 0) and not before.coverage.any()


def test_missing_label_groups_as_empty(tmp_path: Path) -> None:
    t = ts("2024-03-01")
    store = Store(tmp_path, step=HOUR)
    store.append(t, t + HOUR, containers("a", "b", labels={"label_team": ["red", ""]},
                                         cpu_cost=[1.0, 2.0]), nodes("n1"))
    store.append(t + HOUR, t + 2 * HOUR, containers("a", cpu_cost=[4.0]), nodes("n1"))
    store.append(t + 2 * HOUR, t + 3 * HOUR, containers("a", cpu_cost=[8.0]), nodes("n1"))
    got: list[np.ndarray] = []
    res = StoreReader(tmp_path).query(t, t + 3 * HOUR, HOUR, ["label_team"],
                                      where=lambda c: got.append(c["label_team"]) or
                                      np.ones(len(c["pod"]), dtype=bool))
    assert [p for _, _, p in res.sources] == ["2024-03-01T00", "2024-03-01T01",
                                               "2024-03-01T02"]
    assert list(got[1]) == [""]  # hour 01 has no label column at all
    cost = by_key(res, "label_team", "cpu_cost")
    np.testing.assert_array_equal(cost[""], [2.0, 4.0, 8.0])
    np.testing.assert_array_equal(cost["red"], [1.0, np.nan, np.nan])


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"step": 0}, "step"), ({"step": 7}, "step"), ({"end": T0}, "end"),
    ({"group_by": ["nope"]}, "group_by"), ({"group_by": ["../x"]}, "group_by"),
    ({"group_by": "namespace"}, "group_by"), ({"group_by": ["pod", "pod"]}, "group_by"),
    ({"measures": ["cpu_cost", "bogus"]}, "measures"), ({"table": "pods"}, "table"),
    ({"group_by": ["label_team"], "table": "nodes"}, "group_by"),
    ({"start": 1.5}, "start"), ({"where": lambda c: np.ones(3)}, "where"),
])
def test_bad_query_parameters_name_the_parameter(history: Path, kwargs: dict,
                                                 param: str) -> None:
    args = {"start": T0, "end": T0 + DAY, "step": HOUR, "group_by": ["namespace"]} | kwargs
    with pytest.raises(QueryError) as info:
        StoreReader(history).query(**args)
    assert info.value.param == param


def test_retention_deletes_only_expired_rolled_partitions(history: Path,
                                                          tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(history, root)
    reader = StoreReader(root)
    window = (T0, ts("2024-02-03"), DAY, ["namespace"])
    before = reader.query(*window)
    raw_before = {p.period for p in reader.partitions("raw")}
    store = Store(root, step=STEP, retention=Retention(raw=HOUR, hourly=DAY, daily=400 * DAY))
    now = ts("2024-02-02T02:30")
    report = store.maintain(now)
    deleted = set(report.deleted)
    # raw: every hour of Jan 31 and Feb 1 ended before now − 1 h and is rolled up;
    # Feb 2 00:00 ended before it too, but Feb 2 is not rolled up yet: kept.
    want_raw = {("raw", p) for p in raw_before if p < "2024-02-02"}
    assert {d for d in deleted if d[0] == "raw"} == want_raw
    assert {d for d in deleted if d[0] != "raw"} == {("hourly", "2024-01-31")}
    assert {p.period for p in reader.partitions("raw")} == {"2024-02-02T00", "2024-02-02T01"}
    assert [p.period for p in reader.partitions("hourly")] == ["2024-02-01"]
    assert [p.period for p in reader.partitions("daily")] == ["2024-01"]
    after = reader.query(*window)
    for m in before.values:  # nothing lost: coarser tiers answer for what was deleted
        np.testing.assert_array_equal(after.values[m], before.values[m])
    assert store.maintain(now).deleted == []
