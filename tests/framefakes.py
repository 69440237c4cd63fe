"""Hand-made interval frames for the price and cost tests."""

from __future__ import annotations

import numpy as np

from aggregator.frame import NODE_IDENTITY, NodeTable

GiB = 2.0**30

__all__ = ["GiB", "nodes"]


def nodes(*rows: tuple[str, str, str, str, str, float, float, int]) -> NodeTable:
    """rows: (name, provider, region, instance_type, capacity_type, cores, GiB, gpus)."""
    ident = {k: np.array([""] * len(rows), dtype=object) for k in NODE_IDENTITY}
    for col, i in (("node", 0), ("provider", 1), ("region", 2), ("instance_type", 3),
                   ("capacity_type", 4)):
        ident[col] = np.array([r[i] for r in rows], dtype=object)
    return NodeTable(identity=ident, cpu_cores=np.array([r[5] for r in rows], dtype=float),
                     ram_bytes=np.array([r[6] * GiB for r in rows], dtype=float),
                     gpus=np.array([r[7] for r in rows], dtype=float))
