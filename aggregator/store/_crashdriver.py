"""Append synthetic intervals as fast as possible, for the SIGKILL test.

``python -m aggregator.store._crashdriver DIR [--step S] [--containers N]`` opens (and so
recovers) the store in DIR, re-appends the last durable interval (which must be a
no-op), then appends one interval after another with synthetic timestamps, printing
``ack <start>`` after each append returns and running maintenance at each hour so that
seals and rollups happen every few appends. A test kills it at random moments and checks
that every acknowledged interval is stored exactly once. Retention is off (very long) so
that everything written stays checkable.
"""

from __future__ import annotations

import argparse
import sys

from aggregator.store.layout import Retention
from aggregator.store.synthetic import SimCluster
from aggregator.store.writer import Store

#: 2024-01-31 00:00 UTC: a day and a month end after 24 synthetic hours, so the first
#: hourly and daily rollups come early.
T0 = 1_706_659_200
FOREVER = 100 * 365 * 86400


def main(argv: list[str] | None = None) -> int:
    """Run until killed (or ``--count`` appends)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--step", type=int, default=3600)
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    args = parser.parse_args(argv)
    sim = SimCluster(args.containers, nodes=2, seed=7)
    store = Store(args.dir, step=args.step,
                  retention=Retention(raw=FOREVER, hourly=FOREVER, daily=FOREVER))
    last = store.last_start()
    if last is not None:
        store.append(last, last + args.step, *sim.blocks(last, last + args.step))
    start = T0 if last is None else last + args.step
    print(f"ready {start}", flush=True)
    done = 0
    while not args.count or done < args.count:
        end = start + args.step
        store.append(start, end, *sim.blocks(start, end))
        print(f"ack {start}", flush=True)
        if end % 3600 == 0:
            store.maintain(end)
        start, done = end, done + 1
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
