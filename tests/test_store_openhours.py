"""A long-lived reader (the API) follows the open hour by replaying only what was appended."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from storefakes import ts

from aggregator.store import Store, StoreReader
from aggregator.store.errors import CorruptStoreError
from aggregator.store.head import Head
from aggregator.store.model import Block
from aggregator.store.openhours import OpenHours
from aggregator.store.synthetic import SimCluster
from aggregator.store.wal import WalRecord, WalScan

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


class _FailOnce(Head):
    """A head whose fifth apply fails once, as a transient error (EIO, no memory) would."""

    calls = 0

    def apply(self, record: WalRecord) -> None:
        _FailOnce.calls += 1
        if _FailOnce.calls == 5:
            raise OSError(5, "Input/output error")
        super().apply(record)


def _growing(store: Store, sim: SimCluster, k: int) -> None:
    """Interval ``k`` of the first 5 + 3k containers: new series in every record."""
    start = T + 60 * k
    cont, nodes = sim.blocks(start, start + 60)
    n = 5 + 3 * k
    store.append(start, start + 60,
                 Block({c: v[:n] for c, v in cont.identity.items()},
                       {m: v[:n] for m, v in cont.measures.items()}), nodes)


def test_a_failed_catch_up_leaves_no_half_applied_hour(tmp_path: Path) -> None:
    """Re-applying a record that defines series would break every later read of the hour."""
    sim = SimCluster(40, seed=9)
    hours = OpenHours(head_type=_FailOnce)
    folder = tmp_path / "shard-0-of-1" / "wal"
    with Store(tmp_path) as store:
        for k in range(3):
            _growing(store, sim, k)
        assert [len(h) for h in hours.read(folder)] == [3]
        for k in range(3, 8):
            _growing(store, sim, k)
        with pytest.raises(OSError):
            hours.read(folder)
        (hour,) = hours.read(folder)
    (fresh,) = OpenHours().read(folder)
    assert len(hour) == len(fresh) == 8
    for name in ("containers", "nodes"):
        a, b = hour.table(name), fresh.table(name)
        assert a.identity.keys() == b.identity.keys()
        for m in a.measures:
            np.testing.assert_array_equal(a.measures[m], b.measures[m])


def test_a_record_that_fails_to_apply_changes_nothing(tmp_path: Path) -> None:
    """Head.apply is all or nothing: checked and compressed before the head changes."""
    sim = SimCluster(40, seed=10)
    with Store(tmp_path) as store:
        for k in range(2):
            _growing(store, sim, k)
    first, second = list(WalScan(next((tmp_path / "shard-0-of-1" / "wal").glob("*.wal"))))
    head = Head("2024-05-10T10")
    head.apply(first)
    before = head.series["containers"].count
    bad_ids = second.tables["containers"].ids.copy()
    bad_ids[0] = 10_000
    bad = replace(second, tables={**second.tables, "containers": replace(
        second.tables["containers"], ids=bad_ids)})
    with pytest.raises(CorruptStoreError):
        head.apply(bad)
    assert head.series["containers"].count == before and len(head) == 1
    head.apply(second)  # had the failed apply defined its new series, this would raise
    assert len(head) == 2 and head.series["containers"].count == 8
