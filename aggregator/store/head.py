"""The open raw hour in memory: what the WAL holds, arranged for sealing and reading.

The head assigns each series a small id on first sight (its key is the identity plus
non-empty labels, see :func:`~aggregator.store.model.series_keys`), keeps the intervals
as (ids, values) rows, and builds the partition's ``(time, series)`` arrays on demand.

Rows are kept compressed (Blosc/LZ4, losslessly: costs come back bit for bit, NaN too):
at 300,000 containers an interval's float64 values take 34 MB, so a raw hour held as is
would take 2 GB. Usage values are already rounded to a few mantissa bits, which
bit-shuffling turns into zero runs; exact values (costs, requests) are byte-shuffled.
Sealing and reading build one measure's ``(time, series)`` array at a time from them
(:meth:`Head.table` hands out a lazy mapping), so the peak is about one such array.

The same class replays a WAL, in the writer after a restart and in a reader that shows
the open hour, so both see exactly what the log says.

Changing the head is two steps: :meth:`Head.prepare` turns a validated interval into
the WAL record without touching the head, and :meth:`Head.apply` adds a record that is
durable. If writing the record fails, the head is as it was.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from numcodecs import Blosc

from aggregator.store.errors import CorruptStoreError
from aggregator.store.layout import RAW, TABLES, USAGE_MEASURES, quantise
from aggregator.store.model import TableData, series_keys
from aggregator.store.wal import WalRecord, WalTable

__all__ = ["Head"]

Clean = tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]

#: LZ4 rather than zstd: an interval is compressed on every append, and again each time a
#: reader replays the WAL. At 300,000 containers LZ4 takes 30 ms (0.25 of the float64
#: bytes), zstd level 1 62 ms (0.17); the sealed partition gets zstd anyway.
_USAGE_CODEC = Blosc(cname="lz4", clevel=5, shuffle=Blosc.BITSHUFFLE)
_EXACT_CODEC = Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE)
_IDS_CODEC = Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE)


def _codec(measure: str) -> Blosc:
    """Bit-shuffle suits rounded usage (zero low bits), byte-shuffle exact values."""
    return _USAGE_CODEC if measure in USAGE_MEASURES else _EXACT_CODEC


@dataclass(frozen=True)
class _Row:
    """One interval of one table, compressed.

    ``first`` is set when the rows are series ``first, first + 1, …`` in order (the usual
    case once a cluster's series are known: the cost engine emits them in a stable order),
    so no ids are kept and the values are copied in as a slice, not scattered.
    """

    n: int
    first: int | None
    ids: bytes | None  # int32, compressed; None when ``first`` is set
    values: dict[str, bytes]  # float64, compressed, per measure given

    @staticmethod
    def pack(ids: np.ndarray, measures: Mapping[str, np.ndarray]) -> _Row:
        """Compress one table of a record (lossless: the bytes come back as they were)."""
        n = len(ids)
        first = int(ids[0]) if n else 0
        consecutive = not n or bool((np.diff(ids) == 1).all())
        return _Row(n, first if consecutive else None,
                    None if consecutive else _IDS_CODEC.encode(ids.astype("<i4")),
                    {m: _codec(m).encode(np.ascontiguousarray(v, dtype="<f8"))
                     for m, v in measures.items()})

    def where(self) -> slice | np.ndarray:
        """The series (columns of the partition's arrays) of the rows, in order."""
        if self.first is not None:
            return slice(self.first, self.first + self.n)
        out = np.empty(self.n, dtype="<i4")
        _IDS_CODEC.decode(self.ids, out=out)
        return out

    def values_into(self, measure: str, out: np.ndarray) -> np.ndarray:
        """``measure`` of every row, decompressed into ``out`` (float64, length n)."""
        if self.n:  # Blosc refuses to decompress an empty frame into ``out``
            _codec(measure).decode(self.values[measure], out=out)
        return out

    @property
    def nbytes(self) -> int:
        """Bytes held (compressed), for tests and benchmarks."""
        return len(self.ids or b"") + sum(len(b) for b in self.values.values())


class _TableSeries:
    """The series of one table seen this hour, by id, with their identity columns."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.index: dict[str, int] = {}
        self.chunks: list[dict[str, np.ndarray]] = []  # in id order
        self.count = 0
        self._columns: tuple[int, dict[str, np.ndarray]] | None = None

    def ids_of(self, keys: np.ndarray) -> np.ndarray:
        """Ids of a block's rows by their series keys, -1 for series not seen this hour."""
        return np.fromiter(map(self.index.get, keys, repeat(-1)), np.int64, len(keys))

    def new_keys(self, first: int, columns: dict[str, np.ndarray]) -> np.ndarray | None:
        """The keys of series ``first…`` a WAL record defines (checked; nothing changes)."""
        if first != self.count:
            raise CorruptStoreError(f"{self.table}: WAL defines series {first}, "
                                    f"expected {self.count}")
        return series_keys(self.table, columns) if columns else None

    def add(self, keys: np.ndarray | None, columns: dict[str, np.ndarray]) -> None:
        """Define the series of :meth:`new_keys` from their identity columns."""
        if keys is None:
            return
        self.index.update(zip(keys.tolist(), range(self.count, self.count + len(keys)),
                              strict=True))
        self.chunks.append(columns)
        self.count += len(keys)

    def columns(self) -> dict[str, np.ndarray]:
        """Identity and label columns of every series, "" for labels a chunk lacked.

        Built once per series count (a reader following the open hour asks at every
        query); the arrays are shared, so they are read-only.
        """
        if self._columns is not None and self._columns[0] == self.count:
            return self._columns[1]
        out = self._build_columns()
        for v in out.values():
            v.flags.writeable = False
        self._columns = (self.count, out)
        return out

    def _build_columns(self) -> dict[str, np.ndarray]:
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


class _Measures(Mapping[str, np.ndarray]):
    """A table's measures over the head's intervals, each built when looked up.

    Building one ``(time, series)`` float64 array at a time and letting the caller drop
    it keeps sealing a large hour to about one such array; a lookup builds it anew (the
    caller keeps it if it needs it twice). The rows are a snapshot: later appends to the
    head do not show.
    """

    def __init__(self, names: tuple[str, ...], rows: list[_Row | None], n: int) -> None:
        self._names = names
        self._rows = rows
        self._n = n

    def __getitem__(self, measure: str) -> np.ndarray:
        if measure not in self._names:
            raise KeyError(measure)
        out = np.full((len(self._rows), self._n), np.nan)
        buf = np.empty(max((row.n for row in self._rows if row), default=0))
        for r, row in enumerate(self._rows):
            if row is None or measure not in row.values:
                continue
            where = row.where()
            if isinstance(where, slice):  # decompress straight into place
                row.values_into(measure, out[r, where])
            else:
                out[r, where] = row.values_into(measure, buf[:row.n])
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class Head:
    """Intervals of one raw hour, not yet sealed."""

    def __init__(self, period: str) -> None:
        self.period = period
        self.start, self.end = RAW.bounds(period)
        self.series = {name: _TableSeries(name) for name in TABLES}
        self.rows: dict[int, tuple[int, dict[str, _Row]]] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, start: int) -> bool:
        return start in self.rows

    @property
    def last_start(self) -> int | None:
        """Start of the latest interval held, None when empty."""
        return max(self.rows) if self.rows else None

    @property
    def nbytes(self) -> int:
        """Bytes of interval values held (compressed), without the series tables."""
        return sum(row.nbytes for _, rows in self.rows.values() for row in rows.values())

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
        """Add a durable record (just appended, or replayed from the WAL).

        All or nothing: the record is checked and compressed before the head changes, so
        a failure (a corrupt record, no memory for the compression) leaves it as it was.
        """
        if not self.start <= record.start < self.end:
            raise CorruptStoreError(f"WAL of {self.period} holds interval {record.start}")
        staged = []
        for name, t in record.tables.items():
            series = self.series[name]
            keys = series.new_keys(t.first_new, t.new_series)
            known = series.count + (0 if keys is None else len(keys))
            if len(t.ids) and (t.ids.min() < 0 or t.ids.max() >= known):
                raise CorruptStoreError(f"{self.period}: record refers to unknown series")
            staged.append((series, keys, t.new_series))
        rows = None
        if record.start not in self.rows:  # a replayed duplicate only defines series
            rows = {name: _Row.pack(t.ids, t.measures) for name, t in record.tables.items()}
        for series, keys, columns in staged:
            series.add(keys, columns)
        if rows is not None:
            self.rows[record.start] = (record.end, rows)

    def table(self, name: str) -> TableData:
        """The table over the intervals held, as a partition would store it.

        Its ``measures`` is a lazy mapping (see :class:`_Measures`): each lookup builds
        that measure's array, so a caller going through them one by one holds one at a time.
        """
        starts = sorted(self.rows)
        seconds = np.array([self.rows[s][0] - s for s in starts], dtype=np.int64)
        rows = [self.rows[s][1].get(name) for s in starts]
        return TableData(np.array(starts, dtype=np.int64), seconds, self.series[name].columns(),
                         _Measures(TABLES[name].measures, rows, self.series[name].count))
