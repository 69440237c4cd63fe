"""Unit prices and the bundled instance-type price table: the inputs of node pricing.

Two sources of a price live here. :class:`UnitPrices` holds the per-resource
defaults (OpenCost's, GCP us-central1 N2) and is the ``prices`` section of the
layered configuration, so flags, ``KUBETALLY_PRICES_*`` variables and the YAML
file all come from its one declaration. :class:`PriceTable` is the instance-type
table (``aggregator/data/instance_prices.csv`` unless configured otherwise),
read once into numpy columns so nodes can be looked up by array, not by loop.
How a node's price is chosen from these is :mod:`aggregator.pricebook`'s job.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aggregator.errors import AggregatorError
from kubetally.config import option

__all__ = ["BUNDLED_TABLE", "COLUMNS", "SECTION", "PriceError", "PriceTable", "UnitPrices"]

SECTION = "prices"
#: The table shipped with the package (see aggregator/data/README.md for its sources).
BUNDLED_TABLE = Path(__file__).with_name("data") / "instance_prices.csv"
COLUMNS = ("provider", "region", "instance_type", "on_demand_hourly", "spot_hourly", "vcpu",
           "memory_gib", "gpus", "gpu_model", "source", "date")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class PriceError(AggregatorError):
    """A price file (table CSV or YAML config) or a price value is unusable.

    ``file`` and ``line`` (1-based) say where, when the value came from a file, so an
    operator can fix the file without guessing; both are ``None`` for a flag or a
    variable, whose name the message carries instead.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        where = ":".join(str(p) for p in (file, line) if p is not None)
        super().__init__(f"{where}: {message}" if where else message)
        self.message, self.file, self.line = message, file, line

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments break default pickling (process pools re-raise errors).
        return (_rebuild, (self.message, self.file, self.line))


def _rebuild(message: str, file: str | None, line: int | None) -> PriceError:
    return PriceError(message, file=file, line=line)


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """Per-resource prices used when no override or table row prices a node.

    The on-demand trio also sets the *ratio* by which a known total (a table row,
    a total override) is split into CPU, RAM and GPU. ``spot_gpu`` is ours (OpenCost
    has none): 0.304 = 0.95 × 0.32, the median spot/on-demand ratio of the GPU
    rows of the bundled table, so a spot GPU node with no row is discounted like
    the spot GPU nodes that have one.
    """

    cpu: float = option(0.031611, "on-demand CPU price, $ per core-hour", flag="--price-cpu")
    ram: float = option(0.004237, "on-demand memory price, $ per GiB-hour", flag="--price-ram")
    gpu: float = option(0.95, "on-demand GPU price, $ per GPU-hour", flag="--price-gpu")
    storage: float = option(0.04, "persistent volume price, $ per GiB-month",
                            flag="--price-storage")
    spot_cpu: float = option(0.006655, "spot CPU price, $ per core-hour",
                             flag="--price-spot-cpu")
    spot_ram: float = option(0.000892, "spot memory price, $ per GiB-hour",
                             flag="--price-spot-ram")
    spot_gpu: float = option(0.304, "spot GPU price, $ per GPU-hour", flag="--price-spot-gpu")
    table: str = option("", "instance price CSV to use instead of the bundled one",
                        flag="--price-table")
    region_fallback: bool = option(
        True, "price an instance type missing in a node's region from its first listed region",
        flag="--price-region-fallback")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in (float, "float") and not (math.isfinite(value) and value >= 0):
                raise PriceError(f"{SECTION}.{f.name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True, eq=False)
class PriceTable:
    """Instance-type prices as numpy columns, one row per (provider, region, instance type).

    ``spot_hourly`` is NaN where the file leaves it empty. Rows keep the file's
    order, which matters: the region fallback takes the *first* row of an
    instance type, so a table lists each provider's reference region first.
    """

    provider: np.ndarray  # object
    region: np.ndarray  # object
    instance_type: np.ndarray  # object
    on_demand_hourly: np.ndarray  # float64, $ per hour
    spot_hourly: np.ndarray  # float64, $ per hour, NaN when unknown
    vcpu: np.ndarray  # float64
    memory_gib: np.ndarray  # float64
    gpus: np.ndarray  # int64
    gpu_model: np.ndarray  # object, "" without GPUs
    source: np.ndarray  # object
    date: np.ndarray  # object, YYYY-MM-DD
    path: str = ""
    _exact: dict[tuple[str, str, str], int] = field(default_factory=dict, repr=False)
    _first: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for row, key in enumerate(zip(self.provider, self.region, self.instance_type,
                                      strict=True)):
            self._exact.setdefault(key, row)
            self._first.setdefault((key[0], key[2]), row)

    def __len__(self) -> int:
        return len(self.provider)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> PriceTable:
        """Read a price CSV (the bundled one by default); a bad row raises with its line."""
        file = Path(path) if path else BUNDLED_TABLE
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PriceError(f"cannot read price table: {exc}", file=str(file)) from None
        reader = csv.reader(text.splitlines())
        header = next(reader, None)
        if header is None or sorted(h.strip() for h in header) != sorted(COLUMNS):
            raise PriceError(f"header must name the columns {', '.join(COLUMNS)}; got {header}",
                             file=str(file), line=1)
        order = [h.strip() for h in header]
        cols: dict[str, list[object]] = {c: [] for c in COLUMNS}
        seen: dict[tuple[str, str, str], int] = {}
        for record in reader:
            if not record or all(not c.strip() for c in record):
                continue
            line = reader.line_num
            if len(record) != len(order):
                raise PriceError(f"expected {len(order)} fields, got {len(record)}",
                                 file=str(file), line=line)
            row = _parse_row(dict(zip(order, (c.strip() for c in record), strict=True)))
            if isinstance(row, str):
                raise PriceError(row, file=str(file), line=line)
            key = (row["provider"], row["region"], row["instance_type"])
            if key in seen:
                raise PriceError(f"duplicate row for {'/'.join(key)} (first on line "
                                 f"{seen[key]})", file=str(file), line=line)
            seen[key] = line
            for c in COLUMNS:
                cols[c].append(row[c])
        obj = {c: np.array(cols[c], dtype=object) for c in COLUMNS}
        return cls(provider=obj["provider"], region=obj["region"],
                   instance_type=obj["instance_type"],
                   on_demand_hourly=np.array(cols["on_demand_hourly"], dtype=np.float64),
                   spot_hourly=np.array(cols["spot_hourly"], dtype=np.float64),
                   vcpu=np.array(cols["vcpu"], dtype=np.float64),
                   memory_gib=np.array(cols["memory_gib"], dtype=np.float64),
                   gpus=np.array(cols["gpus"], dtype=np.int64), gpu_model=obj["gpu_model"],
                   source=obj["source"], date=obj["date"], path=str(file))

    def rows(self, provider: np.ndarray, region: np.ndarray, instance_type: np.ndarray,
             *, region_fallback: bool) -> tuple[np.ndarray, np.ndarray]:
        """Table row of each node (-1 if none) and whether it came from another region.

        One dict lookup per node: nodes number thousands, the table hundreds, and a
        hash lookup beats any sort-and-search at that size.
        """
        exact = np.fromiter((self._exact.get(k, -1) for k in zip(
            provider, region, instance_type, strict=True)), dtype=np.int64, count=len(provider))
        other = np.zeros(len(exact), dtype=bool)
        if region_fallback:
            missing = np.flatnonzero(exact < 0)
            first = np.fromiter((self._first.get((provider[i], instance_type[i]), -1)
                                 for i in missing), dtype=np.int64, count=len(missing))
            exact[missing] = first
            other[missing] = first >= 0
        return exact, other


def _number(row: dict[str, str], name: str, *, positive: bool, empty_nan: bool = False) -> float:
    text = row[name]
    if not text and empty_nan:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} is not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {text!r}")
    return value


def _parse_row(raw: dict[str, str]) -> dict[str, object] | str:
    """The typed row, or the reason it is malformed (the caller adds file and line)."""
    try:
        for name in ("provider", "region", "instance_type", "source"):
            if not raw[name]:
                raise ValueError(f"{name} is empty")
        if not _DATE.match(raw["date"]):
            raise ValueError(f"date must be YYYY-MM-DD, got {raw['date']!r}")
        gpus = _number(raw, "gpus", positive=False)
        if not gpus.is_integer():
            raise ValueError(f"gpus must be a whole number, got {raw['gpus']!r}")
        if (gpus > 0) != bool(raw["gpu_model"]):
            raise ValueError("gpu_model must be set exactly when gpus > 0")
        return {**raw, "on_demand_hourly": _number(raw, "on_demand_hourly", positive=True),
                "spot_hourly": _number(raw, "spot_hourly", positive=True, empty_nan=True),
                "vcpu": _number(raw, "vcpu", positive=True),
                "memory_gib": _number(raw, "memory_gib", positive=True), "gpus": int(gpus)}
    except ValueError as exc:
        return str(exc)
