"""The read side, for the API (another process): query the store, never write it.

:meth:`StoreReader.query` answers "this measure, summed (or maxed) per group and per
step, over this window" from the coarsest tier that can: for each part of the window it
uses the coarsest tier whose rows nest in the requested steps and whose partitions are
sealed there (daily for past months, hourly for past days, raw for today's sealed
hours), and the complete records of the open hour's WAL for the rest. Every shard found
under the URL is read and merged.

Consistency without locks: the reader takes its snapshot in the order the writer
publishes (WAL files first, then the sealed partitions). A seal commits the partition
before it deletes the WAL, so an hour is seen either through its WAL or through its
partition, never neither, and a sealed partition is preferred. A WAL is read up to its
last complete record. Retention may delete a partition during a read; the reader
checks each partition is still committed after reading it and otherwise starts again.

Opening a partition directly (for notebooks, Dask, other tools)::

    reader = StoreReader("/var/lib/kubetally")
    info = reader.partitions("hourly")[-1]
    group = zarr.open_group(reader.open_store(info), mode="r")     # or the path/URL
    cpu = group["containers/cpu_cost"][:]            # (time, series) float64
    ns = group["containers/namespace"][:]            # (series,) strings

    import xarray as xr
    ds = xr.open_zarr(info.location, group="containers", consolidated=False)
    ds.cpu_cost.groupby(ds.namespace).sum()          # identity columns are coordinates
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import Store as ZarrStore

from aggregator.measures import ROLLUP
from aggregator.store.backend import open_backend
from aggregator.store.cache import PartitionCache
from aggregator.store.errors import QueryError, StoreError, StoreIOError
from aggregator.store.head import Head
from aggregator.store.layout import (
    RAW,
    TABLES,
    TIERS,
    WAL_DIR,
    WAL_SUFFIX,
    Tier,
    validate_column_name,
)
from aggregator.store.model import join_columns
from aggregator.store.reduce import Groups, merge_into, reduce_axis
from aggregator.store.stored import LazyColumns, MemoryTable, StoredTable, open_partitions
from aggregator.store.wal import WalScan

__all__ = ["PartitionInfo", "QueryResult", "StoreReader", "Where"]

Where = Callable[[Mapping[str, np.ndarray]], np.ndarray]
MAX_STEPS = 1_000_000
_ATTEMPTS = 3


@dataclass(frozen=True)
class PartitionInfo:
    """A sealed partition: which shard and tier, its period, and where it lives."""

    shard: str
    tier: str
    period: str
    start: int
    end: int
    location: str


@dataclass
class QueryResult:
    """Per-step, per-group values of a query.

    ``keys`` holds one array per group-by column (one row per group, sorted by key);
    ``values[m]`` is ``(steps, groups)``, NaN where a group had no data in a step;
    ``coverage`` is the minutes of data found per step (the most any one shard had);
    ``sources`` names what was read, as (shard, tier, period), tier "wal" for the open hour.
    """

    keys: dict[str, np.ndarray]
    edges: np.ndarray
    values: dict[str, np.ndarray]
    coverage: np.ndarray
    sources: list[tuple[str, str, str]] = field(default_factory=list)


class _Vanished(Exception):
    """A partition was deleted while being read; the query starts again."""


@dataclass
class _Partial:
    """One source's contribution: its groups and their per-step values."""

    steps: np.ndarray
    keys: np.ndarray
    key_columns: dict[str, np.ndarray]
    values: dict[str, np.ndarray]


@dataclass(frozen=True)
class _Grouped:
    """A partition's series grouped by some columns (no filter): what a cache keeps."""

    keys: np.ndarray
    key_columns: dict[str, np.ndarray]
    by_series: Groups


@dataclass(frozen=True)
class _Meta:
    """A sealed table's row times and series count: enough to plan without opening it."""

    time: np.ndarray
    seconds: np.ndarray
    n_series: int


class StoreReader:
    """Read-only access to every shard of a store. Cheap to create.

    With ``cache_bytes`` > 0 it keeps, in a bounded LRU, what queries derive from sealed
    partitions (row times, series grouped by the query's columns, rows summed per step
    for each series and measure), keyed by the backend's fingerprint of each partition:
    sealed partitions are immutable, so a repeated query (the API's dashboards) skips
    opening, decoding and summing them, and gets the same result as without a cache.
    """

    def __init__(self, url: str | os.PathLike[str], *,
                 wal_dir: str | os.PathLike[str] | None = None,
                 storage_options: dict[str, Any] | None = None,
                 cache_bytes: int = 0) -> None:
        self._backend = open_backend(url, storage_options)
        root = Path(wal_dir) if wal_dir is not None else self._backend.local_root
        self._wal_root = root
        self.cache: PartitionCache | None = PartitionCache(cache_bytes) if cache_bytes > 0 \
            else None

    # ---- listing ----------------------------------------------------------------------

    def partitions(self, tier: str | None = None) -> list[PartitionInfo]:
        """Sealed partitions, of one tier or all, by shard, tier and time."""
        tiers = [t for t in TIERS if tier is None or t.name == tier]
        if tier is not None and not tiers:
            raise QueryError("tier", f"unknown tier {tier!r}")
        out = []
        for shard in self._backend.list_shards():
            for t in tiers:
                for period, location in self._backend.list_sealed(shard, t).items():
                    start, end = t.bounds(period)
                    out.append(PartitionInfo(shard, t.name, period, start, end, location))
        return out

    def tiers(self) -> dict[str, list[PartitionInfo]]:
        """Sealed partitions by tier name (finest first)."""
        found = self.partitions()
        return {t.name: [p for p in found if p.tier == t.name] for t in TIERS}

    def open_store(self, info: PartitionInfo) -> ZarrStore:
        """A read-only Zarr store of one partition, for ``zarr.open_group``."""
        return self._backend.open_store(info.location)

    def open_partition(self, info: PartitionInfo) -> zarr.Group:
        """The partition's root group (sub-groups ``containers`` and ``nodes``)."""
        return zarr.open_group(self.open_store(info), mode="r")

    def heads(self) -> dict[str, Head]:
        """The open hour of each shard, from its WAL's complete records."""
        out = {}
        for shard in self._backend.list_shards():
            out.update({f"{shard}/{h.period}": h for h in self._read_heads(shard)})
        return out

    def _read_heads(self, shard: str) -> list[Head]:
        if self._wal_root is None:
            return []
        folder = self._wal_root / shard / WAL_DIR
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            return []
        heads = []
        for name in names:
            period = name[:-len(WAL_SUFFIX)]
            if not name.endswith(WAL_SUFFIX) or not RAW.is_period(period):
                continue
            head = Head(period)
            try:
                for record in WalScan(folder / name):
                    head.apply(record)
            except FileNotFoundError:
                continue  # sealed meanwhile: the partition listing (taken next) has it
            heads.append(head)
        return heads

    # ---- query ------------------------------------------------------------------------

    def query(self, start: int, end: int, step: int, group_by: Sequence[str],
              table: str = "containers", where: Where | None = None,
              measures: Sequence[str] | None = None) -> QueryResult:
        """Sum (or max, per ROLLUP) each measure per group and step over ``[start, end)``.

        ``step`` must divide ``end - start``. A stored row counts in the step holding its
        start (rows of a tier are used only where the tier's step divides ``step`` and
        ``start`` is aligned to it, so a row never straddles two steps; raw rows always
        qualify). ``group_by`` names identity or ``label_<key>`` columns (empty: one
        group for everything). ``where`` gets each source's series columns as a lazy
        mapping (a label the source lacks reads as all "") and returns a bool mask.
        Groups with no data anywhere in the window are absent; a group with no data in a
        step has NaN there. Raises QueryError naming the bad parameter; StoreIOError if
        storage fails.
        """
        names = _check(start, end, step, group_by, table, measures)
        for _ in range(_ATTEMPTS):
            try:
                return self._query(int(start), int(end), int(step), tuple(group_by), table,
                                   where, names)
            except _Vanished:
                continue
            except OSError as exc:
                raise StoreIOError(f"reading the store failed: {exc}") from exc
        raise StoreError("partitions kept vanishing during the query (retention running?)")

    def _plan(self, start: int, end: int, step: int) -> list[tuple[str, str, str, object]]:
        """(shard, tier, period, location-or-head) per source, coarsest tier first."""
        usable = [t for t in TIERS if t.step is None or (step % t.step == 0
                                                         and start % t.step == 0)]
        plan: list[tuple[str, str, str, object]] = []
        for shard in self._backend.list_shards():
            heads = self._read_heads(shard)  # before the listing: see the module docstring
            covered: list[tuple[int, int]] = []
            for tier in reversed(usable):
                for period, location in self._backend.list_sealed(shard, tier).items():
                    if _take(tier, period, start, end, covered):
                        plan.append((shard, tier.name, period, location))
            for head in heads:
                if _take(RAW, head.period, start, end, covered):
                    plan.append((shard, "wal", head.period, head))
        return plan

    def _query(self, start: int, end: int, step: int, group_by: tuple[str, ...], table: str,
               where: Where | None, names: list[str]) -> QueryResult:
        n_steps = (end - start) // step
        edges = start + step * np.arange(n_steps + 1, dtype=np.int64)
        coverage: dict[str, np.ndarray] = {}
        partials: list[_Partial] = []
        plan = self._plan(start, end, step)
        locations = [s for _, _, _, s in plan if isinstance(s, str)]
        prints: dict[str, str | None] = {}
        try:
            if self.cache is not None:
                prints = {loc: self._backend.fingerprint(loc) for loc in locations}
            # open at once (one trip) what the cache cannot answer without opening
            cold = [loc for loc in locations if prints.get(loc) is None
                    or self.cache is None or self.cache.get((prints[loc], table, "meta")) is None]
            opened = dict(zip(cold, open_partitions(self._backend, cold), strict=True))
        except FileNotFoundError as exc:
            raise _Vanished(str(exc)) from exc
        for shard, _tier, _period, source in plan:
            if isinstance(source, Head):
                src: _Source = MemoryTable(table, source.table(table))
            else:
                assert isinstance(source, str)
                fp = prints.get(source)
                if fp is None or self.cache is None:
                    src = opened[source].table(table)
                else:
                    src = _CachedTable(self._backend, self.cache, source, fp, table,
                                       opened.get(source))
            cov = coverage.setdefault(shard, np.zeros(n_steps, dtype=np.int64))
            part = _read_source(src, start, end, step, group_by, where, names, cov)
            if isinstance(source, str) and not self._backend.still_there(source):
                raise _Vanished(source)
            if part is not None:
                partials.append(part)
        keys, values = _merge(partials, n_steps, group_by, names)
        cov_all = np.max(np.stack(list(coverage.values())), axis=0) if coverage else \
            np.zeros(n_steps, dtype=np.int64)
        return QueryResult(keys, edges, values, cov_all / 60.0,
                           [(s, t, p) for s, t, p, _ in plan])


def _check(start: int, end: int, step: int, group_by: Sequence[str], table: str,
           measures: Sequence[str] | None) -> list[str]:
    """Validate the query's parameters; the measure names to compute."""
    for param, value in (("start", start), ("end", end), ("step", step)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool):
            raise QueryError(param, "must be an integer number of seconds")
    if table not in TABLES:
        raise QueryError("table", f"unknown table {table!r}; one of {sorted(TABLES)}")
    if end <= start:
        raise QueryError("end", "must be after start")
    if step <= 0 or (end - start) % step:
        raise QueryError("step", "must be positive and divide end - start")
    if (end - start) // step > MAX_STEPS:
        raise QueryError("step", f"more than {MAX_STEPS} steps")
    if isinstance(group_by, str):
        raise QueryError("group_by", "must be a sequence of column names, not a string")
    for col in group_by:
        if not isinstance(col, str) or not validate_column_name(table, col):
            raise QueryError("group_by", f"unknown column {col!r} of {table}")
    if len(set(group_by)) != len(group_by):
        raise QueryError("group_by", "a column is named twice")
    spec = TABLES[table]
    if measures is None:
        return list(spec.measures)
    if isinstance(measures, str):
        raise QueryError("measures", "must be a sequence of measure names, not a string")
    bad = [m for m in measures if m not in spec.measures]
    if bad or not measures:
        raise QueryError("measures", f"unknown measures {bad} of {table}" if bad else "empty")
    return list(dict.fromkeys(measures))


def _take(tier: Tier, period: str, start: int, end: int,
          covered: list[tuple[int, int]]) -> bool:
    """True (and mark it covered) when a partition overlaps the window and nothing
    coarser already covers it. Partitions nest (hours in days in months), so covered
    means inside one covered period."""
    a, b = tier.bounds(period)
    if b <= start or a >= end or any(ca <= a and b <= cb for ca, cb in covered):
        return False
    covered.append((a, b))
    return True


class _CachedTable:
    """A sealed table seen through the reader's cache; opens the partition only when the
    cache lacks something (``opened`` when the query already opened it)."""

    def __init__(self, backend: Any, cache: PartitionCache, location: str, fp: str,
                 table: str, opened: Any | None) -> None:
        self._backend, self._cache, self._location = backend, cache, location
        self._key: tuple[str, str] = (fp, table)
        self._name = table
        self._table: StoredTable | None = opened.table(table) if opened is not None else None
        meta = cache.get((*self._key, "meta"))
        if meta is None:
            t = self.table
            meta = _Meta(t.time.copy(), t.seconds.copy(), t.n_series)
            cache.put((*self._key, "meta"), meta)
        self.time, self.seconds, self.n_series = meta.time, meta.seconds, meta.n_series

    @property
    def table(self) -> StoredTable:
        """The stored table, opening the partition on first need."""
        if self._table is None:
            try:
                part = open_partitions(self._backend, [self._location])[0]
            except FileNotFoundError as exc:
                raise _Vanished(str(exc)) from exc
            self._table = part.table(self._name)
        return self._table

    @property
    def columns(self) -> LazyColumns:
        """The table's series columns (for a filter; not cached)."""
        return self.table.columns

    def grouped(self, group_by: tuple[str, ...]) -> _Grouped:
        """All series grouped by ``group_by``, cached."""
        key = (*self._key, "groups", group_by)
        found = self._cache.get(key)
        if found is None:
            found = _group(self.table, group_by, None)
            assert found is not None  # no filter: every series is selected
            self._cache.put(key, found)
        return found

    def per_step(self, names: list[str], rows: slice, by_step: Groups) -> dict[str,
                                                                              np.ndarray]:
        """Each measure's rows reduced per step, per series; cached per row grouping."""
        shape = (rows.start, rows.stop, by_step.starts.tobytes())
        keys = {m: (*self._key, "steps", m, *shape) for m in names}
        out = {m: self._cache.get(k) for m, k in keys.items()}
        missing = [m for m, v in out.items() if v is None]
        if missing:
            for m, v in _per_step(self.table, missing, rows, by_step).items():
                self._cache.put(keys[m], v)
                out[m] = v
        return out  # type: ignore[return-value]


_Source = StoredTable | MemoryTable | _CachedTable


def _group(src: StoredTable | MemoryTable, group_by: tuple[str, ...],
           where: Where | None) -> _Grouped | None:
    """The selected series' groups by ``group_by``; None when the filter selects none."""
    src.columns.prefetch(group_by)
    if where is None:
        selected = np.arange(src.n_series)
    else:
        mask = np.asarray(where(src.columns))
        if mask.dtype != bool or mask.shape != (src.n_series,):
            raise QueryError("where", f"filter must return a bool array of shape "
                             f"({src.n_series},), got {mask.dtype} {mask.shape}")
        selected = np.flatnonzero(mask)
    if not len(selected):
        return None
    cols = {c: src.columns[c][selected] for c in group_by}
    keys, first, codes = np.unique(join_columns(list(cols.values()), len(selected)),
                                   return_index=True, return_inverse=True)
    series_codes = np.full(src.n_series, -1, dtype=np.int64)
    series_codes[selected] = codes
    return _Grouped(keys, {c: v[first] for c, v in cols.items()}, Groups.of(series_codes))


def _per_step(src: StoredTable | MemoryTable, names: list[str], rows: slice,
              by_step: Groups) -> dict[str, np.ndarray]:
    """``(steps, series)`` per measure: the rows reduced per step."""
    # rows first: they are sorted already and usually shrink most (24 hours → 1 day)
    return {m: reduce_axis(block, by_step, ROLLUP[m], axis=0)
            for m, block in src.read_many(names, rows).items()}


def _read_source(src: _Source, start: int, end: int, step: int,
                 group_by: tuple[str, ...], where: Where | None, names: list[str],
                 coverage: np.ndarray) -> _Partial | None:
    """Fold one partition (or the open hour) into per-step, per-local-group values."""
    r0, r1 = np.searchsorted(src.time, [start, end], side="left")
    if r0 == r1:
        return None
    step_codes = (src.time[r0:r1] - start) // step
    np.add.at(coverage, step_codes, src.seconds[r0:r1])
    if not src.n_series:
        return None
    by_step = Groups.of(step_codes)
    rows = slice(int(r0), int(r1))
    if isinstance(src, _CachedTable):
        grouped = src.grouped(group_by) if where is None else _group(src.table, group_by,
                                                                      where)
        if grouped is None:
            return None
        per_step = src.per_step(names, rows, by_step)
    else:
        grouped = _group(src, group_by, where)
        if grouped is None:
            return None
        per_step = _per_step(src, names, rows, by_step)
    values = {m: reduce_axis(per_step[m], grouped.by_series, ROLLUP[m], axis=1)
              for m in names}
    return _Partial(by_step.codes, grouped.keys, grouped.key_columns, values)


def _merge(partials: list[_Partial], n_steps: int, group_by: tuple[str, ...],
           names: list[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Map each source's local groups onto the sorted global groups and combine."""
    if not partials:
        return ({c: np.empty(0, dtype=object) for c in group_by},
                {m: np.full((n_steps, 0), np.nan) for m in names})
    all_keys = np.concatenate([p.keys for p in partials])
    keys, first, codes = np.unique(all_keys, return_index=True, return_inverse=True)
    key_columns = {c: np.concatenate([p.key_columns[c] for p in partials])[first]
                   for c in group_by}
    values = {m: np.full((n_steps, len(keys)), np.nan) for m in names}
    offset = 0
    for p in partials:
        gcodes = codes[offset:offset + len(p.keys)]
        offset += len(p.keys)
        for m in names:
            merge_into(values[m], p.steps, gcodes, p.values[m], ROLLUP[m])
    return key_columns, values

