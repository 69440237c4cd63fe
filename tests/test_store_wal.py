"""Durability of the writer: WAL replay, torn tails, idempotence, bad input, full disk."""

from __future__ import annotations

import os
import resource
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from storefakes import containers, nodes, ts

from aggregator.store import (
    LateIntervalError,
    Store,
    StoreError,
    StoreInputError,
    StoreIOError,
    StoreReader,
)
from aggregator.store.layout import DAY, HOUR
from aggregator.store.wal import (
    MAGIC,
    WalRecord,
    WalScan,
    WalTable,
    decode_record,
    encode_record,
)

T = ts("2024-05-10T10:00")
STEP = 600


def _append(store: Store, k: int, cost: float = 1.0) -> None:
    start = T + STEP * k
    store.append(start, start + STEP, containers("a", "b", cpu_cost=[cost, 2 * cost],
                                                 minutes=[10.0, 10.0]),
                 nodes("n1", cpu_cost=[0.5]))


def _costs(root: Path, hours: int = 2) -> np.ndarray:
    """cpu_cost per interval, all containers summed (NaN where none)."""
    res = StoreReader(root).query(T, T + hours * HOUR, STEP, [], measures=["cpu_cost"])
    return res.values["cpu_cost"][:, 0] if res.values["cpu_cost"].shape[1] else \
        np.full(len(res.edges) - 1, np.nan)


def _wal(root: Path) -> Path:
    (path,) = (root / "shard-0-of-1" / "wal").glob("*.wal")
    return path


def test_record_round_trip() -> None:
    record = WalRecord(5, 65, {"containers": WalTable(
        3, {"pod": np.array(["p", "é"], dtype=object), "label_x": np.array(["", "y"],
                                                                            dtype=object)},
        np.array([3, 4, 0]), {"cpu_cost": np.array([1.5, np.nan, 2.0])})})
    back = decode_record(encode_record(record))
    assert (back.start, back.end) == (5, 65)
    t = back.tables["containers"]
    assert t.first_new == 3 and list(t.new_series["pod"]) == ["p", "é"]
    np.testing.assert_array_equal(t.ids, [3, 4, 0])
    np.testing.assert_array_equal(t.measures["cpu_cost"], [1.5, np.nan, 2.0])


def test_replay_after_close_keeps_the_open_hour(tmp_path: Path) -> None:
    store = Store(tmp_path, step=STEP)
    for k in range(3):
        _append(store, k)
    store.close()
    with pytest.raises(StoreError):
        _append(store, 3)  # closed: refuses rather than overwriting the WAL
    again = Store(tmp_path, step=STEP)
    assert again.last_start() == T + 2 * STEP
    for k in range(3, 7):  # crosses into 11:00: seals the replayed head
        _append(again, k)
    np.testing.assert_array_equal(_costs(tmp_path)[:7], [3.0] * 7)
    assert [p.period for p in StoreReader(tmp_path).partitions("raw")] == ["2024-05-10T10"]


def test_torn_tail_is_cut_on_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path, step=STEP)
    for k in range(3):
        _append(store, k)
    store.close()
    wal = _wal(tmp_path)
    size = wal.stat().st_size
    with open(wal, "r+b") as f:  # the third record was being written when power went
        f.truncate(size - 7)
    # a reader sees the two complete intervals only, never a half one
    np.testing.assert_array_equal(_costs(tmp_path)[:3], [3.0, 3.0, np.nan])
    again = Store(tmp_path, step=STEP)
    assert again.last_start() == T + STEP
    assert wal.stat().st_size < size - 7  # cut back to the end of record two
    _append(again, 2, cost=4.0)  # the lost interval comes again, and is stored
    np.testing.assert_array_equal(_costs(tmp_path)[:3], [3.0, 3.0, 12.0])


def test_garbage_after_last_record_is_cut(tmp_path: Path) -> None:
    store = Store(tmp_path, step=STEP)
    _append(store, 0)
    store.close()
    with open(_wal(tmp_path), "ab") as f:
        f.write(b"\xff\x00\x00\x00junk")  # a frame header whose CRC cannot match
    again = Store(tmp_path, step=STEP)
    _append(again, 1)
    again.close()
    np.testing.assert_array_equal(_costs(tmp_path)[:2], [3.0, 3.0])


def test_wal_of_sealed_hour_is_deleted_and_leftovers_cleaned(tmp_path: Path) -> None:
    store = Store(tmp_path, step=STEP)
    for k in range(6):
        _append(store, k)
    saved = tmp_path / "saved.wal"
    shutil.copy(_wal(tmp_path), saved)
    _append(store, 6)  # seals 10:00 and deletes its WAL
    store.close()
    # crash between the seal's rename and the WAL's removal, with a half-written seal
    shutil.copy(saved, tmp_path / "shard-0-of-1" / "wal" / "2024-05-10T10.wal")
    leftover = tmp_path / "shard-0-of-1" / "raw" / ".tmp-2024-05-10T11-0123456789ab"
    (leftover / "containers").mkdir(parents=True)
    (leftover / "zarr.json").write_text("{}")
    before = _costs(tmp_path)  # readers prefer the sealed partition: no double count
    np.testing.assert_array_equal(before[:7], [3.0] * 7)
    again = Store(tmp_path, step=STEP)
    assert not (tmp_path / "shard-0-of-1" / "wal" / "2024-05-10T10.wal").exists()
    assert not leftover.exists()
    assert again.last_start() == T + 6 * STEP
    np.testing.assert_array_equal(_costs(tmp_path), before)


def test_append_is_idempotent(tmp_path: Path) -> None:
    store = Store(tmp_path, step=STEP)
    for k in (0, 1, 1, 0, 2):
        _append(store, k)
    for k in range(3, 8):  # seal 10:00
        _append(store, k)
    _append(store, 0, cost=100.0)  # already sealed: a no-op, not a late error
    _append(store, 7, cost=100.0)  # in the head: a no-op
    costs = _costs(tmp_path)
    np.testing.assert_array_equal(costs[:8], [3.0] * 8)
    assert len(StoreReader(tmp_path).heads()) == 1


def test_late_interval_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path, step=STEP)
    _append(store, 0)
    _append(store, 1)
    _append(store, 7)  # 11:10: 10:00 is sealed
    with pytest.raises(LateIntervalError):
        _append(store, 2)  # 10:20 was never stored and 10:00 is closed
    with pytest.raises(LateIntervalError):
        store.append(T - DAY, T - DAY + STEP, containers("a"), nodes("n1"))


def _ok() -> tuple[object, object]:
    return containers("a", cpu_cost=[1.0]), nodes("n1")


@pytest.mark.parametrize(("args", "message"), [
    ((T, T, *_ok()), "bad interval"),
    ((T, T + 2 * HOUR, *_ok()), "bad interval"),
    ((T + 0.5, T + 60, *_ok()), "integer"),
    ((T, T + 60, containers("a", "b", cpu_cost=[1.0]), nodes("n1")), "differ in length"),
    ((T, T + 60, containers("a", cpu_costs=[1.0]), nodes("n1")), "unknown measures"),
    ((T, T + 60, containers("a", cpu_cost=[np.inf]), nodes("n1")), "infinite"),
    ((T, T + 60, containers("a", cpu_cost=["x"]), nodes("n1")), "numeric"),
    ((T, T + 60, containers("a", "a"), nodes("n1")), "twice"),
    ((T, T + 60, containers("a\x00b"), nodes("n1")), "control"),
    ((T, T + 60, containers("a", labels={"label_../x": ["v"]}), nodes("n1")), "unknown identity"),
    ((T, T + 60, containers("a", labels={"gpu": ["v"]}), nodes("n1")), "unknown identity"),
    ((T, T + 60, containers("a"), containers("a")), "nodes: missing identity"),
    ((T, T + 60, "containers", nodes("n1")), "expected a Block"),
])
def test_bad_input_is_refused_and_nothing_changes(tmp_path: Path, args: tuple,
                                                  message: str) -> None:
    store = Store(tmp_path, step=STEP)
    _append(store, 0)
    with pytest.raises(StoreInputError, match=message):
        store.append(*args)
    _append(store, 1)
    np.testing.assert_array_equal(_costs(tmp_path)[:2], [3.0, 3.0])


def test_missing_identity_column_and_non_str(tmp_path: Path) -> None:
    store = Store(tmp_path, step=STEP)
    block = containers("a")
    identity = dict(block.identity)
    del identity["namespace"]
    with pytest.raises(StoreInputError, match="missing identity"):
        store.append(T, T + 60, type(block)(identity, {}), nodes("n1"))
    identity = dict(block.identity, namespace=np.array([None], dtype=object))
    with pytest.raises(StoreInputError, match="str"):
        store.append(T, T + 60, type(block)(identity, {}), nodes("n1"))


def test_bad_shard_and_store_path(tmp_path: Path) -> None:
    with pytest.raises(StoreInputError):
        Store(tmp_path, shard="2/2")
    with pytest.raises(StoreInputError):
        Store(tmp_path, shard="../1")
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreIOError):
        Store(tmp_path / "file", step=STEP).append(T, T + 60, *_ok())


@pytest.fixture
def small_file_limit():
    """Make writes past a byte limit fail with EFBIG, as a full disk fails them."""
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def limit(nbytes: int) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, old_limit[1]))

    yield limit
    resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
    signal.signal(signal.SIGXFSZ, old_handler)


def test_full_disk_loses_nothing_stored(tmp_path: Path, small_file_limit) -> None:
    store = Store(tmp_path, step=STEP)
    for k in range(3):
        _append(store, k)
    size = _wal(tmp_path).stat().st_size
    small_file_limit(size + 20)  # the next record does not fit
    with pytest.raises(StoreIOError, match="not stored"):
        _append(store, 3)
    assert _wal(tmp_path).stat().st_size == size  # cut back: no torn record left behind
    small_file_limit(resource.RLIM_INFINITY)
    _append(store, 3)
    small_file_limit(200)  # sealing 10:00 writes files larger than this
    with pytest.raises(StoreIOError):
        _append(store, 6)
    assert not list((tmp_path / "shard-0-of-1" / "raw").glob(".tmp-*"))
    small_file_limit(resource.RLIM_INFINITY)
    _append(store, 6)  # the seal is retried, then 11:00 opens
    store.close()
    np.testing.assert_array_equal(_costs(tmp_path)[:7], [3.0] * 4 + [np.nan] * 2 + [3.0])
    assert [p.period for p in StoreReader(tmp_path).partitions("raw")] == ["2024-05-10T10"]


def test_wal_header_is_checked(tmp_path: Path) -> None:
    store = Store(tmp_path, step=STEP)
    _append(store, 0)
    store.close()
    wal = _wal(tmp_path)
    assert wal.read_bytes().startswith(MAGIC)
    wal.write_bytes(b"NOTAWAL!" + wal.read_bytes()[len(MAGIC):])
    with pytest.raises(StoreError, match="magic"):
        Store(tmp_path, step=STEP)
    assert os.path.exists(wal)  # never deleted: an operator must look at it


def test_restart_replays_the_wal_without_holding_it(tmp_path: Path) -> None:
    """At 5,000 nodes a full hour's WAL is 2 GB: recovery must stream it, record by record."""
    import tracemalloc

    from aggregator.store.synthetic import SimCluster

    sim = SimCluster(5_000, seed=4)
    start = ts("2024-01-01T10:00")
    with Store(tmp_path) as store:
        for k in range(30):
            store.append(start + 60 * k, start + 60 * k + 60, *sim.blocks(start + 60 * k,
                                                                          start + 60 * k + 60))
    wal_bytes = sum(p.stat().st_size for p in tmp_path.rglob("*.wal"))
    tracemalloc.start()
    try:
        with Store(tmp_path) as again:
            assert again.last_start() == start + 29 * 60
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert wal_bytes > 15e6  # the head (compressed) and series tables stay; no copy of it
    assert peak < 0.8 * wal_bytes, f"replay peaked at {peak / wal_bytes:.2f}x the WAL's size"


def test_a_scan_resumes_after_the_records_already_read(tmp_path: Path) -> None:
    with Store(tmp_path, step=STEP) as store:
        for k in range(3):
            _append(store, k)
        first = WalScan(_wal(tmp_path))
        assert [r.start for r in first] == [T, T + STEP, T + 2 * STEP]
        for k in range(3, 5):
            _append(store, k)
    resumed = WalScan(_wal(tmp_path), first.position())
    assert [r.start for r in resumed] == [T + 3 * STEP, T + 4 * STEP]
    assert not resumed.restarted and resumed.good == resumed.size
    again = WalScan(_wal(tmp_path), resumed.position())
    assert list(again) == [] and again.position() == resumed.position()


def test_a_scan_of_another_log_at_that_path_starts_over(tmp_path: Path) -> None:
    with Store(tmp_path / "a", step=STEP) as store:
        for k in range(4):
            _append(store, k)
    scan = WalScan(_wal(tmp_path / "a"))
    list(scan)
    with Store(tmp_path / "b", step=STEP) as store:
        for k in range(6):
            _append(store, k, cost=5.0)  # same intervals, other values: other CRCs
    other = WalScan(_wal(tmp_path / "b"), scan.position())
    assert [r.start for r in other] == [T + STEP * k for k in range(6)] and other.restarted
