"""The open raw hour in memory: what the WAL holds, arranged for sealing and reading.

The head assigns each series a small id on first sight (its key is the identity plus
non-empty labels, see :func:`~aggregator.store.model.series_keys`), keeps the intervals
as (ids, values) rows, and builds the partition's ``(time, series)`` arrays on demand.
The same class replays a WAL, in the writer after a restart and in a reader that shows
the open hour, so both see exactly what the log says.

Changing the head is two steps: :meth:`Head.prepare` turns a validated interval into
the WAL record without touching the head, and :meth:`Head.apply` adds a record that is
durable. If writing the record fails, the head is as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import repeat

import numpy as np

from aggregator.store.errors import CorruptStoreError
from aggregator.store.layout import RAW, TABLES, USAGE_MEASURES, quantise
from aggregator.store.model import TableData, series_keys
from aggregator.store.wal import WalRecord, WalTable

__all__ = ["Head"]

Clean = tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]


class _TableSeries:
    """The series of one table seen this hour, by id, with their identity columns."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.index: dict[str, int] = {}
        self.chunks: list[dict[str, np.ndarray]] = []  # in id order
        self.count = 0

    def ids_of(self, keys: np.ndarray) -> np.ndarray:
        """Ids of a block's rows by their series keys, -1 for series not seen this hour."""
        return np.fromiter(map(self.index.get, keys, repeat(-1)), np.int64, len(keys))

    def add(self, first: int, columns: dict[str, np.ndarray]) -> None:
        """Define series ``first…`` from their identity columns (from a WAL record)."""
        if first != self.count:
            raise CorruptStoreError(f"{self.table}: WAL defines series {first}, "
                                    f"expected {self.count}")
        if not columns:
            return
        keys = series_keys(self.table, columns)
        self.index.update(zip(keys.tolist(), range(first, first + len(keys)), strict=True))
        self.chunks.append(columns)
        self.count += len(keys)

    def columns(self) -> dict[str, np.ndarray]:
        """Identity and label columns of every series, "" for labels a chunk lacked."""
        spec = TABLES[self.table]
        names = list(spec.identity) + sorted(
            {c for ch in self.chunks for c in ch} - set(spec.identity))
        out = {}
        for name in names:
            parts = []
            for ch in self.chunks:
                part = ch.get(name)
                if part is None:
                    part = np.empty(len(next(iter(ch.values()))), dtype=object)
                    part[:] = ""
                parts.append(part)
            out[name] = np.concatenate(parts) if parts else np.empty(0, dtype=object)
        return out


class Head:
    """Intervals of one raw hour, not yet sealed."""

    def __init__(self, period: str) -> None:
        self.period = period
        self.start, self.end = RAW.bounds(period)
        self.series = {name: _TableSeries(name) for name in TABLES}
        self.rows: dict[int, tuple[int, dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]]] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, start: int) -> bool:
        return start in self.rows

    @property
    def last_start(self) -> int | None:
        """Start of the latest interval held, None when empty."""
        return max(self.rows) if self.rows else None

    def prepare(self, start: int, end: int, tables: Mapping[str, Clean]) -> WalRecord:
        """The WAL record of a validated interval; the head is not changed."""
        out = {}
        for name, (identity, measures, keys) in tables.items():
            series = self.series[name]
            ids = series.ids_of(keys)
            new = np.flatnonzero(ids < 0)
            ids[new] = series.count + np.arange(len(new))
            cols = {c: v[new] for c, v in identity.items()} if len(new) else {}
            values = {m: quantise(v) if m in USAGE_MEASURES else v for m, v in measures.items()}
            out[name] = WalTable(series.count, cols, ids, values)
        return WalRecord(start, end, out)

    def apply(self, record: WalRecord) -> None:
        """Add a durable record (just appended, or replayed from the WAL)."""
        if not self.start <= record.start < self.end:
            raise CorruptStoreError(f"WAL of {self.period} holds interval {record.start}")
        rows = {}
        for name, t in record.tables.items():
            series = self.series[name]
            series.add(t.first_new, t.new_series)
            if len(t.ids) and (t.ids.min() < 0 or t.ids.max() >= series.count):
                raise CorruptStoreError(f"{self.period}: record refers to unknown series")
            rows[name] = (t.ids, t.measures)
        if record.start not in self.rows:  # a replayed duplicate only defines series
            self.rows[record.start] = (record.end, rows)

    def table(self, name: str) -> TableData:
        """The table over the intervals held, as a partition would store it."""
        spec = TABLES[name]
        starts = np.array(sorted(self.rows), dtype=np.int64)
        n = self.series[name].count
        measures = {m: np.full((len(starts), n), np.nan) for m in spec.measures}
        seconds = np.empty(len(starts), dtype=np.int64)
        for r, start in enumerate(starts.tolist()):
            end, rows = self.rows[start]
            seconds[r] = end - start
            if name not in rows:
                continue
            ids, values = rows[name]
            for m, v in values.items():
                measures[m][r, ids] = v
        return TableData(starts, seconds, self.series[name].columns(), measures)
