"""Read sealed partitions, in few trips to zarr's event loop, and the open hour alike.

Every zarr call from synchronous code is a round trip to zarr's I/O thread, which costs
more than reading a small array; so a partition is opened (metadata of all its arrays,
and its row times) in one trip, several partitions at once, and then columns and measures
are each fetched in one trip per table. :class:`MemoryTable` puts the open hour (the WAL's
head) behind the same interface, so a query treats both the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from zarr.core.array import AsyncArray
from zarr.core.group import AsyncGroup
from zarr.core.sync import sync

from aggregator.store.backend import Backend
from aggregator.store.errors import CorruptStoreError
from aggregator.store.layout import (
    ATTRS_KEY,
    FORMAT_VERSION,
    LABEL_PREFIX,
    SECONDS,
    TABLES,
    TIME,
    validate_column_name,
)
from aggregator.store.model import TableData

__all__ = ["LazyColumns", "MemoryTable", "StoredPartition", "StoredTable", "open_partitions",
           "read_columns"]


def _blank(n: int) -> np.ndarray:
    out = np.empty(n, dtype=object)
    out[:] = ""
    return out


def _absent_label(table: str, name: str, n: int) -> np.ndarray:
    """All "" for a well-formed label column a table lacks; KeyError for anything else."""
    if name.startswith(LABEL_PREFIX) and validate_column_name(table, name):
        return _blank(n)
    raise KeyError(name)


class LazyColumns(Mapping[str, np.ndarray]):
    """A table's series columns, each loaded on first use (what ``where`` receives).

    A ``label_<key>`` column the table lacks reads as all "" (no pod had the label); any
    other unknown name is a KeyError.
    """

    def __init__(self, table: StoredTable | MemoryTable) -> None:
        self._table = table
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self.prefetch([name])
        return self._cache[name]

    def prefetch(self, names: Sequence[str]) -> None:
        """Load several columns in one trip."""
        missing = [n for n in names if n not in self._cache]
        if missing:
            self._cache.update(self._table.read_columns(missing))

    def __iter__(self) -> Iterator[str]:
        return iter(self._table.column_names)

    def __len__(self) -> int:
        return len(self._table.column_names)


class StoredTable:
    """One table of a sealed partition: row times, series columns, measures by rows."""

    def __init__(self, name: str, attrs: Mapping[str, Any], arrays: dict[str, AsyncArray],
                 time: np.ndarray, seconds: np.ndarray, where: str) -> None:
        self.name = name
        self._arrays = arrays
        try:
            self.n_series = int(attrs["series"])
            labels = [str(c) for c in attrs["labels"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptStoreError(f"{where}/{name}: bad table attributes: {exc}") from None
        if not all(validate_column_name(name, c) for c in labels):
            raise CorruptStoreError(f"{where}/{name}: bad label columns {labels}")
        self.column_names = (*TABLES[name].identity, *labels)
        expected = {TIME, SECONDS, *self.column_names, *TABLES[name].measures}
        if set(arrays) != expected:
            raise CorruptStoreError(f"{where}/{name}: arrays {sorted(set(arrays) ^ expected)} "
                                    "missing or unexpected")
        self.time = np.asarray(time, dtype=np.int64)
        self.seconds = np.asarray(seconds, dtype=np.int64)
        self.columns = LazyColumns(self)

    def _column_jobs(self, names: Sequence[str]) -> list[Any]:
        return [self._arrays[n].getitem(Ellipsis) for n in names if n in self.column_names]

    def _columns_from(self, names: Sequence[str], values: list[Any]) -> dict[str, np.ndarray]:
        got = iter(values)
        return {n: np.asarray(next(got)).astype(object) if n in self.column_names
                else _absent_label(self.name, n, self.n_series) for n in names}

    def read_columns(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Several series columns as object arrays of str, in one trip."""
        return read_columns([self], names)[0]

    def read_many(self, measures: Sequence[str], rows: slice = slice(None)) -> dict[str,
                                                                                   np.ndarray]:
        """``(rows, series)`` float64 of several measures, in one trip."""
        for m in measures:
            if m not in TABLES[self.name].measures:
                raise KeyError(m)
        values = _gather([self._arrays[m].getitem((rows, slice(None))) for m in measures])
        return {m: np.asarray(v, dtype=np.float64) for m, v in zip(measures, values,
                                                                   strict=True)}

    def load(self) -> TableData:
        """The whole table in memory."""
        return TableData(self.time, self.seconds, self.read_columns(self.column_names),
                         self.read_many(TABLES[self.name].measures))


def read_columns(tables: Sequence[StoredTable], names: Sequence[str]) -> list[dict[str,
                                                                                    np.ndarray]]:
    """The same columns of several tables, all in one trip."""
    jobs = [t._column_jobs(names) for t in tables]
    flat = _gather([j for js in jobs for j in js])
    out, pos = [], 0
    for table, js in zip(tables, jobs, strict=True):
        out.append(table._columns_from(names, flat[pos:pos + len(js)]))
        pos += len(js)
    return out


class MemoryTable:
    """A :class:`TableData` (the open hour) behind the interface of :class:`StoredTable`."""

    def __init__(self, name: str, data: TableData) -> None:
        self.name = name
        self.data = data
        self.n_series = data.n_series
        self.column_names = tuple(data.identity)
        self.time = data.time
        self.seconds = data.seconds
        self.columns = LazyColumns(self)

    def read_columns(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Like :meth:`StoredTable.read_columns`."""
        return {n: self.data.identity[n] if n in self.data.identity
                else _absent_label(self.name, n, self.n_series) for n in names}

    def read_many(self, measures: Sequence[str], rows: slice = slice(None)) -> dict[str,
                                                                                   np.ndarray]:
        """Like :meth:`StoredTable.read_many`."""
        return {m: self.data.measures[m][rows, :] for m in measures}


class StoredPartition:
    """A sealed partition, opened read-only: attributes, array metadata, row times."""

    def __init__(self, location: str, info: dict[str, Any],
                 tables: dict[str, StoredTable]) -> None:
        self.location = location
        self.info = info
        self._tables = tables

    def table(self, name: str) -> StoredTable:
        """One of :data:`~aggregator.store.layout.TABLES`."""
        return self._tables[name]


async def _open(backend: Backend, location: str) -> StoredPartition:
    group = await AsyncGroup.open(backend.open_store(location), zarr_format=3,
                                  use_consolidated=False)
    info = dict(group.attrs).get(ATTRS_KEY)
    if not isinstance(info, dict) or info.get("format") != FORMAT_VERSION:
        raise CorruptStoreError(f"{location}: not a kubetally partition of format "
                                f"{FORMAT_VERSION}")
    members = {key: node async for key, node in group.members(max_depth=None)}
    parts = {}
    for name in TABLES:
        sub = members.get(name)
        if not isinstance(sub, AsyncGroup):
            raise CorruptStoreError(f"{location}: no {name} group")
        prefix = name + "/"
        arrays = {k[len(prefix):]: v for k, v in members.items()
                  if k.startswith(prefix) and isinstance(v, AsyncArray)}
        if TIME not in arrays or SECONDS not in arrays:
            raise CorruptStoreError(f"{location}/{name}: no {TIME} or {SECONDS} array")
        time, seconds = await asyncio.gather(arrays[TIME].getitem(Ellipsis),
                                             arrays[SECONDS].getitem(Ellipsis))
        parts[name] = (dict(sub.attrs), arrays, time, seconds)
    tables = {name: StoredTable(name, a, arr, t, s, location)
              for name, (a, arr, t, s) in parts.items()}
    return StoredPartition(location, info, tables)


def open_partitions(backend: Backend, locations: Sequence[str]) -> list[StoredPartition]:
    """Open several partitions concurrently, in one trip.

    FileNotFoundError (a zarr ``GroupNotFoundError`` is one) when a partition is gone.
    """
    async def run() -> list[StoredPartition]:
        return list(await asyncio.gather(*(_open(backend, loc) for loc in locations)))
    return sync(run())


def _gather(jobs: list[Any]) -> list[Any]:
    async def run() -> list[Any]:
        return list(await asyncio.gather(*jobs))
    return sync(run()) if jobs else []
