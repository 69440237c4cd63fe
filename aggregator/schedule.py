"""Wall-clock aligned intervals: every aggregator scrapes at the same multiples of the interval.

Aligning to the epoch (12:00:00, 12:01:00, ...) instead of to the process start makes the
windows identical across replicas and restarts: two shards' rows for 12:01 cover the same
minute and can be summed, and a restarted aggregator resumes on the same grid.

Boundaries are computed from an integer index ``k`` as ``k * interval`` (one rounding),
never by adding ``interval`` repeatedly, so they do not drift over months of uptime and
each boundary is the same float wherever it is computed.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator

from aggregator.errors import AggregatorError

__all__ = ["ScheduleError", "Ticker", "interval_of", "next_boundary"]


class ScheduleError(AggregatorError, ValueError):
    """An interval that is not a positive finite number, or a time that is not finite."""


def _index(now: float, interval: float) -> int:
    """The smallest integer k with ``k * interval > now`` (as floats)."""
    if not (math.isfinite(interval) and interval > 0):
        raise ScheduleError(f"the interval must be a positive number of seconds, not {interval}")
    if not math.isfinite(now):
        raise ScheduleError(f"the time must be finite, not {now}")
    k = math.floor(now / interval) + 1
    # The division rounds: near a boundary the estimate can be one off either way.
    while k * interval <= now:
        k += 1
    while (k - 1) * interval > now:
        k -= 1
    return k


def next_boundary(now: float, interval: float) -> float:
    """The first multiple of ``interval`` (seconds since the epoch) strictly after ``now``.

    So ``now < next_boundary(now, i) <= now + i``; at a boundary it returns the next one.
    """
    return _index(now, interval) * interval


def interval_of(t: float, interval: float) -> tuple[float, float]:
    """The window ``(start, end)`` holding ``t``: ``start <= t < end``, both multiples."""
    k = _index(t, interval)
    return (k - 1) * interval, k * interval


class Ticker:
    """Iterate over the windows as they end: yields ``(start, end)`` once ``end`` has passed.

    When the loop body overruns a boundary, the boundaries already past are not yielded
    late (a late scrape would be stamped with a window it does not belong to); the ticker
    waits for the next one and counts the windows it dropped in :attr:`skipped`. A wall
    clock stepped backwards never repeats a window.

    ``clock`` and ``wait`` exist for tests: ``wait(seconds)`` sleeps and returns True when
    the ticker should stop (by default, an event that :meth:`stop` sets).
    """

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.time,
                 wait: Callable[[float], bool] | None = None) -> None:
        _index(0.0, interval)  # validate now, not at the first iteration
        self.interval = interval
        self.skipped = 0
        self._clock = clock
        self._stopping = threading.Event()
        self._wait = wait or self._stopping.wait

    def stop(self) -> None:
        """End the iteration at its next wait (safe from any thread)."""
        self._stopping.set()

    def __iter__(self) -> Iterator[tuple[float, float]]:
        k = _index(self._clock(), self.interval)
        while True:
            end = k * self.interval
            # Sleep in steps: the wait's monotonic clock and the wall clock can disagree.
            while (delay := end - self._clock()) > 0:
                if self._wait(delay) or self._stopping.is_set():
                    return
            if self._stopping.is_set():
                return
            yield (k - 1) * self.interval, end
            following = _index(max(self._clock(), end), self.interval)
            self.skipped += following - k - 1
            k = following
