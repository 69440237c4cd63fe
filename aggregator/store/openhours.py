"""The open hours as a reader sees them: WAL files replayed incrementally across queries.

A reader showing the open hour used to replay its whole WAL on every query: 200 ms at
10,000 containers late in the hour, seconds at 300,000. A WAL only grows (whole records
appended; a writer restarting after a crash cuts a torn tail the reader never took) until
the hour is sealed and the file deleted, so the replayed head is kept with the position
it reached, and the next query applies only what was appended since. A file that is not
the one replayed (its first or last replayed frame is not where it was, or it is
shorter; inode numbers are reused, so they cannot tell) is replayed from its start.

Queries may run in several threads: heads are updated and snapshotted under one lock, and
a query gets a :class:`OpenHour`, a snapshot that later appends do not change.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from aggregator.store.head import Head
from aggregator.store.layout import RAW, TABLES, WAL_SUFFIX
from aggregator.store.model import TableData
from aggregator.store.wal import WalPosition, WalScan

__all__ = ["OpenHour", "OpenHours"]


@dataclass(frozen=True)
class OpenHour:
    """One open hour's tables as its WAL's complete records had them at the snapshot."""

    period: str
    intervals: int
    tables: dict[str, TableData]

    def __len__(self) -> int:
        return self.intervals

    def table(self, name: str) -> TableData:
        """The table as a partition would store it (measures built on lookup)."""
        return self.tables[name]


@dataclass
class _Replay:
    head: Head
    position: WalPosition | None = None  # after the last record applied


class OpenHours:
    """The replayed WALs of one reader, by file."""

    def __init__(self, head_type: type[Head] = Head) -> None:
        self._head_type = head_type  # a seam for tests
        self._lock = threading.Lock()
        self._replays: dict[Path, _Replay] = {}

    def read(self, folder: Path) -> list[OpenHour]:
        """Snapshots of the open hours whose WALs are in ``folder`` (sorted by period)."""
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            names = []
        paths = [folder / n for n in names
                 if n.endswith(WAL_SUFFIX) and RAW.is_period(n[:-len(WAL_SUFFIX)])]
        out = []
        with self._lock:
            for stale in [p for p in self._replays if p.parent == folder and p not in paths]:
                del self._replays[stale]  # sealed: its partition is listed instead
            for path in paths:
                hour = self._catch_up(path)
                if hour is not None:
                    out.append(hour)
        return out

    def _catch_up(self, path: Path) -> OpenHour | None:
        """Apply the records appended since the last read (caller holds the lock)."""
        period = path.name[:-len(WAL_SUFFIX)]
        replay = self._replays.get(path) or _Replay(self._head_type(period))
        scan = WalScan(path, replay.position)
        records = iter(scan)
        try:
            first = next(records, None)  # opens the file and checks it is the one followed
            if scan.restarted:  # another file at this path: from its start
                replay = _Replay(self._head_type(period))
            for record in chain([] if first is None else [first], records):
                replay.head.apply(record)
        except FileNotFoundError:
            self._replays.pop(path, None)
            return None  # sealed meanwhile: the partition listing (taken next) has it
        except BaseException:
            self._replays.pop(path, None)  # a half-applied replay is dropped: anew next time
            raise
        replay.position = scan.position() or replay.position
        self._replays[path] = replay
        head = replay.head
        return OpenHour(head.period, len(head), {name: head.table(name) for name in TABLES})
