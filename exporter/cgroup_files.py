"""Parsers for the contents of cgroup interface files, and a fast reader.

They run for every container on every scrape (about a thousand files on a
full node), so they stay small: one ``open``/``read``/``close`` per file
through raw file descriptors, no text-mode file objects, no decoding on the
hot path (:func:`pick_flat_keyed` finds the few keys it needs with
``bytes.find``; :func:`parse_flat_keyed` is the general, full parser).
Parsers are strict: content that is not what the kernel writes raises
:class:`ValueError`, so a corrupt or truncated file is counted as an error by
the caller instead of turning into plausible-looking numbers.
"""

from __future__ import annotations

import functools
import math
import os

__all__ = [
    "parse_flat_keyed",
    "parse_int",
    "parse_int_or_max",
    "pick_flat_keyed",
    "read_file",
]

_READ_SIZE = 65536
_O_FLAGS = os.O_RDONLY | os.O_CLOEXEC


def read_file(path: str) -> bytes:
    """The whole content of a (pseudo-)file, read with raw file descriptors.

    cgroup files report size 0, so the size cannot be trusted: read until EOF.
    Raises OSError (FileNotFoundError when the file or its cgroup is gone,
    ENODEV when the cgroup was removed between open and read).
    """
    fd = os.open(path, _O_FLAGS)
    try:
        data = os.read(fd, _READ_SIZE)
        if len(data) < _READ_SIZE:
            # seq_file and regular files fill the buffer while content remains, so a short
            # read is the whole file: this saves the EOF read, a third of the syscalls.
            return data
        chunks = [data]
        while chunk := os.read(fd, _READ_SIZE):
            chunks.append(chunk)
        return b"".join(chunks) if len(chunks) > 1 else data
    finally:
        os.close(fd)


def _text(data: bytes | str) -> str:
    """ASCII text of the file; UnicodeDecodeError is a ValueError, as callers expect."""
    return data.decode("ascii") if isinstance(data, bytes) else data


def parse_flat_keyed(data: bytes | str) -> dict[str, int]:
    """Parse a flat keyed file (``cpu.stat``, ``memory.stat``): ``key value`` lines.

    Blank lines are skipped; a line that is not exactly a key and an integer
    raises ValueError, and so does a repeated key, which the kernel never writes.
    """
    table: dict[str, int] = {}
    for line in _text(data).splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ValueError(f"not a 'key value' line: {line!r}")
        key, value = fields
        if key in table:
            raise ValueError(f"repeated key {key!r}")
        table[key] = int(value)
    return table


@functools.lru_cache(maxsize=64)
def _needles(keys: tuple[str, ...]) -> tuple[bytes, ...]:
    """Search strings for whole keys: newline before, space after (``anon`` ≠ ``anon_thp``)."""
    return tuple(b"\n" + key.encode("ascii") + b" " for key in keys)


def pick_flat_keyed(data: bytes, keys: tuple[str, ...]) -> list[int | None]:
    """The values of a few keys of a flat keyed file, None for a key that is absent.

    The hot-path alternative to :func:`parse_flat_keyed`: the reader needs 2 of
    the ~50 ``memory.stat`` keys, and a C-level ``bytes.find`` per key is several
    times faster than splitting and converting every line. Only the picked
    values are checked; one that is not an integer raises ValueError.
    """
    text = b"\n" + data
    values: list[int | None] = []
    for needle in _needles(keys):
        start = text.find(needle)
        if start < 0:
            values.append(None)
            continue
        start += len(needle)
        end = text.find(b"\n", start)
        values.append(int(text[start:end] if end >= 0 else text[start:]))
    return values


def parse_int(data: bytes | str) -> int:
    """Parse a single-integer file (``memory.current``, ``cpuacct.usage``).

    ``int`` takes bytes directly, rejects empty text, inner spaces and
    non-ASCII digits in bytes, and allows the trailing newline: all the
    strictness needed, without a decode.
    """
    return int(data)


def parse_int_or_max(data: bytes | str) -> float:
    """Parse a single-value limit file of cgroup v2 (``memory.max``, ``pids.max``).

    The kernel writes ``max`` for "no limit"; that becomes ``math.inf`` so
    that comparisons against usage keep working without a special case.
    """
    text = _text(data).strip()
    if text == "max":
        return math.inf
    return float(parse_int(text))
