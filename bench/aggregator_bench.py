"""One aggregator interval at scale: parse + ingest + cost (+ store) for N nodes × 110 pods.

Payloads are real: one simulated 110-pod node's exporter is scraped twice (60 s of
simulated time apart), then each copy is given its own node name and pod uids, so
every target has distinct series. The first round fills the series caches (cold);
the measured round is a steady-state interval, on one core (CPU seconds of this
process, and wall time), against the 60-second budget.

    .venv/bin/python bench/aggregator_bench.py [--nodes 1000] [--quick] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write_section

from aggregator import cost
from aggregator.ingest import Ingest, TargetScrape
from aggregator.pricebook import load_price_book
from aggregator.service import blocks
from aggregator.store import Store
from aggregator.textparse import SeriesTable, parse
from exporter.app import build_exporter
from exporter.config import ExporterConfig
from exporter.kube import api_client_from
from exporter.simulate.node import SimulatedNode

_UID = re.compile(rb"[0-9a-f]{8}(-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def payloads(pods: int) -> tuple[bytes, bytes, str]:
    """Two scrapes of one simulated node's real exporter, 60 s of node time apart."""
    with tempfile.TemporaryDirectory() as work, SimulatedNode(work, seed=1, pods=pods,
                                                              gpu=False) as sim:
        exporter = build_exporter(
            ExporterConfig(node_name=sim.node_name, cgroup_root=sim.cgroup_root,
                           proc_root=sim.proc_root, host="127.0.0.1", port=0, gpu=False),
            api_client_from(host=sim.api_url), None)
        exporter.start()
        exporter.pods.wait_synced(30)
        exporter.nodes.wait_synced(30)
        url = f"http://127.0.0.1:{exporter.server.port}/metrics"
        sim.advance(sim.now + 60)
        first = urllib.request.urlopen(url).read()
        sim.advance(sim.now + 60)
        second = urllib.request.urlopen(url).read()
        exporter.stop()
        return first, second, sim.node_name


def variant(body: bytes, node: str, i: int) -> bytes:
    """The payload as node ``i`` would serve it: its own node name and pod uids."""
    body = body.replace(node.encode(), f"node-{i:05d}".encode())
    return _UID.sub(lambda m: f"{i:08x}".encode() + m.group(1), body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=110)
    ap.add_argument("--quick", action="store_true", help="20 nodes (CI smoke run)")
    ap.add_argument("--write", type=Path, help="update this markdown file's section")
    args = ap.parse_args()
    nodes = 20 if args.quick else args.nodes
    first, second, node = payloads(args.pods)
    rounds = [[variant(first, node, i) for i in range(nodes)],
              [variant(second, node, i) for i in range(nodes)]]
    samples = len(parse(rounds[1][0], SeriesTable())) * nodes
    prices = load_price_book(None, environ={})
    ingest = Ingest("bench")
    timings: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as store_dir:
        store = Store(store_dir)
        t_start = 1_764_000_000 + 1800  # mid-hour: the measured append does not seal
        for k, bodies in enumerate(rounds):
            c0, w0 = time.process_time(), time.perf_counter()
            scrapes = [TargetScrape(f"t{i}", parse(b, ingest.state(f"t{i}").table),
                                    t_start + 60 * k) for i, b in enumerate(bodies)]
            c1, w1 = time.process_time(), time.perf_counter()
            frame = ingest.frame(t_start + 60 * k - 60, t_start + 60 * k, scrapes)
            c2, w2 = time.process_time(), time.perf_counter()
            priced = cost.compute(frame, prices.node_unit_prices(frame.nodes))
            c3, w3 = time.process_time(), time.perf_counter()
            store.append(t_start + 60 * k - 60, t_start + 60 * k, *blocks(frame, priced))
            c4, w4 = time.process_time(), time.perf_counter()
            timings = {"parse": (c1 - c0, w1 - w0), "ingest": (c2 - c1, w2 - w1),
                       "cost": (c3 - c2, w3 - w2), "store append (WAL, fsync)": (c4 - c3, w4 - w3)}
        store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total_cpu = sum(v[0] for v in timings.values())
    rows = ["| stage | CPU s | wall s |", "|---|---:|---:|"]
    rows += [f"| {k} | {c:.3f} | {w:.3f} |" for k, (c, w) in timings.items()]
    rows.append(f"| **one interval** | **{total_cpu:.3f}** | "
                f"**{sum(v[1] for v in timings.values()):.3f}** |")
    body = "\n".join([
        f"{nodes} nodes × {args.pods} pods ({len(frame.containers):,} containers, "
        f"{samples:,} samples), steady state after one cold interval; one process, one core.",
        "", *rows, "",
        f"**{total_cpu:.2f} CPU seconds per 60 s interval = {total_cpu / 60:.1%} of one core** "
        f"(target: well under the interval); peak RSS {peak:.0f} MiB.", "",
        "Command: `.venv/bin/python bench/aggregator_bench.py --write docs/benchmarks.md`."])
    print(body)
    if args.write:
        write_section(args.write, "aggregator", "## Aggregator: one interval at scale\n\n" + body)


if __name__ == "__main__":
    main()
