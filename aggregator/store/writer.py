"""The store as the aggregator uses it: append intervals, seal hours, roll up, expire.

Durability follows Prometheus's TSDB. :meth:`Store.append` writes the interval as one
record to the write-ahead log of the open raw hour and fsyncs it before returning, then
adds it to the in-memory head. The first interval of a later hour seals the head into
an immutable partition (see :mod:`aggregator.store.backend` for the atomic commit) and
only then deletes its WAL. On open, WALs are replayed: complete records return to the
head, a torn tail is cut, and a WAL whose hour is already sealed is deleted. So a crash
at any instant loses at most the interval whose ``append`` had not returned, and a
sealed partition is never modified.

One writer per shard directory: shards (``shard="i/n"``) write disjoint sub-trees so
several aggregators can share one URL. Intervals arrive in time order; an interval for
an hour already closed raises :class:`LateIntervalError` (or is a no-op if that very
interval is stored), because rollups of closed hours may already exist.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aggregator.store.backend import fsync_dir, open_backend
from aggregator.store.errors import (
    LateIntervalError,
    StoreError,
    StoreInputError,
    StoreIOError,
)
from aggregator.store.head import Head
from aggregator.store.layout import (
    HOUR,
    RAW,
    TABLES,
    TIERS,
    WAL_DIR,
    WAL_SUFFIX,
    Retention,
    parse_shard,
    shard_dirname,
)
from aggregator.store.model import Block, validate_block
from aggregator.store.partition import write_partition
from aggregator.store.rollup import roll_up
from aggregator.store.stored import open_partitions
from aggregator.store.wal import WalScan, WalWriter, encode_record

__all__ = ["MaintainReport", "Store"]

log = logging.getLogger(__name__)


@dataclass
class MaintainReport:
    """What one :meth:`Store.maintain` did, for logs and counters."""

    sealed: list[str] = field(default_factory=list)
    rolled: list[tuple[str, str]] = field(default_factory=list)  # (tier, period)
    deleted: list[tuple[str, str]] = field(default_factory=list)  # (tier, period)


def wal_folder(root: Path, shard: str) -> Path:
    """Where a shard's WAL files live under a local root."""
    return root / shard / WAL_DIR


class Store:
    """The writer of one shard of a store at ``url`` (a folder, or an fsspec URL).

    ``step`` is the scrape interval (the raw tier's row step), ``seal_grace`` how long
    after the end of the open hour :meth:`maintain` waits for its last interval before
    sealing it anyway. WALs live under the store's folder; for an object-store URL give
    a local ``wal_dir``.
    """

    def __init__(self, url: str | os.PathLike[str], shard: str = "0/1", *, step: int = 60,
                 retention: Retention | None = None, wal_dir: str | os.PathLike[str] | None = None,
                 seal_grace: int = 300, storage_options: dict[str, Any] | None = None) -> None:
        try:
            self.shard = shard_dirname(*parse_shard(shard))
        except ValueError as exc:
            raise StoreInputError(str(exc)) from None
        if not isinstance(step, int) or not 0 < step <= HOUR:
            raise StoreInputError(f"step must be 1..3600 seconds, got {step!r}")
        self.step = step
        self.retention = retention or Retention()
        self.seal_grace = int(seal_grace)
        self._lock = threading.Lock()  # the head, the WAL and the seal
        self._maintaining = threading.Lock()  # rollups and retention
        self._head: Head | None = None
        self._wal: WalWriter | None = None
        self._closed = False
        try:
            self._backend = open_backend(url, storage_options)
            root = Path(wal_dir) if wal_dir is not None else self._backend.local_root
            if root is None:
                raise StoreInputError(f"{url}: an object-store URL needs a local wal_dir")
            self._wal_dir = wal_folder(root, self.shard)
            self._recover()
        except OSError as exc:
            raise StoreIOError(f"cannot open store {url}: {exc}") from exc

    # ---- open / recover -------------------------------------------------------------

    def _recover(self) -> None:
        """Clean crash leftovers, then replay WALs: seal all but the newest, reopen that."""
        self._backend.cleanup(self.shard)
        self._sealed = {t.name: self._backend.list_sealed(self.shard, t) for t in TIERS}
        self._frontier = max((t.bounds(max(self._sealed[t.name]))[1] for t in TIERS
                              if self._sealed[t.name]), default=0)
        if not self._wal_dir.is_dir():
            return
        for name in os.listdir(self._wal_dir):
            if name.endswith(WAL_SUFFIX + ".new"):
                os.remove(self._wal_dir / name)  # a WAL creation cut short: empty
        periods = sorted(n[:-len(WAL_SUFFIX)] for n in os.listdir(self._wal_dir)
                         if n.endswith(WAL_SUFFIX) and RAW.is_period(n[:-len(WAL_SUFFIX)]))
        for period in periods:
            path = self._wal_dir / f"{period}{WAL_SUFFIX}"
            if period in self._sealed[RAW.name]:
                self._drop_wal(path)
                continue
            scan, head = WalScan(path), Head(period)
            for record in scan:
                head.apply(record)
            if scan.good != scan.size:
                log.warning("%s: cutting %d bytes of torn WAL tail", path,
                            scan.size - scan.good)
            self._head, self._wal = head, WalWriter.reopen(path, scan.good)
            self._frontier = max(self._frontier, head.start)
            if period != periods[-1]:
                self._seal_head()

    def _drop_wal(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        fsync_dir(path.parent)

    # ---- append -----------------------------------------------------------------------

    def append(self, start: int, end: int, containers: Block, nodes: Block) -> None:
        """Store the interval ``[start, end)`` durably before returning.

        Idempotent: a ``start`` already stored is a no-op. Raises StoreInputError for a
        malformed block, LateIntervalError for an hour already closed, StoreIOError when
        the disk fails; in every case what was stored before is intact.
        """
        if not isinstance(start, int | np.integer) or not isinstance(end, int | np.integer):
            raise StoreInputError("start and end must be integer Unix seconds")
        start, end = int(start), int(end)
        if not 0 <= start < end <= start + HOUR:
            raise StoreInputError(f"bad interval [{start}, {end}): need 0 <= start < end "
                                  "and at most one hour long")
        clean = {"containers": validate_block("containers", containers),
                 "nodes": validate_block("nodes", nodes)}
        with self._lock:
            self._check_open()
            head = self._head
            if head is not None and start in head:
                return
            if start < self._frontier:
                if self._stored_in_sealed(start):
                    return
                raise LateIntervalError(f"interval {start} is in an hour already closed "
                                        f"(open from {self._frontier})")
            try:
                if head is not None and start >= head.end:
                    self._seal_head()
                if self._head is None:
                    period = RAW.period_of(start)
                    self._wal = WalWriter.create(self._wal_dir / f"{period}{WAL_SUFFIX}")
                    self._head = Head(period)
                    self._frontier = self._head.start
                record = self._head.prepare(start, end, clean)
                assert self._wal is not None
                self._wal.append(encode_record(record))
            except OSError as exc:
                raise StoreIOError(f"interval {start} not stored: {exc}") from exc
            self._head.apply(record)

    def _stored_in_sealed(self, start: int) -> bool:
        location = self._sealed[RAW.name].get(RAW.period_of(start))
        if location is None:
            return False
        try:
            (partition,) = open_partitions(self._backend, [location])
        except FileNotFoundError:  # expired meanwhile: too late either way
            return False
        return bool((partition.table("nodes").time == start).any())

    def _seal_head(self) -> None:
        """Commit the head as a raw partition, then drop its WAL (caller holds the lock)."""
        head, wal = self._head, self._wal
        assert head is not None and wal is not None
        if len(head):
            write_partition(self._backend, self.shard, RAW, head.period,
                            {name: head.table(name) for name in TABLES}, self.step)
            self._sealed[RAW.name] = self._backend.list_sealed(self.shard, RAW)
        wal.close()
        self._head = self._wal = None
        self._frontier = max(self._frontier, head.end)
        self._drop_wal(wal.path)

    # ---- maintenance ------------------------------------------------------------------

    def maintain(self, now: int) -> MaintainReport:
        """Seal a stale head, build due rollups, delete expired partitions. Idempotent.

        Rollups can take seconds on a large cluster, so they run without blocking
        :meth:`append`: they only read partitions before the watermark (immutable by
        then) and write upper tiers, which appends never touch. Two maintenances do not
        run at once.
        """
        report = MaintainReport()
        with self._maintaining:
            with self._lock:
                self._check_open()
                try:
                    head = self._head
                    if head is not None and now >= head.end + self.seal_grace:
                        self._seal_head()
                        report.sealed.append(head.period)
                except OSError as exc:
                    raise StoreIOError(f"sealing the stale hour failed: {exc}") from exc
                watermark = self._head.start if self._head is not None else self._frontier
            try:
                for lower, upper in itertools.pairwise(TIERS):
                    for period in roll_up(self._backend, self.shard, lower, upper, watermark):
                        report.rolled.append((upper.name, period))
                self._expire(now, report)
                with self._lock:  # listed under the lock: a seal may be adding to it
                    self._sealed = {t.name: self._backend.list_sealed(self.shard, t)
                                    for t in TIERS}
            except OSError as exc:
                raise StoreIOError(f"maintenance failed: {exc}") from exc
        return report

    def _expire(self, now: int, report: MaintainReport) -> None:
        """Delete partitions past retention, but never one not yet rolled up."""
        for i, tier in enumerate(TIERS):
            upper = TIERS[i + 1] if i + 1 < len(TIERS) else None
            upper_sealed = self._backend.list_sealed(self.shard, upper) if upper else {}
            for period, location in self._backend.list_sealed(self.shard, tier).items():
                start, end = tier.bounds(period)
                if end > now - self.retention.of(tier):
                    continue
                if upper is not None and upper.period_of(start) not in upper_sealed:
                    continue  # its rollup is not built yet (period not over)
                self._backend.delete(self.shard, tier, period, location)
                report.deleted.append((tier.name, period))

    # ---- state ------------------------------------------------------------------------

    def last_start(self) -> int | None:
        """Start of the latest interval stored (head or newest raw partition), or None."""
        with self._lock:
            if self._head is not None and len(self._head):
                return self._head.last_start
            raw = self._sealed[RAW.name]
            if not raw:
                return None
            (partition,) = open_partitions(self._backend, [raw[max(raw)]])
            time = partition.table("nodes").time
            return int(time.max()) if len(time) else None

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def close(self) -> None:
        """Release the WAL file; the head stays in its WAL for the next open."""
        with self._lock:
            if self._wal is not None:
                self._wal.close()
            self._wal = self._head = None
            self._closed = True

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
