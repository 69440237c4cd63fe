"""``kubetally demo``: a simulated cluster with days of cost history, then live, in a minute.

A platform engineer on a fresh machine should see real numbers before they lose
interest, from the production code rather than canned data. So the demo starts N
simulated nodes (node 0 a p4d.24xlarge with whole, time-sliced and MIG A100s; the
others of instance types and spot/on-demand drawn from the seed), a real exporter on
each and the real aggregator over them (:mod:`kubetally.demo_cluster`); it backfills
``--days`` of history through the aggregator's own interval path, moving the nodes
in simulated time (:mod:`kubetally.demo_backfill`, which explains the hour-long
backfill intervals); it prints a summary read back from the store with the API's
reader (:mod:`kubetally.demo_summary`); and then it keeps going live on the wall
clock, with the REST API over the store (:mod:`kubetally.demo_api`), until Ctrl-C or
SIGTERM, or exits at once with ``--once`` (tests, CI).

Timeline: history is ``[end - days, end)`` with ``end`` the last live-interval boundary
before now; the backfill catches up with the boundaries that pass while it runs, so the
live loop's first interval starts exactly where the history stops. ``--keep`` continues
an existing store instead, from the next full hour after its last interval (the hours it
already closed cannot be written again).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from kubetally.config import ConfigValueError, option
from kubetally.demo_api import api_commands, start_api
from kubetally.demo_backfill import Progress, backfill, count, last_boundary
from kubetally.demo_cluster import DemoCluster, start_cluster
from kubetally.demo_store import prepare_store, resume_point
from kubetally.demo_summary import curl_commands, format_summary, summarize

__all__ = ["SECTION", "DemoConfig", "run_demo"]

SECTION = "demo"
DAY = 86400


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """Options of ``kubetally demo``."""

    nodes: int = option(5, "simulated nodes; node 0 is a GPU node (whole, time-sliced and MIG "
                           "A100s)")
    pods: int = option(30, "pods per simulated node (on the GPU node, its GPU pods included)")
    seed: int = option(1, "seed of the simulated cluster (instance types, spot, workloads)")
    days: float = option(7.0, "days of history to backfill before going live")
    backfill_step: int = option(3600, "seconds per backfilled interval (must divide 3600)")
    interval: int = option(60, "seconds between live scrapes (e.g. 10 for a snappier demo)")
    store: str = option("./kubetally-demo-data", "store directory, wiped at start unless --keep")
    keep: bool = option(False, "continue the store's existing data instead of wiping it")
    host: str = option("127.0.0.1", "address the aggregator's /metrics and the API listen on")
    port: int = option(9103, "port of the aggregator's /metrics (an ephemeral one when taken)")
    api_port: int = option(9000, "port of the REST API while live (an ephemeral one when taken)")
    once: bool = option(False, "exit after the backfill and the summary (tests, CI)")


def _validate(cfg: DemoConfig) -> None:
    """Refuse values the store or the scheduler would reject later, with the flag's name."""
    checks = (
        (cfg.nodes >= 1, "--nodes must be at least 1"),
        (cfg.pods >= 1, "--pods must be at least 1"),
        (cfg.days > 0, "--days must be positive"),
        (0 < cfg.backfill_step <= 3600 and 3600 % cfg.backfill_step == 0,
         "--backfill-step must divide 3600 (e.g. 600, 900, 3600)"),
        (0 < cfg.interval <= 3600, "--interval must be 1..3600 seconds"),
    )
    for ok, message in checks:
        if not ok:
            raise ConfigValueError(message)


def _on_signals(stop: threading.Event) -> Callable[[], None]:
    """Set ``stop`` on SIGINT/SIGTERM (main thread only); returns what restores the old
    handlers, so an in-process caller (a test) gets its own handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT,
                                                                      signal.SIGTERM)}
    return lambda: [signal.signal(sig, handler) for sig, handler in old.items()] and None


def _describe(cluster: DemoCluster) -> str:
    lines = []
    for i, sim in enumerate(cluster.sims):
        gpus = f", {len(sim.model.gpus)} GPUs" if sim.model.gpus else ""
        lines.append(f"  node{i} {sim.node_name} {sim.instance_type} "
                     f"{sim.model.capacity_type}, {len(sim.pods)} pods{gpus}, exporter "
                     f"{cluster.exporter_urls[i]}")
    return "\n".join(lines)


def _history(cluster: DemoCluster, cfg: DemoConfig, start: int, end: int,
             stop: threading.Event, out: TextIO) -> int:
    """Backfill ``[start, end)``, then the boundaries that passed meanwhile; returns the end."""
    progress = Progress(count(start, end, cfg.backfill_step), "backfill")
    t0 = time.monotonic()
    done = backfill(cluster, start, end, cfg.backfill_step, stop=stop, progress=progress)
    progress.close()
    while not stop.is_set() and (now := last_boundary(time.time(), cfg.interval)) > done:
        done = backfill(cluster, done, now, cfg.backfill_step, stop=stop)
    print(f"backfilled {(done - start) / DAY:.2f} days in {time.monotonic() - t0:.1f}s",
          file=out, flush=True)
    return done


def _live(cluster: DemoCluster, cfg: DemoConfig, stop: threading.Event, out: TextIO) -> bool:
    """Run the nodes on the wall clock and the aggregator's loop until ``stop``.

    False when the aggregator's loop died first (its exception is in the log).
    """
    assert cluster.running is not None
    aggregator = cluster.running.aggregator
    tick = max(0.5, min(5.0, cfg.interval / 10))  # counters lag the wall clock by ≤ tick
    for sim in cluster.sims:
        sim.run_in_background(tick)
    loop = threading.Thread(target=aggregator.run, args=(cfg.interval,), name="demo-aggregator")
    loop.start()
    api = start_api(cfg.store, cfg.host, cfg.api_port)
    print(curl_commands(cluster.exporter_urls, cluster.metrics_port, cfg.store), file=out)
    if api is not None:
        print(api_commands(api.port), file=out)
    print(f"ready: live, one interval every {cfg.interval}s into {cfg.store}; "
          "Ctrl-C to stop", file=out, flush=True)
    try:
        while not stop.wait(1.0):
            if not loop.is_alive():
                return False
        return True
    finally:
        if api is not None:
            api.close()
        aggregator.stop()
        loop.join(timeout=max(60.0, 2.0 * cfg.interval))


def run_demo(cfg: DemoConfig, *, out: TextIO | None = None,
             stop: threading.Event | None = None) -> int:
    """Run the demo; 0 when it ends normally or on SIGINT/SIGTERM, 1 if the loop died."""
    out = out or sys.stdout
    stop = stop or threading.Event()
    _validate(cfg)
    prepare_store(Path(cfg.store), keep=cfg.keep)
    restore = _on_signals(stop)
    try:
        end = last_boundary(time.time(), cfg.interval)
        start = end - round(cfg.days * DAY)
        cluster = start_cluster(nodes=cfg.nodes, pods=cfg.pods, seed=cfg.seed, start=start,
                                store=cfg.store, interval=cfg.interval, host=cfg.host,
                                port=cfg.port)
        try:
            if cfg.keep:
                start = resume_point(cluster, start)
            print(f"kubetally demo: {cfg.nodes} simulated nodes, backfilling "
                  f"{(end - start) / DAY:.2f} days into {cfg.store}\n{_describe(cluster)}",
                  file=out, flush=True)
            done = _history(cluster, cfg, start, end, stop, out)
            if stop.is_set():
                print("interrupted during the backfill; stopped cleanly", file=out)
                return 0
            window = done - round(cfg.days * DAY)
            print(format_summary(summarize(cfg.store, window, done)), file=out, flush=True)
            if not cfg.once:
                if not _live(cluster, cfg, stop, out):
                    print("kubetally demo: the aggregator loop died; see the log above",
                          file=sys.stderr)
                    return 1
                print("stopped cleanly", file=out, flush=True)
        finally:
            cluster.close()
    finally:
        restore()
    return 0
