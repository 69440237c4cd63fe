"""The small store the API tests read, built by hand so every expected number is mental
arithmetic; and a check that the store gives those sums back.

Cluster ``c1``, 2026-11-02 00:00–02:00 UTC, two 60-minute intervals (H1, H2).
Prices are made round: CPU $1 per core-hour, RAM $0.10 per GiB-hour, GPU $3 per GPU-hour.

Containers (request / usage per hour; charged = max of the two):

=====  =======  ====  =====================  ======  ======  ===========  ===========  =====
name   ns       node  controller             pod     app     CPU req/use  RAM req/use  hours
=====  =======  ====  =====================  ======  ======  ===========  ===========  =====
A      web      n1    Deployment/frontend    fe-1    shop    2 / 1        4 / 2 GiB    H1 H2
B      web      n1    Deployment/frontend    fe-2    shop    1 / 2        2 / 1 GiB    H1 H2
C      batch    n2    Job/etl                etl-1   (none)  0 / 1        0 / 1 GiB    H1
=====  =======  ====  =====================  ======  ======  ===========  ===========  =====

C also holds one GPU (request 1 GPU-hour, SM usage 0.5 GPU-hours, charged 1 → $3).
Per hour: A costs CPU $2, RAM $0.40; B CPU $2, RAM $0.20; C CPU $1, RAM $0.10, GPU $3.

Nodes per hour: n1 (m5.2xlarge, on-demand) 8 cores, 16 GiB, no GPU → CPU $8, RAM $1.60;
n2 (g4dn.xlarge, spot) 4 cores, 8 GiB, 1 GPU → CPU $4, RAM $0.80, GPU $3.
Idle = node cost − charged: n1 CPU 8−4 = $4, RAM 1.6−0.6 = $1.00 both hours;
n2 H1 CPU 4−1 = $3, RAM 0.8−0.1 = $0.70, GPU $0; n2 H2 (C gone) CPU $4, RAM $0.80, GPU $3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from storefakes import strings, ts

from aggregator.frame import CONTAINER_IDENTITY, NODE_IDENTITY
from aggregator.store import Block, Store, StoreReader

GIB = float(1 << 30)
T0 = ts("2026-11-02T00:00")
H = 3600
#: The clock the API tests run at: half an hour after the last interval ended.
NOW = T0 + 2 * H + 1800

_ROWS = {  # name: identity values, then per-hour measures
    "A": (("c1", "n1", "web", "Deployment", "frontend", "fe-1", "app", "uid-a"), "shop",
          dict(cpu_req=2, cpu_use=1, ram_req=4, ram_use=2, gpu_req=0, gpu_use=0, gpu=0,
               cpu_cost=2.0, ram_cost=0.4, gpu_cost=0.0)),
    "B": (("c1", "n1", "web", "Deployment", "frontend", "fe-2", "app", "uid-b"), "shop",
          dict(cpu_req=1, cpu_use=2, ram_req=2, ram_use=1, gpu_req=0, gpu_use=0, gpu=0,
               cpu_cost=2.0, ram_cost=0.2, gpu_cost=0.0)),
    "C": (("c1", "n2", "batch", "Job", "etl", "etl-1", "worker", "uid-c"), "",
          dict(cpu_req=0, cpu_use=1, ram_req=0, ram_use=1, gpu_req=1, gpu_use=0.5, gpu=1,
               cpu_cost=1.0, ram_cost=0.1, gpu_cost=3.0)),
}
_NODES = {  # node: identity extras, capacity, costs, idle per hour
    "n1": (("aws", "us-east-1", "us-east-1a", "m5.2xlarge", "on-demand", ""), (8, 16, 0),
           (8.0, 1.6, 0.0), [(4.0, 1.0, 0.0), (4.0, 1.0, 0.0)]),
    "n2": (("aws", "us-east-1", "us-east-1b", "g4dn.xlarge", "spot", "T4"), (4, 8, 1),
           (4.0, 0.8, 3.0), [(3.0, 0.7, 0.0), (4.0, 0.8, 3.0)]),
}


def _containers(names: list[str]) -> Block:
    rows = [_ROWS[n] for n in names]
    identity = {c: strings([r[0][i] for r in rows]) for i, c in enumerate(CONTAINER_IDENTITY)}
    identity["label_app"] = strings([r[1] for r in rows])
    m = [r[2] for r in rows]

    def col(key: str, scale: float = 1.0) -> np.ndarray:
        return np.array([x[key] * scale for x in m], dtype=float)

    measures = {
        "minutes": np.full(len(rows), 60.0),
        "cpu_request_core_hours": col("cpu_req"), "cpu_usage_core_hours": col("cpu_use"),
        "cpu_core_hours": np.maximum(col("cpu_req"), col("cpu_use")),
        "ram_request_byte_hours": col("ram_req", GIB), "ram_usage_byte_hours": col("ram_use", GIB),
        "ram_byte_hours": np.maximum(col("ram_req", GIB), col("ram_use", GIB)),
        "ram_usage_max_bytes": col("ram_use", GIB),
        "gpu_request_hours": col("gpu_req"), "gpu_usage_hours": col("gpu_use"),
        "gpu_hours": col("gpu"), "cpu_cost": col("cpu_cost"), "ram_cost": col("ram_cost"),
        "gpu_cost": col("gpu_cost"),
    }
    return Block(identity, measures)


def _nodes(hour: int) -> Block:
    names = list(_NODES)
    extras = [_NODES[n][0] for n in names]
    identity = {"cluster": strings(["c1"] * 2), "node": strings(names)}
    for i, c in enumerate(c for c in NODE_IDENTITY if c not in ("cluster", "node")):
        identity[c] = strings([e[i] for e in extras])
    cap = np.array([_NODES[n][1] for n in names], dtype=float)
    cost = np.array([_NODES[n][2] for n in names])
    idle = np.array([_NODES[n][3][hour] for n in names])
    return Block(identity, {
        "minutes": np.full(2, 60.0), "cpu_core_hours": cap[:, 0],
        "ram_byte_hours": cap[:, 1] * GIB, "gpu_hours": cap[:, 2],
        "cpu_cost": cost[:, 0], "ram_cost": cost[:, 1], "gpu_cost": cost[:, 2],
        "cpu_idle_cost": idle[:, 0], "ram_idle_cost": idle[:, 1], "gpu_idle_cost": idle[:, 2]})


def build_store(root: Path) -> Path:
    """Write the two hours above into a store at ``root``; the first hour gets sealed."""
    with Store(root, step=H) as store:
        store.append(T0, T0 + H, _containers(["A", "B", "C"]), _nodes(0))
        store.append(T0 + H, T0 + 2 * H, _containers(["A", "B"]), _nodes(1))
    return root


@pytest.fixture(scope="module")
def api_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("api-store"))


def test_the_store_gives_the_hand_made_sums_back(api_store):
    """web CPU cost: 2 + 2 per hour → $4, $4; batch: $1 in H1 only (NaN in H2)."""
    res = StoreReader(api_store).query(T0, T0 + 2 * H, H, ["namespace"])
    by_ns = dict(zip(res.keys["namespace"].tolist(), res.values["cpu_cost"].T, strict=True))
    assert by_ns["web"].tolist() == [4.0, 4.0]
    assert by_ns["batch"][0] == 1.0 and np.isnan(by_ns["batch"][1])
