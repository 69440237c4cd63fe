"""Errors of the store.

Every failure the store raises on purpose is a :class:`StoreError`, so the aggregator's
loop and the API can catch one type. The subclasses say whose fault it is: the caller's
input (:class:`StoreInputError`, :class:`QueryError`), the disk or object store underneath
(:class:`StoreIOError`, which chains the ``OSError``), or data on disk that does not follow
the layout (:class:`CorruptStoreError`). None of them means data already stored was lost:
the store checks input before it changes anything, and a failed write leaves the previous
durable state in place.
"""

from __future__ import annotations

from aggregator.errors import AggregatorError

__all__ = ["CorruptStoreError", "LateIntervalError", "QueryError", "StoreError",
           "StoreIOError", "StoreInputError"]


class StoreError(AggregatorError):
    """Base of every error the store raises on purpose."""


class StoreInputError(StoreError):
    """A block or argument handed to the writer is malformed; nothing was stored."""


class LateIntervalError(StoreInputError):
    """An interval belongs to an hour the writer has already closed (sealed or passed).

    Intervals arrive in time order; once a later hour opened, an earlier one is immutable.
    """


class QueryError(StoreError):
    """A query parameter is invalid; ``param`` names it, so the API can answer 400 with it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (QueryError, (self.param, self.message))


class StoreIOError(StoreError):
    """The filesystem or object store failed (read-only, full, gone); ``__cause__`` says how."""


class CorruptStoreError(StoreError):
    """Something on disk does not follow the layout (a foreign file, a bad WAL header)."""
