"""Which price each node gets: a per-node override, else the instance table, else the defaults.

The order follows the design's cost model. A node whose (provider, region,
instance type) is in the table is priced from its row, taking ``spot_hourly``
for spot nodes; if only its region is missing, the same provider's instance
type in its first listed region is used (``TABLE_OTHER_REGION``), because for
the same hardware a price from another region is off by ~10-20% while the
defaults know nothing of the instance family (a GPU box would be priced like
a general-purpose one); ``region_fallback: false`` turns this off. Nodes with
neither get the unit defaults, the spot defaults for spot nodes.

A known total (a table row or an ``hourly`` override) is split by the ratio of
the *on-demand* default unit prices, for spot nodes too: the spot discount is
already in the total, and the split only says how hardware value divides
between CPU, memory and GPUs. With weights vcpu·cpu, GiB·ram, gpus·gpu the
scale k = total / Σweights, and each unit price is k × its default. A table
row is split by its *published* vCPU and memory, not the node's capacity, so
every node of an instance type gets the same unit prices whatever the kernel
reserves; such a node's cost (capacity × unit price) is then a little below
the list price. An override is split by the node's capacity, as it prices
that node only, so its cost equals the override exactly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from aggregator.frame import NodeTable
from aggregator.prices import SECTION, PriceError, PriceTable, UnitPrices
from kubetally import config as layered

__all__ = ["OVERRIDES_SECTION", "NodeOverride", "NodeUnitPrices", "PriceBook", "PriceSource",
           "load_price_book"]

#: Top-level YAML section of per-node overrides: ``node name → {hourly} | {cpu, ram, gpu}``.
OVERRIDES_SECTION = "price_overrides"
GIB = float(2**30)


class PriceSource(IntEnum):
    """Where a node's unit prices came from (stored as int8 codes)."""

    DEFAULT = 0
    TABLE = 1
    TABLE_OTHER_REGION = 2
    OVERRIDE = 3


@dataclass(frozen=True, slots=True)
class NodeOverride:
    """One node's price: ``hourly`` total, or any of the unit prices cpu/ram/gpu.

    Unit prices are $ per core-hour, per GiB-hour and per GPU-hour. Units left out
    keep what the table or the defaults give, so ``{gpu: 2.1}`` re-prices only the
    GPUs of a node whose GPUs are billed apart (a reservation, a GPU cloud).
    """

    hourly: float | None = None
    cpu: float | None = None
    ram: float | None = None
    gpu: float | None = None

    def __post_init__(self) -> None:
        units = (self.cpu, self.ram, self.gpu)
        if self.hourly is not None and any(u is not None for u in units):
            raise PriceError("hourly cannot be combined with cpu, ram or gpu")
        if self.hourly is None and all(u is None for u in units):
            raise PriceError("give either hourly or some of cpu, ram, gpu")
        for name in ("hourly", "cpu", "ram", "gpu"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise PriceError(f"{name} must be a finite number >= 0, got {value!r}")

    @classmethod
    def from_mapping(cls, raw: object) -> NodeOverride:
        """Build from a YAML mapping, refusing unknown keys and non-numbers."""
        if not isinstance(raw, Mapping):
            raise PriceError(f"expected a mapping of hourly or cpu/ram/gpu, got {raw!r}")
        values: dict[str, float] = {}
        for key, value in raw.items():
            if key not in ("hourly", "cpu", "ram", "gpu"):
                raise PriceError(f"unknown key {key!r} (expected hourly, cpu, ram or gpu)")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PriceError(f"{key} must be a number, got {value!r}")
            values[str(key)] = float(value)
        return cls(**values)


@dataclass(frozen=True)
class NodeUnitPrices:
    """Unit prices per node (arrays of the NodeTable's length)."""

    cpu_per_core_hour: np.ndarray
    ram_per_byte_hour: np.ndarray
    gpu_per_gpu_hour: np.ndarray
    source: np.ndarray  # int8 PriceSource codes

    def __len__(self) -> int:
        return len(self.cpu_per_core_hour)

    def counts(self) -> dict[str, int]:
        """Nodes per source, e.g. for a log line or a gauge."""
        hist = np.bincount(self.source.astype(np.intp), minlength=len(PriceSource))
        return {s.name.lower(): int(hist[s]) for s in PriceSource}


@dataclass(frozen=True)
class PriceBook:
    """Everything needed to price the nodes of an interval."""

    units: UnitPrices
    table: PriceTable
    overrides: Mapping[str, NodeOverride] = field(default_factory=dict)

    def node_unit_prices(self, nodes: NodeTable) -> NodeUnitPrices:
        """Resolve every node's unit prices in override > table > default order."""
        u, ident, m = self.units, nodes.identity, len(nodes)
        spot = np.asarray(ident["capacity_type"], dtype=object) == "spot"
        cpu = np.where(spot, u.spot_cpu, u.cpu).astype(np.float64)
        ram = np.where(spot, u.spot_ram, u.ram).astype(np.float64)  # $ per GiB-hour here
        gpu = np.where(spot, u.spot_gpu, u.gpu).astype(np.float64)
        source = np.full(m, PriceSource.DEFAULT, dtype=np.int8)

        row, other = self.table.rows(ident["provider"], ident["region"], ident["instance_type"],
                                     region_fallback=u.region_fallback)
        if (row >= 0).any():
            t, r = self.table, np.where(row >= 0, row, 0)
            total = np.where(spot, t.spot_hourly[r], t.on_demand_hourly[r])
            ok, k = self._scale(np.where(row >= 0, total, np.nan), t.vcpu[r], t.memory_gib[r],
                                t.gpus[r])
            cpu, ram, gpu = (np.where(ok, k * d, p) for d, p in
                             ((u.cpu, cpu), (u.ram, ram), (u.gpu, gpu)))
            source[ok] = np.where(other[ok], PriceSource.TABLE_OTHER_REGION, PriceSource.TABLE)

        if self.overrides:
            names = list(self.overrides)
            at = {name: i for i, name in enumerate(names)}
            idx = np.fromiter((at.get(n, -1) for n in ident["node"]), dtype=np.int64, count=m)
            has, i = idx >= 0, np.where(idx >= 0, idx, 0)

            def column(attr: str) -> np.ndarray:
                vals = [getattr(self.overrides[n], attr) for n in names]
                arr = np.array([math.nan if v is None else v for v in vals], dtype=np.float64)
                return np.where(has, arr[i], np.nan)

            split, k = self._scale(column("hourly"), nodes.cpu_cores, nodes.ram_bytes / GIB,
                                   nodes.gpus)
            applied = split.copy()
            for attr, default, prices in (("cpu", u.cpu, cpu), ("ram", u.ram, ram),
                                          ("gpu", u.gpu, gpu)):
                given = column(attr)
                prices[split] = (k * default)[split]
                prices[np.isfinite(given)] = given[np.isfinite(given)]
                applied |= np.isfinite(given)
            source[applied] = PriceSource.OVERRIDE
        return NodeUnitPrices(cpu, ram / GIB, gpu, source)

    def _scale(self, total: np.ndarray, vcpu: np.ndarray, gib: np.ndarray,
               gpus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where a total can be split, and k = total / Σ(quantity × on-demand default)."""
        u = self.units
        weights = (np.nan_to_num(np.asarray(vcpu, dtype=np.float64)) * u.cpu
                   + np.nan_to_num(np.asarray(gib, dtype=np.float64)) * u.ram
                   + np.nan_to_num(np.asarray(gpus, dtype=np.float64)) * u.gpu)
        ok = np.isfinite(total) & (weights > 0)
        k = np.divide(total, weights, out=np.zeros_like(weights), where=ok)
        return ok, k


def load_price_book(file: str | os.PathLike[str] | None = None, *,
                    environ: Mapping[str, str] | None = None,
                    overrides: Mapping[str, Any] | None = None) -> PriceBook:
    """The ``prices`` section (layered), its table and the ``price_overrides`` of ``file``."""
    node_overrides = _read_file(Path(file)) if file is not None else {}
    try:
        units = layered.load(UnitPrices, SECTION, file=file, environ=environ, overrides=overrides)
    except layered.ConfigValueError as exc:
        raise PriceError(str(exc)) from None
    return PriceBook(units, PriceTable.load(units.table or None), node_overrides)


def _read_file(file: Path) -> dict[str, NodeOverride]:
    """Check the ``prices`` entries and parse the overrides, naming the line of any fault."""
    try:
        loader = yaml.SafeLoader(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PriceError(f"cannot read config: {exc}", file=str(file)) from None
    try:
        root = loader.get_single_node()
        sections = {} if root is None else _pairs(loader, root, file, "the file")
        prices = _pairs(loader, sections[SECTION][2], file, SECTION) \
            if SECTION in sections else {}
        for line, name, node in prices.values():
            value = loader.construct_object(node, deep=True)
            if value is None:
                raise PriceError(f"{SECTION}.{name} has no value", file=str(file), line=line)
            try:  # the layered loader's own conversion, one entry at a time for its line
                layered.load(UnitPrices, SECTION,
                             overrides={str(name).replace("-", "_"): value})
            except (layered.ConfigValueError, PriceError) as exc:
                raise PriceError(str(exc), file=str(file), line=line) from None
        result: dict[str, NodeOverride] = {}
        if OVERRIDES_SECTION in sections:
            for line, name, node in _pairs(loader, sections[OVERRIDES_SECTION][2], file,
                                           OVERRIDES_SECTION).values():
                try:
                    result[str(name)] = NodeOverride.from_mapping(
                        loader.construct_object(node, deep=True))
                except PriceError as exc:
                    raise PriceError(f"{OVERRIDES_SECTION}.{name}: {exc.message}",
                                     file=str(file), line=line) from None
        return result
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        raise PriceError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                         file=str(file), line=mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()


def _pairs(loader: yaml.SafeLoader, node: yaml.Node, file: Path,
           what: str) -> dict[str, tuple[int, object, yaml.Node]]:
    """A mapping node's entries: key → (line of the key, key, value node)."""
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise PriceError(f"{what} must be a mapping", file=str(file), line=node.start_mark.line + 1)
    out: dict[str, tuple[int, object, yaml.Node]] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[str(key)] = (key_node.start_mark.line + 1, key, value_node)
    return out
