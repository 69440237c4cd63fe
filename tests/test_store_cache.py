"""The reader's partition cache never changes an answer, even as partitions come and go."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.store import StoreReader
from aggregator.store.backend import open_backend
from aggregator.store.layout import DAY, HOUR, HOURLY, TABLES
from aggregator.store.partition import write_partition
from aggregator.store.synthetic import SimCluster

T0 = 1_704_067_200  # 2024-01-01 00:00 UTC
SHARD = "shard-0-of-1"


def _seal(backend, sim: SimCluster, day: int) -> None:
    start = T0 + day * DAY
    assert write_partition(backend, SHARD, HOURLY, HOURLY.period_of(start),
                           {t: sim.hourly_day(start, t) for t in TABLES},
                           HOUR)


QUERIES = [
    dict(step=DAY, group_by=["namespace"]),
    dict(step=DAY, group_by=["namespace"], measures=["cpu_cost", "ram_usage_max_bytes"]),
    dict(step=6 * HOUR, group_by=["label_team", "node"]),
    dict(step=HOUR, group_by=[]),
    dict(step=DAY, group_by=["namespace"],
         where=lambda cols: np.asarray(cols["label_team"] == "team-1")),
    dict(step=2 * DAY, group_by=["cluster", "node"], table="nodes"),
]


def _same(a, b) -> None:
    assert a.sources == b.sources
    np.testing.assert_array_equal(a.edges, b.edges)
    np.testing.assert_array_equal(a.coverage, b.coverage)
    assert a.keys.keys() == b.keys.keys()
    for c in a.keys:
        assert a.keys[c].tolist() == b.keys[c].tolist()
    assert a.values.keys() == b.values.keys()
    for m in a.values:
        np.testing.assert_array_equal(a.values[m], b.values[m])


def _check(cached: StoreReader, plain: StoreReader, start: int, end: int) -> None:
    for _ in range(2):  # the first fills the cache, the second answers from it
        for q in QUERIES:
            kw = dict(q)
            step, group_by = kw.pop("step"), kw.pop("group_by")
            _same(cached.query(start, end, step, group_by, **kw),
                  plain.query(start, end, step, group_by, **kw))


@pytest.mark.parametrize("budget", [64 << 20, 40_000])  # roomy, and small enough to evict
def test_cached_queries_match_uncached(tmp_path, budget):
    backend = open_backend(tmp_path)
    sim = SimCluster(60, seed=4, namespaces=5)
    for d in range(4):
        _seal(backend, sim, d)
    cached = StoreReader(tmp_path, cache_bytes=budget)
    plain = StoreReader(tmp_path)
    assert plain.cache is None and cached.cache is not None
    _check(cached, plain, T0, T0 + 4 * DAY)
    _check(cached, plain, T0 + DAY, T0 + 3 * DAY)
    assert cached.cache.hits and cached.cache.size <= budget

    # retention deletes the first day
    info = next(p for p in plain.partitions("hourly") if p.start == T0)
    backend.delete(SHARD, HOURLY, info.period, info.location)
    _check(cached, plain, T0, T0 + 4 * DAY)

    # a new day is sealed
    _seal(backend, sim, 4)
    _check(cached, plain, T0, T0 + 6 * DAY)

    # a deleted period written again, with other data, at the same location
    info = next(p for p in plain.partitions("hourly") if p.start == T0 + DAY)
    backend.delete(SHARD, HOURLY, info.period, info.location)
    _seal(backend, SimCluster(60, seed=5, namespaces=7), 1)
    _check(cached, plain, T0, T0 + 6 * DAY)
