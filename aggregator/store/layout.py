"""The on-disk layout of the store: the one place that names tiers, periods, paths and codecs.

The writer, the reader and any outside tool (xarray, Dask, a notebook) agree through
this module only. A store is a tree under one URL::

    <url>/
      shard-0-of-1/                  one sub-tree per writer shard (disjoint series)
        wal/2024-03-05T13.wal        write-ahead log of the open raw hour (local disk)
        raw/2024-03-05T12/           one immutable partition = one Zarr v3 group
        raw/.tmp-2024-03-05T13-…/    a partition being written (never read)
        hourly/2024-03-04/           rolled up from the raw hours of that UTC day
        daily/2024-02/               rolled up from the hourly days of that UTC month

On object stores (any fsspec URL) a rename is not atomic, so a partition is written to
``<tier>/<period>.<token>/`` and committed by writing ``<tier>/<period>.<token>.committed``
last; readers list only committed partitions. Each partition group holds one sub-group
per table (``containers``, ``nodes``), each with:

* ``time`` (int64, ``(time,)``): Unix seconds of the start of each stored row;
* ``seconds`` (int64, ``(time,)``): seconds of data the row covers (raw: end − start;
  rolled up: the sum of the rows below), from which queries report coverage;
* one variable-length UTF-8 array ``(series,)`` per identity column and per ``label_<key>``
  column: the partition's own series table;
* one float64 array ``(time, series)`` per measure of :mod:`aggregator.measures`, NaN where
  a series has no sample.

Arrays are chunked whole along time (a partition has at most 60, 24 or 31 rows) and
by up to ~4 MiB of series, and chunk files sit in their array's folder (``c.0.0``).

Codecs, chosen with ``python bench/store_bench.py codecs`` on one simulated hour of
10,000 containers (bytes per sample, usage / exact measures): every measure chunk is
transposed to series-major order (a series' slowly varying values become neighbours),
then Blosc/zstd level 5, bit-shuffled for usage measures (1.26 / byte-shuffle 1.58) and
byte-shuffled for the rest (0.40 / bit-shuffle 0.50); without the transpose, 1.65 / 0.89;
zstd level 9 saves 10% more at 30× the write time. Usage measures are first rounded to
:data:`USAGE_KEEPBITS` mantissa bits (relative error ≤ 2⁻¹⁴ ≈ 6.1e-5, below the 1e-4 the
product promises; unrounded they cost 5.2 bytes); costs, requests, charged hours and
minutes stay exact float64 so sums are exact to the cent. The writer rounds, so only
codecs of the Zarr v3 specification appear in the metadata and any Zarr v3 reader opens a
partition. A simulated day of 10,000 containers at 60 s (``bench/store_bench.py day``)
takes 0.645 bytes per stored float sample in the raw tier, series tables and metadata
included (132 MB a day), and 0.87 bytes per sample in the hourly tier.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from zarr.codecs import BloscCodec, TransposeCodec, ZstdCodec

from aggregator.frame import CONTAINER_IDENTITY, NODE_IDENTITY
from aggregator.measures import CONTAINER_MEASURES, NODE_MEASURES

__all__ = ["ATTRS_KEY", "CHUNK_KEY_ENCODING", "COMMITTED_SUFFIX", "DAILY", "DAY",
           "FORMAT_VERSION", "HOUR", "HOURLY", "LABEL_PREFIX", "RAW", "SECONDS", "TABLES",
           "TIERS", "TIME", "TMP_PREFIX", "TRASH_PREFIX", "USAGE_KEEPBITS", "USAGE_MEASURES",
           "WAL_DIR", "WAL_SUFFIX", "Retention", "TableSpec", "Tier", "measure_codecs",
           "parse_shard", "quantise", "series_chunk", "shard_dirname", "shard_of_dirname",
           "string_codecs", "tier_named", "validate_column_name"]

FORMAT_VERSION = 1
HOUR = 3600
DAY = 86400

#: Array names shared by every table group.
TIME = "time"
SECONDS = "seconds"
#: Pod-label columns of the containers table start with this.
LABEL_PREFIX = "label_"
_LABEL_RE = re.compile(r"label_[A-Za-z_][A-Za-z0-9_]{0,200}")
#: Folder of a shard's write-ahead logs.
WAL_DIR = "wal"
WAL_SUFFIX = ".wal"
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
COMMITTED_SUFFIX = ".committed"
#: Group attribute holding the partition's description.
ATTRS_KEY = "kubetally"


@dataclass(frozen=True)
class TableSpec:
    """What a table stores: identity columns, whether it takes labels, and measures."""

    name: str
    identity: tuple[str, ...]
    labels: bool
    measures: tuple[str, ...]


TABLES: dict[str, TableSpec] = {
    "containers": TableSpec("containers", CONTAINER_IDENTITY, True, tuple(CONTAINER_MEASURES)),
    "nodes": TableSpec("nodes", NODE_IDENTITY, False, tuple(NODE_MEASURES)),
}
for _spec in TABLES.values():  # array names of one group must not collide
    _names = [TIME, SECONDS, *_spec.identity, *_spec.measures]
    assert len(set(_names)) == len(_names), _spec.name
    assert not any(n.startswith(LABEL_PREFIX) for n in _names), _spec.name


def validate_column_name(table: str, name: str) -> bool:
    """True when ``name`` is an identity column of ``table`` or a well-formed label column.

    Column names become Zarr array names (paths), so anything else is refused here.
    """
    spec = TABLES[table]
    return name in spec.identity or (spec.labels and _LABEL_RE.fullmatch(name) is not None)


@dataclass(frozen=True)
class Tier:
    """One resolution of the store: its row step and the calendar period of a partition."""

    name: str
    #: Seconds per row; ``None`` for raw, whose rows are the writer's scrape intervals.
    step: int | None
    period: Literal["hour", "day", "month"]

    def period_of(self, t: int) -> str:
        """Name of the partition holding time ``t`` (UTC)."""
        d = datetime.fromtimestamp(int(t), UTC)
        return d.strftime(_FORMATS[self.period])

    def bounds(self, period: str) -> tuple[int, int]:
        """``[start, end)`` Unix seconds of a partition; ValueError for a malformed name."""
        if not _PATTERNS[self.period].fullmatch(period):
            raise ValueError(f"not a {self.name} partition name: {period!r}")
        d = datetime.strptime(period, _FORMATS[self.period]).replace(tzinfo=UTC)
        start = int(d.timestamp())
        if self.period == "hour":
            return start, start + HOUR
        if self.period == "day":
            return start, start + DAY
        days = calendar.monthrange(d.year, d.month)[1]
        return start, start + days * DAY

    def is_period(self, name: str) -> bool:
        """True when ``name`` is a valid partition name of this tier."""
        try:
            self.bounds(name)
        except ValueError:
            return False
        return True

    def row_start(self, t: np.ndarray) -> np.ndarray:
        """Start of this tier's row holding each time in ``t`` (not for raw)."""
        assert self.step is not None
        return t - t % self.step


_FORMATS = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "month": "%Y-%m"}
_PATTERNS = {"hour": re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}"),
             "day": re.compile(r"\d{4}-\d{2}-\d{2}"), "month": re.compile(r"\d{4}-\d{2}")}

RAW = Tier("raw", None, "hour")
HOURLY = Tier("hourly", HOUR, "day")
DAILY = Tier("daily", DAY, "month")
#: Finest first; each tier is rolled up from the one before it.
TIERS = (RAW, HOURLY, DAILY)


def tier_named(name: str) -> Tier:
    """The tier called ``name``; KeyError otherwise."""
    for tier in TIERS:
        if tier.name == name:
            return tier
    raise KeyError(name)


@dataclass(frozen=True)
class Retention:
    """How long each tier keeps a partition, in seconds after the partition's end."""

    raw: int = 7 * DAY
    hourly: int = 400 * DAY
    daily: int = 3653 * DAY  # ten years with their leap days

    def __post_init__(self) -> None:
        for name in ("raw", "hourly", "daily"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"retention.{name} must be a positive number of seconds")

    def of(self, tier: Tier) -> int:
        """Retention of ``tier`` in seconds."""
        return int(getattr(self, tier.name))


_SHARD_RE = re.compile(r"shard-(\d{1,4})-of-(\d{1,4})")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → ``(i, n)`` with ``0 <= i < n``; ValueError otherwise."""
    m = re.fullmatch(r"(\d{1,4})/(\d{1,4})", text.strip())
    if not m or not 0 <= int(m[1]) < int(m[2]):
        raise ValueError(f"shard must be 'i/n' with 0 <= i < n, got {text!r}")
    return int(m[1]), int(m[2])


def shard_dirname(index: int, count: int) -> str:
    """Folder of one shard's sub-tree."""
    return f"shard-{index}-of-{count}"


def shard_of_dirname(name: str) -> tuple[int, int] | None:
    """Inverse of :func:`shard_dirname`; None for any other name."""
    m = _SHARD_RE.fullmatch(name)
    if not m or not 0 <= int(m[1]) < int(m[2]):
        return None
    return int(m[1]), int(m[2])


# ---- codecs -----------------------------------------------------------------------------

#: Measures that may be rounded: measured usage, not what is charged or billed.
USAGE_MEASURES = frozenset(m for m in (*CONTAINER_MEASURES, *NODE_MEASURES) if "_usage" in m)
#: Mantissa bits kept for usage measures: relative error ≤ 2**-(bits + 1) ≈ 6.1e-5.
USAGE_KEEPBITS = 13
#: Chunk files sit in their array's folder as ``c.0.0``: half the folders to create and
#: fsync of the ``c/0/0`` default, for partitions that have one chunk per array anyway.
CHUNK_KEY_ENCODING = {"name": "default", "separator": "."}
#: Uncompressed bytes aimed at per measure chunk: large enough for zstd, small for memory.
_CHUNK_BYTES = 4 << 20


def quantise(values: np.ndarray, keepbits: int = USAGE_KEEPBITS) -> np.ndarray:
    """Round float64 ``values`` to ``keepbits`` mantissa bits (round half to even).

    The dropped bits become zeros, which the shuffle + zstd stage then stores almost for
    free. NaN stays NaN; finite values stay finite below ~1.8e308.
    """
    x = np.ascontiguousarray(values, dtype=np.float64)
    drop = 52 - keepbits
    bits = x.view(np.uint64)
    half = np.uint64((1 << (drop - 1)) - 1)
    odd = (bits >> np.uint64(drop)) & np.uint64(1)
    out = ((bits + half + odd) & np.uint64(~((1 << drop) - 1) & (2**64 - 1))).view(np.float64)
    return np.where(np.isnan(x), np.nan, out)


def series_chunk(rows: int, series: int) -> int:
    """Series per chunk of a ``(rows, series)`` measure array (all rows in one chunk)."""
    return max(1, min(series, _CHUNK_BYTES // (8 * max(rows, 1))))


def measure_codecs(measure: str) -> dict[str, object]:
    """Keyword arguments for ``create_array`` of a float64 ``(time, series)`` measure.

    Series-major (transposed) chunks put a series' slowly varying values side by side.
    Rounded usage values have zero low mantissa bits, which bit-shuffling turns into long
    zero runs (1.26 against 1.57 bytes per sample with byte-shuffling); exact values
    (costs, requests: often constant per series) do better byte-shuffled (0.40 against
    0.50). zstd level 9 saves another 10% at 30× the write time: not worth it.
    """
    shuffle = "bitshuffle" if measure in USAGE_MEASURES else "shuffle"
    return {"filters": [TransposeCodec(order=(1, 0))],
            "compressors": [BloscCodec(cname="zstd", clevel=5, shuffle=shuffle)]}


def string_codecs() -> dict[str, object]:
    """Keyword arguments for ``create_array`` of a series-table string column."""
    return {"compressors": [ZstdCodec(level=5)]}
