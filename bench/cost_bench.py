"""How long pricing one interval takes at the design's scale: 1,000 nodes × 110 pods.

The aggregator prices every interval (a minute at the raw tier), so
:func:`aggregator.cost.compute` must stay far below the scrape interval on big
clusters. This builds a random but plausible frame — general-purpose nodes
from the bundled table, one node in ten a p4d.24xlarge whose 8 GPUs are
whole, time-sliced (4 users each) or MIG-sliced, a third of the nodes spot,
a few percent of samples missing (NaN) — and times node price resolution and
the cost compute separately. Building the frame is not timed.

Run: ``.venv/bin/python bench/cost_bench.py [--nodes N] [--pods-per-node P]``.
Each step is warmed up, then timed ``repeat`` times in this process; the median
is reported.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from aggregator.cost import compute
from aggregator.frame import (
    CONTAINER_IDENTITY,
    NODE_IDENTITY,
    ContainerTable,
    DeviceTable,
    GPUUseTable,
    IntervalFrame,
    NodeTable,
)
from aggregator.pricebook import PriceBook
from aggregator.prices import PriceTable, UnitPrices

GiB = 2.0**30
TYPES = (("m5.2xlarge", 8, 32), ("m6i.4xlarge", 16, 64), ("c5.4xlarge", 16, 32),
         ("r5.2xlarge", 8, 64), ("m6i.16xlarge", 64, 256))


def random_frame(nodes: int, pods_per_node: int, seed: int = 7) -> IntervalFrame:
    """One minute of a random cluster; one container per pod, plus GPU devices and use."""
    rng = np.random.default_rng(seed)
    gpu_node = rng.random(nodes) < 0.1
    kind = rng.integers(0, len(TYPES), nodes)
    ident = {k: np.full(nodes, "", dtype=object) for k in NODE_IDENTITY}
    ident["node"] = np.array([f"node-{i}" for i in range(nodes)], dtype=object)
    ident["provider"][:] = "aws"
    ident["region"][:] = "us-east-1"
    ident["instance_type"] = np.where(gpu_node, "p4d.24xlarge",
                                      np.array([t[0] for t in TYPES], dtype=object)[kind])
    ident["capacity_type"] = np.where(rng.random(nodes) < 0.35, "spot", "on_demand")
    node_table = NodeTable(
        identity=ident, cpu_cores=np.where(gpu_node, 96.0, [TYPES[k][1] for k in kind]),
        ram_bytes=np.where(gpu_node, 1152.0, [TYPES[k][2] for k in kind]) * GiB * 0.97,
        gpus=np.where(gpu_node, 8.0, 0.0))

    n = nodes * pods_per_node
    node = np.repeat(np.arange(nodes, dtype=np.int32), pods_per_node)
    node[rng.random(n) < 0.001] = -1

    def sample(scale: float) -> np.ndarray:
        values = rng.gamma(2.0, scale / 2.0, n)
        values[rng.random(n) < 0.02] = np.nan
        return values

    gpu_nodes = np.flatnonzero(gpu_node)
    # Per GPU node: GPUs 0-3 whole, 4-5 time-sliced, 6-7 MIG (one 3g.20gb instance each).
    dev_node = np.repeat(gpu_nodes, 8).astype(np.int32)
    slot = np.tile(np.arange(8), len(gpu_nodes))
    devices = DeviceTable(uuid=np.array([f"GPU-{i}" for i in range(len(dev_node))], dtype=object),
                          node=dev_node, physical_share=np.where(slot >= 6, 3 / 7, 1.0),
                          shared=(slot == 4) | (slot == 5))
    first = gpu_nodes * pods_per_node  # the first 16 containers of a GPU node use its GPUs
    users = (first[:, None] + np.arange(16)[None, :]).ravel()
    user_dev = (np.arange(len(gpu_nodes))[:, None] * 8
                + np.array([0, 1, 2, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 7, 6, 7])[None, :]).ravel()
    gpu_request = np.zeros(n)
    mig = np.zeros(n)
    gpu_request[users[slot[user_dev] < 4]] = 1.0
    mig[users[slot[user_dev] >= 6]] = 3 / 7
    use = GPUUseTable(container=users.astype(np.int32), device=user_dev.astype(np.int32),
                      sm_share=rng.random(len(users)) * 0.5)
    containers = ContainerTable(
        identity={k: np.full(n, "", dtype=object) for k in CONTAINER_IDENTITY}, labels={},
        node=node, cpu_usage_cores=sample(0.4), cpu_request_cores=sample(0.5),
        ram_usage_bytes=sample(0.8) * GiB, ram_request_bytes=sample(1.0) * GiB,
        gpu_request=gpu_request, mig_gpus=mig)
    return IntervalFrame(start=1_767_225_600, end=1_767_225_660, nodes=node_table,
                         containers=containers, devices=devices, gpu_use=use)


def _median_seconds(fn: object, repeat: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_cost(nodes: int = 1000, pods_per_node: int = 110, repeat: int = 7) -> dict[str, float]:
    """Median seconds of node price resolution and of compute() for one random interval."""
    frame = random_frame(nodes, pods_per_node)
    book = PriceBook(UnitPrices(), PriceTable.load())
    prices = book.node_unit_prices(frame.nodes)
    return {"containers": float(len(frame.containers)), "devices": float(len(frame.devices)),
            "node_unit_prices_s": _median_seconds(lambda: book.node_unit_prices(frame.nodes),
                                                  repeat),
            "compute_s": _median_seconds(lambda: compute(frame, prices), repeat)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods-per-node", type=int, default=110)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    result = bench_cost(args.nodes, args.pods_per_node, args.repeat)
    print(f"{platform.python_implementation()} {platform.python_version()}, "
          f"numpy {np.__version__}, {platform.processor() or platform.machine()}")
    print(f"{args.nodes} nodes, {int(result['containers'])} containers, "
          f"{int(result['devices'])} GPU devices; median of {args.repeat}:")
    print(f"  node_unit_prices  {result['node_unit_prices_s'] * 1e3:8.2f} ms")
    print(f"  compute           {result['compute_s'] * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
