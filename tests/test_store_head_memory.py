"""The open hour is held compressed, and sealing it builds one measure at a time.

What a user relies on: the partition holds exactly what was appended (costs bit for bit,
usage rounded as documented, NaN where a series had no sample), whatever the head does
inside; and the head's memory does not grow by a full float64 copy of every interval,
which at 300,000 containers would be 2 GB an hour.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np

from aggregator.store.head import Head
from aggregator.store.layout import RAW, TABLES, USAGE_MEASURES, quantise
from aggregator.store.model import Block, validate_block
from aggregator.store.partition import encode_partition
from aggregator.store.stored import open_partitions
from aggregator.store.synthetic import SimCluster
from aggregator.store.writer import Store

T0 = 1_700_000_000 - 1_700_000_000 % 3600
STEP = 60
CONTAINERS = TABLES["containers"].measures


def take(block: Block, rows: np.ndarray, drop: tuple[str, ...] = ()) -> Block:
    """The block's rows ``rows`` (in that order), without the measures ``drop``."""
    return Block({c: v[rows] for c, v in block.identity.items()},
                 {m: v[rows].copy() for m, v in block.measures.items() if m not in drop})


def intervals(sim: SimCluster) -> list[tuple[int, Block, Block]]:
    """Intervals exercising every way a row can arrive: all series in order, a shuffled
    subset, a measure left out, NaN samples, new series late in the hour, no nodes."""
    rng = np.random.default_rng(7)
    n = sim.containers
    out = []
    for k in range(8):
        start = T0 + STEP * k
        containers, nodes = sim.blocks(start, start + STEP)
        if k == 0:
            containers = take(containers, np.arange(n - 40))  # the last 40 appear later
        elif k == 2:
            containers = take(containers, rng.permutation(n - 40)[:100], drop=("gpu_cost",))
            containers.measures["cpu_cost"][::7] = np.nan
            containers.measures["cpu_usage_core_hours"][::5] = np.nan
        elif k == 4:
            nodes = Block.empty("nodes")
        elif k == 5:
            containers = take(containers, rng.permutation(n))  # new series, shuffled
        out.append((start, containers, nodes))
    return out


def expected(blocks: list[tuple[int, Block, Block]], which: int,
             table: str) -> tuple[list[str], dict[str, np.ndarray]]:
    """The (time, series) arrays an uncompressed head would seal, built by hand: series
    in order of first appearance, usage rounded, NaN where a series had no sample."""
    order: dict[str, int] = {}
    for _, *tables in blocks:
        order.update((u, len(order)) for u in tables[which].identity["node" if which else "uid"]
                     if u not in order)
    arrays = {m: np.full((len(blocks), len(order)), np.nan) for m in TABLES[table].measures}
    for r, (_, *tables) in enumerate(blocks):
        block = tables[which]
        cols = [order[u] for u in block.identity["node" if which else "uid"]]
        for m, v in block.measures.items():
            arrays[m][r, cols] = quantise(v) if m in USAGE_MEASURES else v
    return list(order), arrays


def test_sealed_hour_is_bit_identical_to_what_was_appended(tmp_path):
    sim = SimCluster(300, seed=3)
    blocks = intervals(sim)
    with Store(tmp_path, step=STEP) as store:
        for start, containers, nodes in blocks[:5]:
            store.append(start, start + STEP, containers, nodes)
    with Store(tmp_path, step=STEP) as store:  # the rest on a head replayed from its WAL
        for start, containers, nodes in blocks[5:]:
            store.append(start, start + STEP, containers, nodes)
        nxt = T0 + 3600
        store.append(nxt, nxt + STEP, *sim.blocks(nxt, nxt + STEP))  # seals the first hour
        (location,) = [loc for period, loc in store._backend.list_sealed(store.shard, RAW)
                       .items() if period == RAW.period_of(T0)]
        (partition,) = open_partitions(store._backend, [location])
    for which, table, key in ((0, "containers", "uid"), (1, "nodes", "node")):
        series, want = expected(blocks, which, table)
        stored = partition.table(table)
        assert stored.time.tolist() == [s for s, _, _ in blocks]
        assert stored.read_columns([key])[key].tolist() == series
        got = stored.read_many(list(TABLES[table].measures))
        for m, values in want.items():
            assert np.array_equal(got[m], values, equal_nan=True), (table, m)
    costs = [m for m in CONTAINERS if m.endswith("_cost")]
    got = partition.table("containers").read_many(costs)
    want = expected(blocks, 0, "containers")[1]
    for m in costs:  # exact to the bit, not only equal as numbers
        assert np.array_equal(got[m].view(np.uint64), want[m].view(np.uint64)), m


def test_head_table_builds_each_measure_exactly():
    sim = SimCluster(300, seed=4)
    blocks = intervals(sim)
    head = Head(RAW.period_of(T0))
    for start, containers, nodes in blocks:
        clean = {"containers": validate_block("containers", containers),
                 "nodes": validate_block("nodes", nodes)}
        head.apply(head.prepare(start, start + STEP, clean))
    data = head.table("containers")
    _, want = expected(blocks, 0, "containers")
    assert list(data.measures) == list(CONTAINERS) and len(data.measures) == len(CONTAINERS)
    for m in CONTAINERS:  # bit for bit, NaN included
        assert np.array_equal(data.measures[m].view(np.uint64), want[m].view(np.uint64)), m


def _fill(head: Head, sim: SimCluster, ks: range) -> None:
    for k in ks:
        start = T0 + STEP * k
        containers, nodes = sim.blocks(start, start + STEP)
        clean = {"containers": validate_block("containers", containers),
                 "nodes": validate_block("nodes", nodes)}
        head.apply(head.prepare(start, start + STEP, clean))
        del containers, nodes, clean


def test_head_memory_is_far_below_the_float64_rows():
    """Each interval past the first (which also defines the series) adds its values
    compressed: measured 0.2-0.25 of the float64 bytes for this cluster."""
    n, k = 20_000, 10
    sim = SimCluster(n, seed=1)
    raw = n * len(CONTAINERS) * 8 + sim.nodes * len(TABLES["nodes"].measures) * 8
    head = Head(RAW.period_of(T0))
    gc.collect()
    tracemalloc.start()
    try:
        _fill(head, sim, range(1))
        gc.collect()
        first = tracemalloc.get_traced_memory()[0]
        _fill(head, sim, range(1, k))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - first
    finally:
        tracemalloc.stop()
    assert len(head) == k
    assert grown < 0.35 * (k - 1) * raw, grown / ((k - 1) * raw)
    assert head.nbytes < 0.35 * k * raw


def test_sealing_holds_about_one_measure_array_at_a_time():
    """The uncompressed head's seal held every measure's (time, series) array at once
    plus rounded and encoding copies (measured: 3x their total here, 5x at 30 rows); now
    one is built, written and dropped before the next (measured: 0.53x, the copies of one
    measure and the encoded partition). Holding them all at once would be at least 1x."""
    n, k = 20_000, 10
    sim = SimCluster(n, seed=2)
    head = Head(RAW.period_of(T0))
    _fill(head, sim, range(k))
    all_arrays = k * n * len(CONTAINERS) * 8
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        objects = encode_partition(RAW, head.period, {t: head.table(t) for t in TABLES},
                                   STEP, "shard-0-of-1")
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert objects
    assert peak < 0.8 * all_arrays, peak / all_arrays
