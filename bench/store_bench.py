"""Store benchmark: codec choice, bytes per sample, append/seal throughput, query latency.

    python bench/store_bench.py codecs            # compare codecs on one hour, 10k containers
    python bench/store_bench.py day [--containers N] [--dir D]
    python bench/store_bench.py query [--containers N] [--dir D]

``day`` appends a simulated day (10,000 containers at 60 s by default) through
``Store.append`` (WAL + fsync per interval, a seal per hour), reports bytes per stored
sample and throughput, then rolls the day up. ``query`` writes 49 days of hourly
partitions (January rolled into a daily one) and times a 30-day, 1-day-step query
grouped by namespace. Nothing here asserts; numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import zarr
from report import write_section
from zarr.codecs import BloscCodec, TransposeCodec, ZstdCodec

from aggregator.store import Store, StoreReader
from aggregator.store.backend import open_backend
from aggregator.store.layout import DAILY, DAY, HOUR, HOURLY, TABLES, USAGE_MEASURES, quantise
from aggregator.store.partition import write_partition
from aggregator.store.rollup import roll_up
from aggregator.store.synthetic import SimCluster

T0 = 1_704_067_200  # 2024-01-01 00:00 UTC


def _bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def codecs(n: int) -> None:
    sim = SimCluster(n, seed=1)
    rows = [sim.blocks(T0 + 60 * k, T0 + 60 * k + 60)[0].measures for k in range(60)]
    data = {m: np.stack([r[m] for r in rows]) for m in rows[0]}
    for m in USAGE_MEASURES & set(data):
        data[m] = quantise(data[m])
    t = [TransposeCodec(order=(1, 0))]
    options = {
        "blosc zstd5 shuffle": {"compressors": [BloscCodec(cname="zstd", clevel=5,
                                                           shuffle="shuffle")]},
        "T + blosc zstd5 shuffle": {"filters": t, "compressors": [
            BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")]},
        "T + blosc zstd5 bitshuffle": {"filters": t, "compressors": [
            BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")]},
        "T + blosc lz4 shuffle": {"filters": t, "compressors": [
            BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]},
        "T + zstd5": {"filters": t, "compressors": [ZstdCodec(level=5)]},
    }
    print(f"one hour, {n} containers, usage rounded to 13 bits; bytes per sample")
    print(f"{'codec':28s} {'usage':>7s} {'exact':>7s} {'write s':>8s}")
    for name, kw in options.items():
        d = tempfile.mkdtemp()
        g = zarr.open_group(d, mode="w")
        t0 = time.perf_counter()
        for m, v in data.items():
            g.create_array(m, shape=v.shape, chunks=v.shape, dtype="f8", fill_value=np.nan,
                           **kw)[:] = v
        dt = time.perf_counter() - t0
        size = {m: _bytes(Path(d) / m) - (Path(d) / m / "zarr.json").stat().st_size
                for m in data}
        usage = [size[m] / data[m].size for m in data if m in USAGE_MEASURES]
        exact = [size[m] / data[m].size for m in data if m not in USAGE_MEASURES]
        print(f"{name:28s} {np.mean(usage):7.3f} {np.mean(exact):7.3f} {dt:8.2f}")
        shutil.rmtree(d)


def day(n: int, root: Path, days: int = 1) -> str:
    shutil.rmtree(root, ignore_errors=True)
    sim = SimCluster(n, seed=1)
    store = Store(root, step=60)
    append_s, seal_s, gen_s = [], [], 0.0
    wal_sizes: list[int] = []
    last = days * 24 * 60
    for k in range(last + 1):
        start = T0 + 60 * k
        t0 = time.perf_counter()
        blocks = sim.blocks(start, start + 60)
        t1 = time.perf_counter()
        store.append(start, start + 60, *blocks)
        t2 = time.perf_counter()
        gen_s += t1 - t0
        (seal_s if k and k % 60 == 0 else append_s).append(t2 - t1)
        if k in (last - 60, last - 1):  # one record, then sixty, in the last hour
            wal_sizes.append(next((root / "shard-0-of-1" / "wal").glob("*.wal")).stat().st_size)
    raw = root / "shard-0-of-1" / "raw"
    raw_bytes = _bytes(raw)
    samples = last * n * len(TABLES["containers"].measures)
    node_samples = last * sim.nodes * len(TABLES["nodes"].measures)
    t0 = time.perf_counter()
    store.maintain(T0 + days * DAY + 120)
    roll_s = time.perf_counter() - t0
    hourly_bytes = _bytes(root / "shard-0-of-1" / "hourly")
    store.close()
    per_sample = raw_bytes / (samples + node_samples)
    lines = [
        f"{days} day(s) of {n:,} containers + {sim.nodes} nodes at 60 s through `Store.append` "
        f"({24 * days} raw partitions, {samples + node_samples:,} stored float samples).", "",
        "| measure | value |", "|---|---|",
        f"| raw tier on disk | {raw_bytes / 1e6:.1f} MB |",
        f"| **bytes per stored sample (raw, series tables and metadata included)** | "
        f"**{per_sample:.3f}** |",
        f"| hourly tier of the same period | {hourly_bytes / 1e6:.2f} MB "
        f"({hourly_bytes / (24 * days * (n * 14 + sim.nodes * 10)):.3f} B/sample) |",
        f"| WAL, a full open hour | {wal_sizes[1] / 1e6:.0f} MB |",
        f"| append (validate + WAL fsync + head), median / p99 | "
        f"{statistics.median(append_s) * 1e3:.1f} / {np.percentile(append_s, 99) * 1e3:.1f} ms |",
        f"| append that seals an hour, median | {statistics.median(seal_s):.2f} s |",
        f"| rolling the period up (raw → hourly) | {roll_s:.2f} s |",
        "", "Usage measures keep 13 mantissa bits (relative error ≤ 6.1e-5); costs, hours and "
        "minutes are exact float64; Blosc zstd-5 with shuffle over series-major chunks.", "",
        f"Command: `.venv/bin/python bench/store_bench.py day --days {days} "
        "--write docs/benchmarks.md`."]
    body = "\n".join(lines)
    print(body)
    return body


def query(n: int, root: Path) -> None:
    sim = SimCluster(n, seed=2, namespaces=40)
    backend = open_backend(root)
    shard = "shard-0-of-1"
    if not (root / shard / "daily").exists():
        shutil.rmtree(root, ignore_errors=True)
        t0 = time.perf_counter()
        for d in range(49):  # Jan 1 – Feb 18
            start = T0 + d * DAY
            write_partition(backend, shard, HOURLY, HOURLY.period_of(start),
                            {t: sim.hourly_day(start, t) for t in TABLES}, HOUR)
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        roll_up(backend, shard, HOURLY, DAILY, T0 + 49 * DAY)
        print(f"built 49 hourly partitions in {built:.1f} s, rolled January up in "
              f"{time.perf_counter() - t0:.1f} s")
    reader = StoreReader(root)
    start, end = T0 + 19 * DAY, T0 + 49 * DAY  # Jan 20 – Feb 18: 12 days daily, 18 hourly
    for measures in (None, ["cpu_cost", "ram_cost", "gpu_cost"]):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            res = reader.query(start, end, DAY, ["namespace"], measures=measures)
            times.append(time.perf_counter() - t0)
        tiers = sorted({t for _, t, _ in res.sources})
        print(f"30 days, 1-day step, by namespace, {len(res.values)} measures, {n} containers "
              f"({len(res.sources)} partitions: {tiers}): first {times[0]:.2f} s, then "
              f"median {statistics.median(times[1:]):.2f} s; {res.values['cpu_cost'].shape}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["codecs", "day", "query"])
    parser.add_argument("--containers", type=int, default=10_000)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "kt-store-bench"))
    parser.add_argument("--days", type=int, default=1, help="days simulated by `day`")
    parser.add_argument("--write", type=Path, help="update this markdown file's section")
    args = parser.parse_args()
    root = Path(args.dir) / args.what
    if args.what == "codecs":
        codecs(args.containers)
    elif args.what == "day":
        body = day(args.containers, root, args.days)
        if args.write:
            write_section(args.write, "store", "## Store: bytes per sample\n\n" + body)
    else:
        query(args.containers, root)


if __name__ == "__main__":
    main()
