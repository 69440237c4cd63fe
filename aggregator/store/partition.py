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
from zarr.core.array import AsyncArray
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
#: A measure array created (metadata only), to be filled by :func:`_fill_measures`.
_Pending = tuple[AsyncArray, TableData, str]


def _table_jobs(group: AsyncGroup, name: str, data: TableData) -> tuple[list[_Job],
                                                                        list[_Job]]:
    """(group, array name, create_array arguments, data or None) for one table: the
    small arrays with their data, and the measures without (they are filled later)."""
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
    measures: list[_Job] = []
    for m in spec.measures:
        attrs: dict[str, Any] = {"description": _DESCRIPTIONS[m], "coordinates": coords}
        if m in USAGE_MEASURES:
            attrs["keepbits"] = USAGE_KEEPBITS
        measures.append((group, m, {"shape": (rows, series), "dtype": "float64",
                                    "chunks": chunks, "fill_value": np.nan,
                                    "dimension_names": (TIME, "series"), "attributes": attrs,
                                    **measure_codecs(m)}, None))
    return jobs, measures


def _measure_values(data: TableData, measure: str) -> np.ndarray | None:
    """What to store of one measure (usage rounded); None when all NaN (left unwritten).

    Rounded row by row, so the temporaries are one row, not the whole array.
    """
    if not (len(data.time) and data.n_series):
        return None
    values = data.measures[measure]
    if measure in USAGE_MEASURES:
        rounded = np.empty(values.shape)
        for r in range(len(rounded)):
            rounded[r] = quantise(values[r])
        values = rounded
    return None if bool(np.isnan(values).all()) else values


async def _put(group: AsyncGroup, name: str, kwargs: dict[str, Any],
               values: np.ndarray | None) -> AsyncArray:
    array = await group.create_array(name, chunk_key_encoding=CHUNK_KEY_ENCODING, **kwargs)
    if values is not None:
        await array.setitem(Ellipsis, values)
    return array


async def _write_group(store: ZarrStore, attrs: dict[str, Any],
                       tables: Mapping[str, TableData]) -> list[_Pending]:
    """Write the partition but for the measures' values, concurrently (one trip to zarr's
    event loop); the measure arrays are created and returned to be filled."""
    root = await zarr.api.asynchronous.create_group(store=store, attributes=attrs,
                                                   overwrite=True, zarr_format=3)
    jobs: list[_Job] = []
    pending: list[tuple[TableData, str]] = []
    measures: list[_Job] = []
    for name in TABLES:
        data = tables.get(name) or TableData.empty(name)
        labels = sorted(c for c in data.identity if c.startswith(LABEL_PREFIX))
        group = await root.create_group(name, attributes={
            "rows": len(data.time), "series": data.n_series,
            "identity": list(TABLES[name].identity), "labels": labels})
        small, ms = _table_jobs(group, name, data)
        jobs.extend(small)
        measures.extend(ms)
        pending.extend((data, m) for _, m, _, _ in ms)
    arrays = await asyncio.gather(*(_put(*job) for job in (*measures, *jobs)))
    return [(array, data, m)
            for array, (data, m) in zip(arrays[:len(pending)], pending, strict=True)]


def _fill_measures(pending: list[_Pending]) -> None:
    """Write the measures one at a time, each built (a lazy table builds it on lookup)
    in this thread and dropped once written: the peak is about one ``(time, series)``
    float64 array, not all of them (2 GB for an hour of 300,000 containers)."""
    for array, data, measure in pending:
        values = _measure_values(data, measure)
        if values is not None:
            sync(array.setitem(Ellipsis, values))
        del values


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
    # Compact metadata: zarr indents its JSON by default, and at 1,000 containers the
    # ~48 zarr.json documents of an hour were 7% of the partition's bytes.
    with zarr.config.set({"json_indent": None}):
        pending = sync(_write_group(MemoryStore(store_dict=objects), attrs, tables))
    _fill_measures(pending)
    # popped as copied, so the encoded partition is not held twice
    return {key: objects.pop(key).to_bytes() for key in list(objects)}


def write_partition(backend: Backend, shard: str, tier: Tier, period: str,
                    tables: Mapping[str, TableData], step: int) -> bool:
    """Commit one partition holding ``tables``; False when it was already there.

    ``step`` is the tier's row step (for raw, the writer's scrape interval), recorded for
    readers and tools.
    """
    return backend.commit(shard, tier, period,
                          lambda: encode_partition(tier, period, tables, step, shard))
