"""Write one immutable partition (a Zarr v3 group) atomically.

A partition is written once, by a seal or a rollup, through
:meth:`~aggregator.store.backend.Backend.commit`, so it appears whole or not at all, and
is never modified afterwards (only deleted whole by retention). Reading is in
:mod:`aggregator.store.stored`; any Zarr v3 reader can open one too (see
:mod:`aggregator.store.reader` for the recipe with ``zarr`` and ``xarray``).
"""

from __future__ import annotations

import asyncio
import time as _time
from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr
import zarr.api.asynchronous
from zarr.abc.store import Store as ZarrStore
from zarr.core.buffer import Buffer
from zarr.core.group import AsyncGroup
from zarr.core.sync import sync
from zarr.storage import MemoryStore

from aggregator.measures import CONTAINER_MEASURES, NODE_MEASURES
from aggregator.store.backend import Backend
from aggregator.store.layout import (
    ATTRS_KEY,
    CHUNK_KEY_ENCODING,
    FORMAT_VERSION,
    LABEL_PREFIX,
    SECONDS,
    TABLES,
    TIME,
    USAGE_KEEPBITS,
    USAGE_MEASURES,
    Tier,
    measure_codecs,
    quantise,
    series_chunk,
    string_codecs,
)
from aggregator.store.model import TableData

__all__ = ["encode_partition", "write_partition"]

_DESCRIPTIONS = {**NODE_MEASURES, **CONTAINER_MEASURES}


_Job = tuple[AsyncGroup, str, dict[str, Any], np.ndarray | None]


def _table_jobs(group: AsyncGroup, name: str, data: TableData) -> list[_Job]:
    """(group, array name, create_array arguments, data or None) for one table."""
    spec = TABLES[name]
    rows, series = len(data.time), data.n_series
    labels = sorted(c for c in data.identity if c.startswith(LABEL_PREFIX))
    jobs: list[_Job] = []
    for arr_name, values in ((TIME, data.time), (SECONDS, data.seconds)):
        units = "seconds since 1970-01-01T00:00:00Z" if arr_name == TIME else "seconds"
        jobs.append((group, arr_name, {"shape": (rows,), "dtype": "int64",
                                       "chunks": (max(rows, 1),), "dimension_names": (TIME,),
                                       "attributes": {"units": units}},
                     np.asarray(values, dtype=np.int64) if rows else None))
    for col in (*spec.identity, *labels):
        jobs.append((group, col, {"shape": (series,), "dtype": str,
                                  "chunks": (max(series, 1),), "dimension_names": ("series",),
                                  **string_codecs()},
                     np.asarray(data.identity[col], dtype=object) if series else None))
    chunks = (max(rows, 1), series_chunk(rows, series))
    coords = " ".join((*spec.identity, *labels))
    for m in spec.measures:
        values = data.measures[m]
        attrs: dict[str, Any] = {"description": _DESCRIPTIONS[m], "coordinates": coords}
        if m in USAGE_MEASURES:
            values = quantise(values)
            attrs["keepbits"] = USAGE_KEEPBITS
        empty = not (rows and series) or bool(np.isnan(values).all())
        jobs.append((group, m, {"shape": (rows, series), "dtype": "float64", "chunks": chunks,
                                "fill_value": np.nan, "dimension_names": (TIME, "series"),
                                "attributes": attrs, **measure_codecs(m)},
                     None if empty else values))
    return jobs


async def _put(group: AsyncGroup, name: str, kwargs: dict[str, Any],
               values: np.ndarray | None) -> None:
    array = await group.create_array(name, chunk_key_encoding=CHUNK_KEY_ENCODING, **kwargs)
    if values is not None:
        await array.setitem(Ellipsis, values)


async def _write_group(store: ZarrStore, attrs: dict[str, Any],
                       tables: Mapping[str, TableData]) -> None:
    """Write the whole partition concurrently (one trip to zarr's event loop)."""
    root = await zarr.api.asynchronous.create_group(store=store, attributes=attrs,
                                                   overwrite=True, zarr_format=3)
    jobs: list[_Job] = []
    for name in TABLES:
        data = tables.get(name) or TableData.empty(name)
        labels = sorted(c for c in data.identity if c.startswith(LABEL_PREFIX))
        group = await root.create_group(name, attributes={
            "rows": len(data.time), "series": data.n_series,
            "identity": list(TABLES[name].identity), "labels": labels})
        jobs.extend(_table_jobs(group, name, data))
    await asyncio.gather(*(_put(*job) for job in jobs))


def encode_partition(tier: Tier, period: str, tables: Mapping[str, TableData], step: int,
                     shard: str) -> dict[str, bytes]:
    """The partition's objects (key → bytes), encoded by zarr into memory.

    Encoding in memory and writing the bytes ourselves keeps zarr's per-array overhead off
    the disk path and lets each backend write and commit the objects its own way.
    """
    start, end = tier.bounds(period)
    for name, data in tables.items():
        if len(data.time) and not (start <= data.time.min() and data.time.max() < end):
            raise ValueError(f"{name} rows outside {tier.name} partition {period}")
    attrs = {ATTRS_KEY: {"format": FORMAT_VERSION, "tier": tier.name, "period": period,
                         "start": start, "end": end, "step": step, "shard": shard,
                         "written": int(_time.time())}}
    objects: dict[str, Buffer] = {}
    sync(_write_group(MemoryStore(store_dict=objects), attrs, tables))
    return {key: buf.to_bytes() for key, buf in objects.items()}


def write_partition(backend: Backend, shard: str, tier: Tier, period: str,
                    tables: Mapping[str, TableData], step: int) -> bool:
    """Commit one partition holding ``tables``; False when it was already there.

    ``step`` is the tier's row step (for raw, the writer's scrape interval), recorded for
    readers and tools.
    """
    return backend.commit(shard, tier, period,
                          lambda: encode_partition(tier, period, tables, step, shard))
