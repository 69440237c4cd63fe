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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import Store as ZarrStore

from aggregator.store.backend import open_backend
from aggregator.store.cache import PartitionCache
from aggregator.store.errors import QueryError, StoreError, StoreIOError
from aggregator.store.fold import (
    CachedTable,
    Partial,
    Source,
    Vanished,
    Where,
    merge,
    read_source,
)
from aggregator.store.layout import (
    RAW,
    TABLES,
    TIERS,
    WAL_DIR,
    Tier,
    validate_column_name,
)
from aggregator.store.openhours import OpenHour, OpenHours
from aggregator.store.stored import MemoryTable, open_partitions

__all__ = ["PartitionInfo", "QueryResult", "StoreReader", "Where"]

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
        self._open_hours = OpenHours()
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

    def heads(self) -> dict[str, OpenHour]:
        """The open hour of each shard, from its WAL's complete records."""
        out = {}
        for shard in self._backend.list_shards():
            out.update({f"{shard}/{h.period}": h for h in self._read_heads(shard)})
        return out

    def _read_heads(self, shard: str) -> list[OpenHour]:
        if self._wal_root is None:
            return []
        return self._open_hours.read(self._wal_root / shard / WAL_DIR)

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
            except Vanished:
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
        partials: list[Partial] = []
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
            raise Vanished(str(exc)) from exc
        for shard, _tier, _period, source in plan:
            if isinstance(source, OpenHour):
                src: Source = MemoryTable(table, source.table(table))
            else:
                assert isinstance(source, str)
                fp = prints.get(source)
                if fp is None or self.cache is None:
                    src = opened[source].table(table)
                else:
                    src = CachedTable(self._backend, self.cache, source, fp, table,
                                       opened.get(source))
            cov = coverage.setdefault(shard, np.zeros(n_steps, dtype=np.int64))
            part = read_source(src, start, end, step, group_by, where, names, cov)
            if isinstance(source, str) and not self._backend.still_there(source):
                raise Vanished(source)
            if part is not None:
                partials.append(part)
        keys, values = merge(partials, n_steps, group_by, names)
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
