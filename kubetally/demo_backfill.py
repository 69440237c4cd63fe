"""History for the demo: past intervals through the real scrape → cost → store path.

Why hour-long intervals by default: one backfilled interval costs the same whatever its
length (advance every node, scrape every exporter, parse, cost, append), and every
stored measure is additive over time (core-hours, dollars, minutes: see
:mod:`aggregator.measures`), so an hour stored as one 3600-s row sums to the same
dollars as sixty 60-s rows. Measured on the 2-core reference VM with 5 nodes: one step
≈ 0.15 s, plus ≈ 0.17 s per sealed hour (≈ 150 fsynced files), so 7 days take ≈ 55 s
at 3600 s, ≈ 3 minutes at 600 s and ≈ 30 minutes at 60 s.

Intervals are cut at every multiple of ``step`` (which divides an hour, so no interval
straddles an hour and each raw partition holds whole intervals) and at the window's
ends, which need not be aligned: the last one runs from the last hour boundary to the
live loop's first boundary, so the live intervals continue the history without a gap.
What mixed lengths mean for readers: the hourly and daily tiers are exact; a raw-tier
query at a step finer than an hour puts a backfilled hour's whole row in its first step.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from aggregator.service import StepReport
from kubetally.demo_cluster import DemoCluster

__all__ = ["Progress", "backfill", "count", "intervals", "last_boundary"]


def last_boundary(t: float, interval: int) -> int:
    """The latest multiple of ``interval`` (Unix seconds) at or before ``t``."""
    return int(t) - int(t) % interval


def intervals(start: int, end: int, step: int) -> Iterator[tuple[int, int]]:
    """``[start, end)`` cut at every multiple of ``step`` between them."""
    a = start
    while a < end:
        b = min(end, last_boundary(a, step) + step)
        yield a, b
        a = b


class Progress:
    """A one-line progress bar on a terminal, a few plain lines otherwise (CI logs)."""

    def __init__(self, total: int, label: str, out: TextIO | None = None) -> None:
        self.total, self.label, self.out = max(total, 1), label, out or sys.stderr
        self.done, self._t0, self._shown = 0, time.monotonic(), -1.0
        self._tty = self.out.isatty()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more done; redraw at most ten times a second (or every 25%)."""
        self.done += n
        now = time.monotonic()
        if self._tty and now - self._shown < 0.1 and self.done < self.total:
            return
        if not self._tty and self.done < self.total and \
                self.done * 4 // self.total == (self.done - n) * 4 // self.total:
            return
        self._shown = now
        frac = min(self.done / self.total, 1.0)
        bar = "#" * int(frac * 30)
        line = f"{self.label} [{bar:<30}] {self.done}/{self.total} {now - self._t0:5.1f}s"
        self.out.write(f"\r{line}" if self._tty else f"{line}\n")
        self.out.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self._tty:
            self.out.write("\n")
            self.out.flush()


def backfill(cluster: DemoCluster, start: int, end: int, step: int, *,
             stop: threading.Event, progress: Progress | None = None,
             on_step: Callable[[StepReport], None] | None = None) -> int:
    """Store ``[start, end)`` in intervals of ``step``; returns how far it got.

    Every node is moved to an interval's end before the interval is scraped, and the
    scrape is stamped with that end (``at``), so counter rates use simulated time.
    Returns early (at the last interval stored) when ``stop`` is set.
    """
    assert cluster.running is not None
    aggregator = cluster.running.aggregator
    done = start
    for a, b in intervals(start, end, step):
        if stop.is_set():
            break
        cluster.advance(b)
        report = aggregator.step(a, b, at=b)
        if on_step is not None:
            on_step(report)
        done = b
        if progress is not None:
            progress.update()
    return done


def count(start: int, end: int, step: int) -> int:
    """How many intervals :func:`backfill` will store (for the progress bar)."""
    return sum(1 for _ in intervals(start, end, step))
