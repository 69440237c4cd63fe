"""Metadata order checks of :mod:`aggregator.textparse`, done per run, not per sample.

A family's HELP/TYPE/UNIT lines must come before its first sample and at most once;
OpenMetrics also forbids interleaving families.  Checking that per sample line would
cost a Python step on the hot path, so :func:`check_families` works on *runs*: stretches
of consecutive samples with the same metric name and no metadata line in between
(found with two numpy comparisons), merged in line order with the metadata lines.
An exporter scrape has a few dozen runs against thousands of samples.

A sample belongs to family F when, at that point of the payload, F has metadata and
the sample's name is F or F plus a suffix F's type allows (``_bucket``, ``_sum``...);
otherwise to the family named like the sample, as the Go parser decides it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from aggregator.errors import ParseError

if TYPE_CHECKING:
    from aggregator.textparse import SeriesTable

__all__ = ["check_families"]

Meta = tuple[int, str, str, str]
_TEXT_SUFFIXES = {"_bucket": ("histogram",), "_sum": ("histogram", "summary"),
                  "_count": ("histogram", "summary")}
_OM_SUFFIXES = {"_total": ("counter",), "_created": ("counter", "histogram", "summary"),
                "_bucket": ("histogram", "gaugehistogram"), "_sum": ("histogram", "summary"),
                "_count": ("histogram", "summary"), "_gsum": ("gaugehistogram",),
                "_gcount": ("gaugehistogram",), "_info": ("info",)}


def check_families(meta: list[Meta], index: NDArray[np.int64], positions: NDArray[np.intp],
                   table: SeriesTable, om: bool
                   ) -> tuple[ParseError | None, dict[str, str], dict[str, str], dict[str, str]]:
    """(first error or None, types, helps, units) of one payload.

    ``meta`` holds (line position, kind, family, text) in line order; ``index`` and
    ``positions`` are the samples' series indices and line positions.
    """
    declared: dict[str, dict[str, str]] = {}
    runs = _runs(meta, index, positions, table) if (meta or om) else []
    names = table.metric_names() if runs else []
    suffixes = _OM_SUFFIXES if om else _TEXT_SUFFIXES
    first_sample: dict[str, int] = {}
    current = ""
    m = r = 0
    while m < len(meta) or r < len(runs):
        if r == len(runs) or (m < len(meta) and meta[m][0] < runs[r][0]):
            p, kind, family, text = meta[m]
            m += 1
            if family in first_sample:
                return (ParseError(f"expected {kind} for {family!r} before its samples (the "
                                   f"first is on line {first_sample[family] + 1})", line=p + 1),
                        {}, {}, {})
            seen = declared.setdefault(family, {})
            if kind in seen:
                return ParseError(f"expected one {kind} line for {family!r}, found a second",
                                  line=p + 1), {}, {}, {}
            seen[kind] = text
            current = family
            continue
        p, name_id = runs[r]
        r += 1
        family = _family(names[name_id], declared, suffixes)
        if family not in first_sample:
            first_sample[family] = p
        elif om and family != current:
            return (ParseError(f"expected the samples of {family!r} together (OpenMetrics "
                               f"forbids interleaving; it began on line "
                               f"{first_sample[family] + 1})", line=p + 1), {}, {}, {})
        current = family
    return None, *_tables(declared)


def _runs(meta: list[Meta], index: NDArray[np.int64], positions: NDArray[np.intp],
          table: SeriesTable) -> list[tuple[int, int]]:
    """(line position, name id) where a run starts: a name change or after metadata."""
    if not len(index):
        return []
    name_id = table.name_ids()[index]
    starts = np.flatnonzero(name_id[1:] != name_id[:-1]) + 1
    after_meta = np.searchsorted(positions, [p for p, *_ in meta])
    starts = np.union1d(np.union1d(starts, after_meta[after_meta < len(index)]), [0])
    return list(zip(positions[starts].tolist(), name_id[starts].tolist(), strict=True))


def _family(name: str, declared: dict[str, dict[str, str]],
            suffixes: dict[str, tuple[str, ...]]) -> str:
    if name in declared:
        return name
    for suffix, types in suffixes.items():
        if name.endswith(suffix):
            base = declared.get(name[:-len(suffix)])
            if base is not None and base.get("TYPE") in types:
                return name[:-len(suffix)]
    return name


def _tables(declared: dict[str, dict[str, str]]
            ) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    def table(kind: str) -> dict[str, str]:
        return {family: kinds[kind] for family, kinds in declared.items() if kind in kinds}

    return table("TYPE"), table("HELP"), table("UNIT")
