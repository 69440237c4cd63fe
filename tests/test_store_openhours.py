"""A long-lived reader (the API) follows the open hour by replaying only what was appended."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from storefakes import ts

from aggregator.store import Store, StoreReader
from aggregator.store.synthetic import SimCluster

T = ts("2024-05-10T10:00")


def _append(store: Store, sim: SimCluster, k: int) -> None:
    start = T + 60 * k
    store.append(start, start + 60, *sim.blocks(start, start + 60))


def _answer(reader: StoreReader, hours: int = 2) -> dict[str, np.ndarray]:
    res = reader.query(T, T + hours * 3600, 600, ["namespace"])
    return {"keys": res.keys["namespace"], "coverage": res.coverage, **res.values}


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_a_kept_reader_sees_each_new_interval_as_a_fresh_one_does(tmp_path: Path) -> None:
    sim = SimCluster(300, seed=7, namespaces=6)
    kept = StoreReader(tmp_path)
    with Store(tmp_path) as store:
        for k in range(75):  # through the hour's seal and into the next one
            _append(store, sim, k)
            if k % 7 == 0 or k in (59, 60, 61):
                _same(_answer(kept), _answer(StoreReader(tmp_path)))
                (hour,) = kept.heads().values()
                assert len(hour) == k + 1 - (60 if k >= 60 else 0)


def test_a_snapshot_is_not_changed_by_later_appends(tmp_path: Path) -> None:
    sim = SimCluster(50, seed=8)
    reader = StoreReader(tmp_path)
    with Store(tmp_path) as store:
        for k in range(3):
            _append(store, sim, k)
        (before,) = reader.heads().values()
        cpu = before.table("containers").measures["cpu_cost"]
        for k in range(3, 6):
            _append(store, sim, k)
        (after,) = reader.heads().values()
    assert len(before) == 3 and len(after) == 6
    np.testing.assert_array_equal(before.table("containers").measures["cpu_cost"], cpu)


@pytest.mark.parametrize("other", [4, 30])  # shorter than the offset reached, and longer
def test_another_file_at_the_same_path_is_replayed_from_its_start(tmp_path: Path,
                                                                  other: int) -> None:
    """A WAL the reader did not follow (restored, rewritten) is never read from an old offset."""
    long_run, short_run = tmp_path / "long", tmp_path / "short"
    for root, intervals, seed in ((long_run, 20, 1), (short_run, other, 2)):
        with Store(root) as store:
            sim = SimCluster(40, seed=seed)
            for k in range(intervals):
                _append(store, sim, k)
    reader = StoreReader(long_run)
    assert len(next(iter(reader.heads().values()))) == 20
    wal = next((long_run / "shard-0-of-1" / "wal").glob("*.wal"))
    wal.unlink()
    shutil.copy(next((short_run / "shard-0-of-1" / "wal").glob("*.wal")), wal)
    _same(_answer(reader), _answer(StoreReader(long_run)))
    assert len(next(iter(reader.heads().values()))) == other
