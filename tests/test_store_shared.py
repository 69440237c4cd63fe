"""Readers beside a writer, several shards, object storage (fsspec), xarray."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
import zarr
from storefakes import by_key, containers, nodes, ts

from aggregator.store import Store, StoreReader
from aggregator.store.layout import DAY, HOUR
from aggregator.store.synthetic import SimCluster

T0 = ts("2024-06-01")


def test_reader_during_writes_sees_only_whole_intervals(tmp_path: Path) -> None:
    """8 containers × 0.5 $ per interval: any total a reader sees is a multiple of 4 $.

    Two readers query in a loop while one thread appends (sealing an hour every 12
    appends) and another runs maintenance (rolling June 1 up once it is over).
    """
    step, start0 = 300, T0 + 20 * HOUR
    names = [f"c{i}" for i in range(8)]
    block = (containers(*names, cpu_cost=[0.5] * 8, minutes=[5.0] * 8),
             nodes("n1", cpu_cost=[1.0]))
    store = Store(tmp_path, step=step)
    store.append(start0, start0 + step, *block)
    stop, errors = threading.Event(), []
    views: list[list[tuple[float, float, set[str]]]] = [[], []]

    def read(seen: list[tuple[float, float, set[str]]]) -> None:
        reader = StoreReader(tmp_path)
        try:
            while not stop.is_set():
                res = reader.query(T0, T0 + 2 * DAY, 2 * DAY, [], measures=["cpu_cost",
                                                                            "minutes"])
                cost, minutes = res.values["cpu_cost"][0, 0], res.values["minutes"][0, 0]
                seen.append((cost / 4.0, minutes / 40.0, {t for _, t, _ in res.sources}))
        except Exception as exc:  # noqa: BLE001 - handed to the main thread to fail there
            errors.append(exc)

    latest = [start0 + step]

    def maintain() -> None:  # rollups run beside appends, as they may in the aggregator
        try:
            while not stop.is_set():
                store.maintain(latest[0])
        except Exception as exc:  # noqa: BLE001 - handed to the main thread to fail there
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(seen,)) for seen in views]
    threads.append(threading.Thread(target=maintain))
    for t in threads:
        t.start()
    for k in range(1, 6 * 12):  # 6 hours: 5 seals and the day of June 1 rolled up
        start = start0 + step * k
        store.append(start, start + step, *block)
        latest[0] = start + step
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    store.maintain(latest[0])
    for seen in views:
        assert len(seen) > 5
        for intervals, by_minutes, _ in seen:
            assert intervals == int(intervals) and by_minutes == intervals
        counts = [n for n, _, _ in seen]
        assert counts == sorted(counts)  # a reader never goes back in time
    assert {"raw", "wal"} <= set().union(*(s for seen in views for _, _, s in seen))
    final = StoreReader(tmp_path).query(T0, T0 + 2 * DAY, DAY, [], measures=["cpu_cost"])
    assert {t for _, t, _ in final.sources} == {"hourly", "raw", "wal"}
    np.testing.assert_array_equal(final.values["cpu_cost"][:, 0], [4.0 * 48, 4.0 * 24])


def test_sharded_writers_one_reader(tmp_path: Path) -> None:
    t = T0 + 5 * HOUR
    one, two = Store(tmp_path, "0/2", step=HOUR), Store(tmp_path, "1/2", step=HOUR)
    for k in range(3):
        start = t + k * HOUR
        one.append(start, start + HOUR, containers("a", "b", cpu_cost=[1.0, 2.0],
                                                   minutes=[60.0, 60.0]), nodes("n1"))
        two.append(start, start + HOUR, containers("c", namespace="other", cpu_cost=[4.0],
                                                   minutes=[60.0]), nodes("n2"))
    reader = StoreReader(tmp_path)
    assert {p.shard for p in reader.partitions()} == {"shard-0-of-2", "shard-1-of-2"}
    res = reader.query(t, t + 3 * HOUR, HOUR, ["container"])
    cost = by_key(res, "container", "cpu_cost")
    np.testing.assert_array_equal(cost["a"], [1, 1, 1])
    np.testing.assert_array_equal(cost["c"], [4, 4, 4])
    np.testing.assert_array_equal(res.coverage, [60, 60, 60])  # not 120: same hours
    ns = by_key(reader.query(t, t + 3 * HOUR, 3 * HOUR, ["namespace"]), "namespace",
                "cpu_cost")
    assert ns == {"default": pytest.approx([9.0]), "other": pytest.approx([12.0])}


def test_fsspec_memory_store_matches_local(tmp_path: Path) -> None:
    import fsspec

    url = f"memory://kubetally-{uuid.uuid4().hex}"
    sim, step = SimCluster(12, nodes=2, seed=5), 1200
    remote = Store(url, step=step, wal_dir=tmp_path / "wal")
    local = Store(tmp_path / "local", step=step)
    start0 = T0 + 22 * HOUR
    for k in range(8):  # 22:00 – 00:40: seals 22:00, 23:00 and rolls June 1 up
        start = start0 + k * step
        for store in (remote, local):
            store.append(start, start + step, *sim.blocks(start, start + step))
            store.maintain(start + step)
    fs = fsspec.filesystem("memory")
    root = url[len("memory://"):]
    markers = fs.glob(f"{root}/shard-0-of-1/*/*.committed")
    assert len(markers) == 3  # raw 22:00, raw 23:00, hourly June 1
    # an uncommitted prefix (a crash mid-write) is invisible, then cleaned on open
    fs.pipe_file(f"{root}/shard-0-of-1/raw/2024-06-02T00.0123456789ab/zarr.json", b"{}")
    window = (T0, T0 + 2 * DAY, DAY, ["namespace"])
    got = StoreReader(url, wal_dir=tmp_path / "wal").query(*window)
    want = StoreReader(tmp_path / "local").query(*window)
    assert [s[1:] for s in got.sources] == [s[1:] for s in want.sources] == [
        ("hourly", "2024-06-01"), ("wal", "2024-06-02T00")]
    for m in want.values:
        np.testing.assert_array_equal(got.values[m], want.values[m])
    np.testing.assert_array_equal(got.keys["namespace"], want.keys["namespace"])
    remote.close()
    Store(url, step=step, wal_dir=tmp_path / "wal").close()
    assert not fs.exists(f"{root}/shard-0-of-1/raw/2024-06-02T00.0123456789ab")
    info = StoreReader(url).partitions("hourly")[0]
    group = zarr.open_group(StoreReader(url).open_store(info), mode="r")
    assert group["containers/cpu_cost"].shape == (2, 12)


def test_partition_opens_with_zarr_and_xarray(tmp_path: Path) -> None:
    import xarray as xr
    t = T0 + 3 * HOUR
    store = Store(tmp_path, step=1800)
    store.append(t, t + 1800, containers("a", "b", namespace=["x", "y"], cpu_cost=[1.0, 2.0],
                                         labels={"label_team": ["red", ""]}), nodes("n1"))
    store.append(t + 1800, t + 3600, containers("a", namespace="x", cpu_cost=[3.0],
                                                labels={"label_team": ["red"]}), nodes("n1"))
    store.append(t + HOUR, t + HOUR + 1800, containers("a"), nodes("n1"))  # seals 03:00
    (info,) = StoreReader(tmp_path).partitions("raw")
    group = zarr.open_group(info.location, mode="r")
    assert group.attrs["kubetally"]["tier"] == "raw"
    np.testing.assert_array_equal(group["containers/cpu_cost"][:], [[1, 2], [3, np.nan]])
    ds = xr.open_zarr(info.location, group="containers", consolidated=False)
    assert ds.cpu_cost.dims == ("time", "series")
    assert {"namespace", "label_team", "pod"} <= set(ds.coords)
    np.testing.assert_array_equal(ds.time.values.astype("datetime64[s]").astype(np.int64),
                                  [t, t + 1800])  # CF units: xarray decodes datetimes
    by_ns = ds.cpu_cost.groupby("namespace").sum(...)
    assert dict(zip(by_ns.namespace.values.tolist(), by_ns.values.tolist(),
                    strict=True)) == {"x": 4.0, "y": 2.0}
    nodes_ds = xr.open_zarr(StoreReader(tmp_path).open_store(info), group="nodes",
                            consolidated=False)
    assert "cpu_idle_cost" in nodes_ds.data_vars
