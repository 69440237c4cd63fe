"""Folding one source of a query into per-step, per-group values, and merging sources.

A source is a sealed partition's table (seen through the reader's cache, so grouping
and per-step reductions are computed once per partition and reused) or the open hour
replayed from its WAL. :func:`read_source` reduces its rows to the query's steps and
its series to the query's groups; :func:`merge` maps every source's local groups onto
the sorted global groups. :class:`~aggregator.store.reader.StoreReader` plans which
sources to read and calls these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from aggregator.measures import ROLLUP
from aggregator.store.cache import PartitionCache
from aggregator.store.errors import QueryError
from aggregator.store.model import join_columns
from aggregator.store.reduce import Groups, How, merge_into, reduce_axis
from aggregator.store.stored import LazyColumns, MemoryTable, StoredTable, open_partitions

__all__ = ["CachedTable", "Partial", "Source", "Vanished", "Where", "merge", "read_source"]

Where = Callable[[Mapping[str, np.ndarray]], np.ndarray]


class Vanished(Exception):
    """A partition was deleted while being read; the query starts again."""


@dataclass
class Partial:
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


class CachedTable:
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
                raise Vanished(str(exc)) from exc
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

    def folded(self, group_by: tuple[str, ...], names: list[str], rows: slice,
               by_step: Groups) -> dict[str, np.ndarray]:
        """Each measure per step and per group (no filter), cached: a dashboard asking
        the same question again costs only the merge of these small arrays."""
        shape = (group_by, rows.start, rows.stop, by_step.starts.tobytes())
        keys = {m: (*self._key, "folded", m, *shape) for m in names}
        out = {m: self._cache.get(k) for m, k in keys.items()}
        missing = [m for m, v in out.items() if v is None]
        if missing:
            grouped = self.grouped(group_by)
            for m, v in _fold(self.per_step(missing, rows, by_step), grouped.by_series,
                              missing).items():
                v = v.copy()  # a view would keep the whole stack alive behind its entry
                self._cache.put(keys[m], v)
                out[m] = v
        return out  # type: ignore[return-value]


Source = StoredTable | MemoryTable | CachedTable


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


def read_source(src: Source, start: int, end: int, step: int, group_by: tuple[str, ...],
                where: Where | None, names: list[str], coverage: np.ndarray) -> Partial | None:
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
    if isinstance(src, CachedTable) and where is None:
        grouped = src.grouped(group_by)
        values = src.folded(group_by, names, rows, by_step)
    elif isinstance(src, CachedTable):
        grouped = _group(src.table, group_by, where)
        if grouped is None:
            return None
        values = _fold(src.per_step(names, rows, by_step), grouped.by_series, names)
    else:
        grouped = _group(src, group_by, where)
        if grouped is None:
            return None
        values = _fold(_per_step(src, names, rows, by_step), grouped.by_series, names)
    return Partial(by_step.codes, grouped.keys, grouped.key_columns, values)


def _fold(per_step: dict[str, np.ndarray], by_series: Groups, names: list[str]
          ) -> dict[str, np.ndarray]:
    """``(steps, groups)`` per measure from ``(steps, series)``: one reduction per kind."""
    values: dict[str, np.ndarray] = {}
    for how, ms in _by_rollup(names):
        stacked = np.stack([per_step[m] for m in ms])
        values.update(zip(ms, reduce_axis(stacked, by_series, how, axis=2), strict=True))
    return values


def merge(partials: list[Partial], n_steps: int, group_by: tuple[str, ...],
           names: list[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Map each source's local groups onto the sorted global groups and combine."""
    if not partials:
        return ({c: np.empty(0, dtype=object) for c in group_by},
                {m: np.full((n_steps, 0), np.nan) for m in names})
    all_keys = np.concatenate([p.keys for p in partials])
    keys, first, codes = np.unique(all_keys, return_index=True, return_inverse=True)
    key_columns = {c: np.concatenate([p.key_columns[c] for p in partials])[first]
                   for c in group_by}
    kinds = _by_rollup(names)
    out = {how: np.full((len(ms), n_steps, len(keys)), np.nan) for how, ms in kinds}
    offset = 0
    for p in partials:
        gcodes = codes[offset:offset + len(p.keys)]
        offset += len(p.keys)
        for how, ms in kinds:
            merge_into(out[how], p.steps, gcodes, np.stack([p.values[m] for m in ms]), how)
    values = {m: a for how, ms in kinds for m, a in zip(ms, out[how], strict=True)}
    return key_columns, values


def _by_rollup(names: list[str]) -> list[tuple[How, list[str]]]:
    """The measures grouped by how they combine (sum, max), each kind in ``names`` order."""
    kinds: dict[How, list[str]] = {}
    for m in names:
        kinds.setdefault(ROLLUP[m], []).append(m)
    return list(kinds.items())
