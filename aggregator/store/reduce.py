"""NaN-aware numpy kernels that sum or max a ``(rows, series)`` block into coarser cells.

Rollups (rows → tier rows, series → union of series) and queries (rows → steps,
series → groups) both come down to these operations. A cell that only NaN reached stays
NaN (no data is not zero); otherwise NaN inputs are skipped. A :class:`Groups` sorts the
codes once; each measure is then one ``take`` and one ``ufunc.reduceat``, so there is no
Python loop over rows or series, and no sort per measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["Groups", "How", "merge_into", "reduce_axis"]

How = Literal["sum", "max"]


@dataclass(frozen=True)
class Groups:
    """Positions grouped by code: ``index`` lists the positions to take (negative codes
    dropped) in code order, ``starts`` where each group begins in it, ``codes`` the
    distinct codes in order. ``index`` is None when it would be ``arange(n)``."""

    index: np.ndarray | None
    starts: np.ndarray
    codes: np.ndarray

    @staticmethod
    def of(codes: np.ndarray) -> Groups:
        """Group positions ``0…len(codes)-1`` by their code."""
        codes = np.asarray(codes)
        index: np.ndarray | None = None
        ordered = codes
        if len(codes) and ((np.diff(codes) < 0).any() or codes[0] < 0):
            keep = np.flatnonzero(codes >= 0)
            index = keep[np.argsort(codes[keep], kind="stable")]
            ordered = codes[index]
        if not len(ordered):
            return Groups(index, np.empty(0, dtype=np.intp), ordered)
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        return Groups(index, starts, ordered[starts])

    def __len__(self) -> int:
        return len(self.codes)


def reduce_axis(values: np.ndarray, groups: Groups, how: How, axis: int) -> np.ndarray:
    """Combine the slices of ``values`` along ``axis`` that share a group."""
    if groups.index is not None:
        values = np.take(values, groups.index, axis=axis)
    shape = list(values.shape)
    shape[axis] = len(groups)
    if not len(groups) or 0 in values.shape:
        return np.full(shape, np.nan)
    if how == "max":
        return np.fmax.reduceat(values, groups.starts, axis=axis)
    present = ~np.isnan(values)
    total = np.add.reduceat(np.where(present, values, 0.0), groups.starts, axis=axis)
    total[~np.logical_or.reduceat(present, groups.starts, axis=axis)] = np.nan
    return total


def merge_into(out: np.ndarray, rows: np.ndarray, cols: np.ndarray, values: np.ndarray,
               how: How) -> None:
    """``out[..., rows × cols] ⊕= values`` with ⊕ the NaN-skipping sum or max.

    ``rows`` and ``cols`` index the last two axes (leading axes, e.g. several measures
    stacked, are taken whole) and must each be free of duplicates (one cell, one
    contribution per call), which grouping with :class:`Groups` guarantees.
    """
    if not values.size:
        return
    index = (Ellipsis, *np.ix_(rows, cols))
    current = out[index]
    if how == "max":
        out[index] = np.fmax(current, values)
        return
    out[index] = np.where(np.isnan(current), values,
                          np.where(np.isnan(values), current, current + values))
