"""A simulated cluster's intervals, for the store's tests, crash driver and benchmark.

Values look like real ones where it matters to compression: usage varies smoothly over
the day around a per-container level, with a little noise; requests are the few round
numbers people write in pod specs; costs are charged quantities times a node's unit
price. Each interval is a pure function of ``(seed, start)``, so a test can rebuild any
interval it appended and check what came back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aggregator.frame import CONTAINER_IDENTITY, NODE_IDENTITY
from aggregator.store.layout import HOUR, TABLES
from aggregator.store.model import Block, TableData

__all__ = ["SimCluster"]

GIB = float(1 << 30)
CPU_PRICE, RAM_PRICE, GPU_PRICE = 0.031611, 0.004237 / GIB, 0.95


@dataclass
class SimCluster:
    """``containers`` containers on ``nodes`` nodes in ``namespaces`` namespaces."""

    containers: int
    nodes: int = 0
    namespaces: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        n, m = self.containers, self.nodes or max(1, self.containers // 50)
        self.nodes = m
        node = rng.integers(0, m, n)
        ns = rng.integers(0, self.namespaces, n)
        ids = np.arange(n)

        def col(fmt: str, values: np.ndarray) -> np.ndarray:
            return np.array([fmt.format(v) for v in values.tolist()], dtype=object)

        self.container_identity = {
            "cluster": col("c{}", np.zeros(n, int)), "node": col("node-{:04d}", node),
            "namespace": col("ns-{:03d}", ns), "controller_kind": col("Deployment", ids),
            "controller": col("app-{:05d}", ids // 3), "pod": col("app-{:05d}-x7k2p", ids),
            "container": col("main", ids), "uid": col("{:08x}-0000-4000-8000-000000000000", ids),
            "label_team": col("team-{}", ns % 7),
        }
        self.node_identity = {c: col("x", np.zeros(m, int)) for c in NODE_IDENTITY}
        self.node_identity.update(node=col("node-{:04d}", np.arange(m)),
                                  cluster=col("c{}", np.zeros(m, int)))
        self.cpu_request = rng.choice([0.1, 0.25, 0.5, 1.0, 2.0, 4.0], n)
        self.ram_request = rng.choice([128, 256, 512, 1024, 2048, 4096], n) * float(1 << 20)
        self.level = rng.uniform(0.05, 1.2, n)
        self.phase = rng.uniform(0, 2 * np.pi, n)
        self.gpu = (rng.random(n) < 0.02).astype(float)
        assert set(self.container_identity) >= set(CONTAINER_IDENTITY)

    def blocks(self, start: int, end: int) -> tuple[Block, Block]:
        """The containers and nodes blocks of interval ``[start, end)``."""
        hours = (end - start) / 3600.0
        rng = np.random.default_rng([self.seed, start])
        day = np.sin(2 * np.pi * start / 86400.0 + self.phase)
        load = self.level * (1 + 0.3 * day) * (1 + 0.05 * rng.standard_normal(self.containers))
        cpu_use = np.maximum(load * self.cpu_request, 0.0)
        ram_use = np.maximum(load * 0.8 * self.ram_request, 0.0)
        cpu_charged = np.maximum(cpu_use, self.cpu_request) * hours
        ram_charged = np.maximum(ram_use, self.ram_request) * hours
        gpu_hours = self.gpu * hours
        containers = {
            "minutes": np.full(self.containers, (end - start) / 60.0),
            "cpu_usage_core_hours": cpu_use * hours,
            "cpu_request_core_hours": self.cpu_request * hours,
            "cpu_core_hours": cpu_charged,
            "ram_usage_byte_hours": ram_use * hours,
            "ram_request_byte_hours": self.ram_request * hours,
            "ram_byte_hours": ram_charged,
            "ram_usage_max_bytes": ram_use * (1 + 0.02 * np.abs(rng.standard_normal(
                self.containers))),
            "gpu_request_hours": gpu_hours,
            "gpu_usage_hours": gpu_hours * np.clip(load, 0, 1),
            "gpu_hours": gpu_hours,
            "cpu_cost": cpu_charged * CPU_PRICE,
            "ram_cost": ram_charged * RAM_PRICE,
            "gpu_cost": gpu_hours * GPU_PRICE,
        }
        m = self.nodes
        cores = np.full(m, 64.0) * hours
        ram = np.full(m, 256 * GIB) * hours
        nodes = {"minutes": np.full(m, (end - start) / 60.0), "cpu_core_hours": cores,
                 "ram_byte_hours": ram, "gpu_hours": np.zeros(m),
                 "cpu_cost": cores * CPU_PRICE, "ram_cost": ram * RAM_PRICE,
                 "gpu_cost": np.zeros(m)}
        return (Block(self.container_identity, containers), Block(self.node_identity, nodes))

    def hourly_day(self, day_start: int, table: str) -> TableData:
        """One table's day as an hourly partition holds it: 24 one-hour rows.

        Lets benchmarks and tests write hourly partitions directly, without appending
        and rolling up a day of raw intervals first.
        """
        which = ("containers", "nodes").index(table)
        blocks = [self.blocks(day_start + h * HOUR, day_start + (h + 1) * HOUR)[which]
                  for h in range(24)]
        return TableData(day_start + HOUR * np.arange(24, dtype=np.int64),
                         np.full(24, HOUR, dtype=np.int64), dict(blocks[0].identity),
                         {m: np.stack([b.measures.get(m, np.full(len(b), np.nan))
                                       for b in blocks])
                          for m in TABLES[table].measures})
