"""API benchmark: a 30-day ``aggregate=namespace&step=1d`` allocation query, end to end.

    python bench/api_bench.py [--containers N] [--days D] [--dir D] [--write docs/benchmarks.md]
    python bench/api_bench.py --quick             # 1,000 containers, 3 days: a smoke run

Builds (once; kept under ``--dir`` and reused while its parameters match) a store of
``--days`` whole UTC days of hourly partitions, written through the store's own partition
writer as ``bench/store_bench.py`` does, plus the daily partition of any whole past month;
then times ``GET /api/v1/allocation`` through Flask's test client: the first request of a
fresh app (cold: empty caches), the median of 7 more (warm), and ``StoreReader.query``
alone with the same parameters (a fresh reader without a cache, and the app's cached one).
Nothing here asserts; numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write_section

from aggregator.store import StoreReader
from aggregator.store.backend import open_backend
from aggregator.store.layout import DAILY, DAY, HOUR, HOURLY
from aggregator.store.partition import write_partition
from aggregator.store.rollup import roll_up
from aggregator.store.synthetic import SimCluster
from api.allocation import _MEASURES
from api.app import create_app
from api.config import ApiConfig
from api.state import EXTENSION

T0 = 1_705_708_800  # 2024-01-20 00:00 UTC
SHARD = "shard-0-of-1"
NAMESPACES = 12
WARM = 7


def build(root: Path, n: int, days: int) -> None:
    """Write the store unless ``root`` already holds one built with these parameters."""
    stamp = root / "built.json"
    want = {"containers": n, "days": days, "t0": T0, "namespaces": NAMESPACES}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return
    import shutil
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    sim = SimCluster(n, seed=3, namespaces=NAMESPACES)
    backend = open_backend(root)
    t0 = time.perf_counter()
    for d in range(days):
        start = T0 + d * DAY
        write_partition(backend, SHARD, HOURLY, HOURLY.period_of(start),
                        {"containers": sim.hourly_day(start, "containers"),
                         "nodes": sim.hourly_day(start, "nodes")}, HOUR)
    built = time.perf_counter() - t0
    rolled = roll_up(backend, SHARD, HOURLY, DAILY, T0 + days * DAY)
    print(f"built {days} hourly partitions of {n:,} containers in {built:.1f} s; "
          f"daily partitions rolled up: {rolled or 'none'}", file=sys.stderr)
    stamp.write_text(json.dumps(want))


def warm_page_cache(root: Path) -> None:
    """Read every file once, so "cold" measures the app's caches, not the disk.

    Run after another benchmark that wrote tens of GB (make bench's tsdb), the store's
    files are out of the OS page cache and the first request measured the disk.
    """
    for f in root.rglob("*"):
        if f.is_file():
            f.read_bytes()


def measure(root: Path, n: int, days: int, quick: bool) -> str:
    """Time the request and the bare query; the markdown section's body."""
    window_days = min(30, days)
    start, end = T0 + (days - window_days) * DAY, T0 + days * DAY
    url = (f"/api/v1/allocation?window={start},{end}&aggregate=namespace&step=1d")
    app = create_app(ApiConfig(store=str(root)))
    client = app.test_client()
    t0 = time.perf_counter()
    resp = client.get(url)
    cold = time.perf_counter() - t0
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    body = resp.get_json()
    warm = []
    for _ in range(WARM):
        t0 = time.perf_counter()
        again = client.get(url)
        warm.append(time.perf_counter() - t0)
        assert again.get_json() == body, "warm answer differs from the cold one"
    steps = body["data"] if isinstance(body, dict) and "data" in body else body
    items = len(steps[0]) if steps else 0

    def bare(reader: StoreReader, runs: int) -> list[float]:
        out = []
        for _ in range(runs):
            t0 = time.perf_counter()
            reader.query(start, end, DAY, ["namespace"], "containers", None, _MEASURES)
            out.append(time.perf_counter() - t0)
        return out

    uncached = bare(StoreReader(root), 3)
    cached = bare(app.extensions[EXTENSION].reader, WARM)
    cmd = ".venv/bin/python bench/api_bench.py" + (" --quick" if quick else "") + \
        " --write docs/benchmarks.md"
    lines = [
        f"`GET /api/v1/allocation?window=<{window_days} days>&aggregate=namespace&step=1d` "
        f"through Flask's test client, over {n:,} containers in {NAMESPACES} namespaces "
        f"({days} days of hourly partitions, one per UTC day, whole past months also rolled "
        f"up into a daily one; {len(_MEASURES)} measures read; "
        f"{len(steps)} steps × {items} items in the answer).", "",
        "| what | seconds |", "|---|---|",
        f"| cold: a fresh app's first request (empty caches; OS page cache warm) | "
        f"{cold:.3f} |",
        f"| **warm: median of {WARM} further requests** | **{statistics.median(warm):.3f}** |",
        f"| `StoreReader.query` alone, fresh reader without cache (first / median of 3) | "
        f"{uncached[0]:.3f} / {statistics.median(uncached):.3f} |",
        f"| `StoreReader.query` alone, the app's cached reader (median of {WARM}) | "
        f"{statistics.median(cached):.3f} |",
        "", f"Command: `{cmd}`."]
    text = "\n".join(lines)
    print(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=31, help="whole days of hourly partitions")
    parser.add_argument("--quick", action="store_true", help="1,000 containers, 3 days")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "kt-api-bench"))
    parser.add_argument("--write", type=Path, help="update this markdown file's section")
    args = parser.parse_args()
    n, days = (1_000, 3) if args.quick else (args.containers, args.days)
    root = Path(args.dir) / f"store-{n}-{days}"
    build(root, n, days)
    warm_page_cache(root)
    body = measure(root, n, days, args.quick)
    if args.write:
        write_section(args.write, "api", "## API: 30-day allocation by namespace\n\n" + body)


if __name__ == "__main__":
    main()
