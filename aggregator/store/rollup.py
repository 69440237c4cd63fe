"""Roll one tier up into the next: raw hours → an hourly day, hourly days → a daily month.

An upper partition is built once its whole period lies before the writer's watermark
(the start of the open raw hour), because no lower partition can appear there any more.
Each upper row is the sum (or max, per :data:`aggregator.measures.ROLLUP`) of the lower
rows it covers, per series; a series present in some lower partitions only contributes
those, and a measure no lower row had stays NaN. The output is committed like a seal
(written beside, then made visible at once), and an existing upper partition is never
rebuilt, so a rollup interrupted by a crash is simply done again.

Memory stays at one lower partition plus the upper arrays: series tables are
read first to build the union of series, then measures are folded in one partition at
a time.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from aggregator.measures import ROLLUP
from aggregator.store.backend import Backend
from aggregator.store.layout import LABEL_PREFIX, TABLES, Tier
from aggregator.store.model import TableData, series_keys
from aggregator.store.partition import write_partition
from aggregator.store.reduce import Groups, merge_into, reduce_axis
from aggregator.store.stored import StoredTable, open_partitions, read_columns

__all__ = ["combine", "due_rollups", "roll_up"]


def combine(parts: list[StoredTable], name: str, upper: Tier) -> TableData:
    """One upper table from lower tables of the same shard (disjoint in time)."""
    spec = TABLES[name]
    labels = sorted({c for p in parts for c in p.column_names if c.startswith(LABEL_PREFIX)})
    names = [*spec.identity, *labels]
    read = read_columns(parts, names)
    cols = {c: np.concatenate([r[c] for r in read]) if parts else np.empty(0, dtype=object)
            for c in names}
    keys = series_keys(name, cols)
    union, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    identity = {c: v[first] for c, v in cols.items()}
    offsets = np.cumsum([0] + [p.n_series for p in parts])
    row_times = [upper.row_start(p.time) for p in parts]
    times = np.unique(np.concatenate(row_times)) if parts else np.empty(0, np.int64)
    seconds = np.zeros(len(times), dtype=np.int64)
    measures = {m: np.full((len(times), len(union)), np.nan) for m in spec.measures}
    for i, part in enumerate(parts):
        series_map = inverse[offsets[i]:offsets[i + 1]]
        row_codes = np.searchsorted(times, row_times[i])
        np.add.at(seconds, row_codes, part.seconds)
        if not part.n_series or not len(part.time):
            continue
        rows = Groups.of(row_codes)  # times are sorted: no reordering
        for m, values in part.read_many(list(spec.measures)).items():
            reduced = reduce_axis(values, rows, ROLLUP[m], axis=0)
            merge_into(measures[m], rows.codes, series_map, reduced, ROLLUP[m])
    return TableData(times.astype(np.int64), seconds, identity, measures)


def due_rollups(lower_sealed: dict[str, str], upper_sealed: dict[str, str], lower: Tier,
                upper: Tier, watermark: int) -> dict[str, list[str]]:
    """Upper periods to build now → locations of their lower partitions.

    Due: the upper period is over (ends at or before ``watermark``), has lower data, and
    was not built yet.
    """
    groups: dict[str, list[str]] = defaultdict(list)
    for period, location in sorted(lower_sealed.items()):
        groups[upper.period_of(lower.bounds(period)[0])].append(location)
    return {up: locs for up, locs in sorted(groups.items())
            if up not in upper_sealed and upper.bounds(up)[1] <= watermark}


def roll_up(backend: Backend, shard: str, lower: Tier, upper: Tier,
            watermark: int) -> list[str]:
    """Build every due upper partition of ``shard``; returns the periods written."""
    assert upper.step is not None
    due = due_rollups(backend.list_sealed(shard, lower), backend.list_sealed(shard, upper),
                      lower, upper, watermark)
    written = []
    for period, locations in due.items():
        partitions = open_partitions(backend, locations)
        tables = {name: combine([p.table(name) for p in partitions], name, upper)
                  for name in TABLES}
        if write_partition(backend, shard, upper, period, tables, upper.step):
            written.append(period)
    return written
