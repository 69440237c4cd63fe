"""Bulk conversion of the value/timestamp part of sample lines into numpy arrays.

Each sample line contributes its *rest*: the bytes after the series (``" 1.5e+06"``,
``" 3 1700000000000"``; OpenMetrics exemplars already removed).  :func:`convert` turns
all rests of a scrape into float64 arrays with a handful of C-level passes; its
per-element twin :func:`convert_slow` is the reference and the only place that
composes error messages.  Every bulk shortcut either returns exactly what
``convert_slow`` would, or gives up and defers to it (the tests check this).

Accepted spellings (the Go parser's, which is what the format specifies): decimal
floats with optional sign and exponent, ``NaN`` (any case, unsigned), ``Inf`` /
``Infinity`` (any case, optional sign).  No hex floats or ``_``; literals beyond the
float64 range are errors, as in Go's ``ParseFloat``.  Text-format timestamps are int64
milliseconds, OpenMetrics timestamps finite float seconds; both come out as float
seconds, NaN where absent.
"""

from __future__ import annotations

import re
from itertools import repeat
from operator import itemgetter, truediv

import numpy as np
from numpy.typing import NDArray

__all__ = ["SampleError", "convert", "convert_slow"]

Floats = NDArray[np.float64]
#: Every byte a number may contain.  On strings of these bytes (so no ``_``, no hex, no
#: non-ASCII digits) Python's ``float()`` accepts exactly what Go's ``ParseFloat`` does,
#: except a signed NaN and out-of-range literals: :func:`_check_special` rejects those.
_NUMBER_BYTES = b"0123456789.eE+-infatyINFATY"
_REST_BYTES = {False: _NUMBER_BYTES + b" \t,", True: _NUMBER_BYTES + b" ,"}
_VALUE = re.compile(
    rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?i:inf|infinity)|(?i:nan)")
_SPECIAL = re.compile(rb"[+-]?(?i:inf|infinity)|(?i:nan)")
_TS = {False: re.compile(rb"[+-]?[0-9]+"),
       True: re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")}
_TOKEN = re.compile(rb"[^ \t]+")
_INT64 = (-(2**63), 2**63 - 1)
_EXPECTED_VALUE = "a sample value (a float within float64 range, NaN, +Inf or -Inf)"


class SampleError(ValueError):
    """Sample ``k`` of the batch is malformed: ``expected`` at byte ``offset`` of its rest."""

    def __init__(self, k: int, expected: str, offset: int) -> None:
        super().__init__(f"sample {k}: expected {expected}")
        self.k, self.expected, self.offset = k, expected, offset


def convert(rests: list[bytes], om: bool) -> tuple[Floats, Floats]:
    """(values, timestamps in seconds) of every rest; SampleError at the first bad one."""
    n = len(rests)
    if n == 0:
        return np.empty(0), np.empty(0)
    if _plausible(b",".join(rests), n, om):
        try:
            values = np.array(rests, dtype=object).astype(np.float64)
        except ValueError:
            pass  # several fields (timestamps) or a bad value: split below
        else:
            _check_special(values, rests)
            return values, np.full(n, np.nan)
        done = _convert_split(rests, om)
        if done is not None:
            return done
    return convert_slow(rests, om)


def _plausible(joined: bytes, n: int, om: bool) -> bool:
    """Only number bytes and blanks, no rest holding a comma; OpenMetrics single-spaced."""
    if joined.translate(None, _REST_BYTES[om]) or joined.count(b",") != n - 1:
        return False
    if not om:
        return True
    return (joined[:1] == b" " and joined.count(b", ") == n - 1 and b"  " not in joined
            and b" ," not in joined and joined[-1:] != b" ")


def _check_special(values: Floats, tokens: list[bytes]) -> None:
    """NaN and Inf results must be spelled as such (not ``+nan`` nor ``1e999``)."""
    for k in np.flatnonzero(~np.isfinite(values)).tolist():
        token = tokens[k].strip(b" \t")
        if not _SPECIAL.fullmatch(token):
            raise SampleError(k, _EXPECTED_VALUE,
                              tokens[k].find(token))


def _convert_split(rests: list[bytes], om: bool) -> tuple[Floats, Floats] | None:
    """Rests with timestamps, split in bulk; None defers to convert_slow (an error)."""
    n = len(rests)
    parts = list(map(bytes.split, rests, repeat(b" "))) if om else list(map(bytes.split, rests))
    first = int(om)  # OpenMetrics rests start with their one space: an empty first field
    fields = np.fromiter(map(len, parts), np.intp, n) - first
    if ((fields < 1) | (fields > 2)).any():
        return None
    tokens = list(map(itemgetter(first), parts))
    try:
        values = np.array(tokens, dtype=object).astype(np.float64)
        _check_special(values, tokens)
    except ValueError:  # SampleError included: convert_slow reports it with its offset
        return None
    stamps = np.full(n, np.nan)
    two = np.flatnonzero(fields == 2)
    if len(two):
        raw = list(map(itemgetter(first + 1), map(parts.__getitem__, two.tolist())))
        converted = _timestamps(raw, om)
        if converted is None:
            return None
        stamps[two] = converted
    return values, stamps


def _timestamps(raw: list[bytes], om: bool) -> Floats | None:
    joined = b",".join(raw)
    allowed = b"0123456789.eE+-," if om else b"0123456789+-,"
    if joined.translate(None, allowed) or joined.count(b",") != len(raw) - 1:
        return None
    try:
        if om:
            stamps = np.array(raw, dtype=object).astype(np.float64)
            return stamps if np.isfinite(stamps).all() else None
        millis = list(map(int, raw))
    except ValueError:
        return None
    if max(map(len, raw)) >= 19 and not all(_INT64[0] <= t <= _INT64[1] for t in millis):
        return None
    # int / int is correctly rounded, like the reference parser's ``ms / 1000``.
    return np.fromiter(map(truediv, millis, repeat(1000)), np.float64, len(millis))


def convert_slow(rests: list[bytes], om: bool) -> tuple[Floats, Floats]:
    """The reference conversion, one rest at a time; raises SampleError at the first bad."""
    values, stamps = np.empty(len(rests)), np.full(len(rests), np.nan)
    for k, rest in enumerate(rests):
        fields = _fields(k, rest, om)
        if not fields:
            raise SampleError(k, "a sample value after the series", len(rest))
        (at, token) = fields[0]
        if not _VALUE.fullmatch(token):
            raise SampleError(k, _EXPECTED_VALUE, at)
        values[k] = float(token)
        if not np.isfinite(values[k]) and not _SPECIAL.fullmatch(token):
            raise SampleError(k, _EXPECTED_VALUE, at)
        if len(fields) > 1:
            stamps[k] = _timestamp_slow(k, *fields[1], om)
        if len(fields) > 2:
            raise SampleError(k, "the end of the line after the timestamp", fields[2][0])
    return values, stamps


def _fields(k: int, rest: bytes, om: bool) -> list[tuple[int, bytes]]:
    if not om:
        return [(m.start(), m.group()) for m in _TOKEN.finditer(rest)]
    if rest[:1] != b" ":
        raise SampleError(k, "one space and the sample value after the series", 0)
    fields, at = [], 1
    for token in rest[1:].split(b" "):
        if not token:
            raise SampleError(k, "exactly one space between fields (OpenMetrics)", at)
        fields.append((at, token))
        at += len(token) + 1
    return fields


def _timestamp_slow(k: int, at: int, token: bytes, om: bool) -> float:
    if om:
        seconds = float(token) if _TS[True].fullmatch(token) else np.nan
        if not np.isfinite(seconds):
            raise SampleError(k, "a timestamp in seconds (a finite float)", at)
        return seconds
    millis = int(token) if _TS[False].fullmatch(token) else None
    if millis is None or not _INT64[0] <= millis <= _INT64[1]:
        raise SampleError(k, "a timestamp in milliseconds (an int64)", at)
    return millis / 1000
