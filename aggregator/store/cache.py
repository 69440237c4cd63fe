"""A bounded (bytes) LRU of what queries derive from sealed partitions.

Sealed partitions never change, so what a query computes from one (its row times, its
series grouped by some columns, its rows summed per step for each series) can be kept and
reused, as long as the key names that very commit: keys start with the backend's
:meth:`~aggregator.store.backend.Backend.fingerprint` of the partition, which a partition
written again at the same place (after retention deleted it) does not share. Entries are
read-only numpy arrays, so a query cannot corrupt what the next one gets. A lock makes it
safe to share between the API's threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np

__all__ = ["PartitionCache", "nbytes"]

_OBJECT_BYTES = 64  # a short str behind each slot of an object array, roughly


def nbytes(value: Any) -> int:
    """Roughly the memory ``value`` holds: numpy buffers, in tuples, lists, dicts, objects."""
    if isinstance(value, np.ndarray):
        return value.nbytes + (value.size * _OBJECT_BYTES if value.dtype == object else 0)
    if isinstance(value, tuple | list):
        return 64 + sum(nbytes(v) for v in value)
    if isinstance(value, dict):
        return 64 + sum(nbytes(v) for v in value.values())
    if hasattr(value, "__dict__"):
        return 64 + sum(nbytes(v) for v in vars(value).values())
    if hasattr(value, "__dataclass_fields__"):
        return 64 + sum(nbytes(getattr(value, f)) for f in value.__dataclass_fields__)
    return 64


def _freeze(value: Any) -> None:
    """Make the arrays of an entry read-only, so sharing it between queries is safe."""
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, tuple | list):
        for v in value:
            _freeze(v)
    elif isinstance(value, dict):
        for v in value.values():
            _freeze(v)
    elif hasattr(value, "__dataclass_fields__"):
        for f in value.__dataclass_fields__:
            _freeze(getattr(value, f))


class PartitionCache:
    """Least recently used entries are dropped once the total passes ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def size(self) -> int:
        """Bytes held now (as :func:`nbytes` estimates them)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Any | None:
        """The entry, marked most recently used; None when absent."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found[0]

    def put(self, key: Hashable, value: Any) -> None:
        """Keep ``value`` (frozen) unless it alone is larger than the whole budget."""
        size = nbytes(value)
        if size > self.max_bytes:
            return
        _freeze(value)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
