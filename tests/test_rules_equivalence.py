"""The recording rules price like the aggregator: same series in, same dollars out.

One deterministic cluster (seeded) is fed two ways: as an IntervalFrame to
``aggregator.cost.compute`` (a one-hour interval, so dollars equal dollars per hour),
and as promtool unit-test input series to ``rules/kubetally.rules.yml``. The generated
test asserts, per namespace and per node and resource, |rule − aggregator| ≤ 1e-6 ×
|aggregator| (+1e-12 absolute for zeros), and that the rules emit no extra series.

Covered: CPU and RAM max(request, usage) with missing requests and missing usage, whole
GPUs, MIG slices, over-charged nodes (idle floored at 0), nodes without GPUs. Not covered:
shared (time-sliced/MPS) GPUs, which the rules do not price (see rules/README.md).
CPU usage is a linear counter, so Prometheus' extrapolated rate equals the aggregator's
delta / dt.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import yaml
from framefakes import GiB, nodes

from aggregator.cost import compute
from aggregator.frame import (
    CONTAINER_IDENTITY,
    ContainerTable,
    DeviceTable,
    GPUUseTable,
    IntervalFrame,
)
from aggregator.pricebook import NodeUnitPrices

RULES = Path(__file__).resolve().parent.parent / "rules" / "kubetally.rules.yml"
PROMTOOL = shutil.which("promtool")
STEP = 60  # seconds between samples
SAMPLES = 11  # 0..10 minutes; evaluated at 10m
MIG_SHARES = {"3g.40gb": 3 / 7, "1g.10gb": 1 / 7}

assert PROMTOOL is not None, "promtool is missing: make tools (Debian's prometheus package)"


def _cluster(seed: int = 20240611) -> dict:
    """Nodes, prices and containers, drawn once from a seeded generator."""
    rng = np.random.default_rng(seed)
    node_rows = [("n-cpu-a", 8.0, 32.0, 0), ("n-cpu-b", 4.0, 16.0, 0),
                 ("n-gpu", 32.0, 128.0, 3), ("n-tiny", 1.0, 2.0, 0)]
    prices = {"cpu": rng.uniform(0.005, 0.05, len(node_rows)),
              "ram": rng.uniform(0.0005, 0.005, len(node_rows)) / GiB,
              "gpu": rng.uniform(0.5, 3.0, len(node_rows))}
    n = 40
    node = rng.integers(0, len(node_rows), n)
    node[:3] = 3  # overload n-tiny: its idle is floored at 0
    namespaces = np.array(["default", "web", "batch", "ml", "kube-system"], dtype=object)
    ns = namespaces[rng.integers(0, len(namespaces), n)]
    cpu_use = rng.uniform(0.01, 2.0, n).round(4)
    cpu_req = rng.choice([0.1, 0.25, 0.5, 1.0, 2.0], n)
    ram_use = rng.integers(64, 4096, n) * 2.0**20
    ram_req = rng.choice([128.0, 256.0, 1024.0, 2048.0], n) * 2.0**20
    no_usage, no_request = rng.random(n) < 0.15, rng.random(n) < 0.15
    no_usage[:3] = False
    cpu_use[no_usage] = np.nan
    ram_use[no_usage] = np.nan
    cpu_req[no_request] = np.nan
    ram_req[no_request] = np.nan
    gpu_node = 2
    on_gpu = np.flatnonzero(node == gpu_node)
    whole = np.zeros(n)
    whole[on_gpu[:2]] = 1.0
    mig_req: dict[int, tuple[str, float]] = {}
    if len(on_gpu) > 3:
        mig_req[int(on_gpu[2])] = ("3g.40gb", 1.0)
        mig_req[int(on_gpu[3])] = ("1g.10gb", 2.0)
    return {"node_rows": node_rows, "prices": prices, "node": node, "ns": ns,
            "cpu_use": cpu_use, "cpu_req": cpu_req, "ram_use": ram_use, "ram_req": ram_req,
            "whole": whole, "mig": mig_req, "gpu_node": gpu_node}


def _aggregator(cl: dict) -> tuple[dict, dict]:
    """Per (namespace, resource) and per (node, resource) cost and idle from compute()."""
    n = len(cl["node"])
    table = nodes(*[(name, "aws", "us-east-1", "m5", "on_demand", cores, gib, gpus)
                    for name, cores, gib, gpus in cl["node_rows"]])
    ident = {k: np.array([""] * n, dtype=object) for k in CONTAINER_IDENTITY}
    ident["namespace"] = cl["ns"]
    ident["node"] = np.array([cl["node_rows"][i][0] for i in cl["node"]], dtype=object)
    ident["container"] = np.array([f"c{i}" for i in range(n)], dtype=object)
    mig = np.zeros(n)
    for i, (profile, count) in cl["mig"].items():
        mig[i] = count * MIG_SHARES[profile]
    containers = ContainerTable(
        identity=ident, labels={}, node=cl["node"].astype(np.int32),
        cpu_usage_cores=cl["cpu_use"], cpu_request_cores=cl["cpu_req"],
        ram_usage_bytes=cl["ram_use"], ram_request_bytes=cl["ram_req"],
        gpu_request=cl["whole"], mig_gpus=mig)
    empty_i = np.zeros(0, np.int32)
    frame = IntervalFrame(
        start=0, end=3600, nodes=table, containers=containers,
        devices=DeviceTable(uuid=np.zeros(0, object), node=empty_i,
                            physical_share=np.zeros(0), shared=np.zeros(0, bool)),
        gpu_use=GPUUseTable(container=empty_i, device=empty_i, sm_share=np.zeros(0)))
    p = cl["prices"]
    cost = compute(frame, NodeUnitPrices(cpu_per_core_hour=p["cpu"], ram_per_byte_hour=p["ram"],
                                         gpu_per_gpu_hour=p["gpu"],
                                         source=np.zeros(len(table), np.int8)))
    by_ns: dict[tuple[str, str], float] = {}
    for r in ("cpu", "ram", "gpu"):
        for name in np.unique(cl["ns"]):
            value = float(np.sum(cost.containers[f"{r}_cost"][cl["ns"] == name]))
            if r != "gpu" or value > 0:  # the rules emit no GPU series for GPU-less namespaces
                by_ns[(str(name), r)] = value
    by_node: dict[tuple[str, str, str], float] = {}
    for j, row in enumerate(cl["node_rows"]):
        for r in ("cpu", "ram", "gpu"):
            by_node[("cost", row[0], r)] = float(cost.nodes[f"{r}_cost"][j])
            by_node[("idle", row[0], r)] = float(cost.nodes[f"{r}_idle_cost"][j])
    return by_ns, by_node


def _series(name: str, labels: dict[str, str], values: str) -> dict:
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{body}}}", "values": values}


def _const(v: float) -> str:
    return f"{v!r}x{SAMPLES - 1}"


def _inputs(cl: dict) -> list[dict]:
    out = []
    for j, (name, cores, gib, gpus) in enumerate(cl["node_rows"]):
        node = {"node": name}
        out.append(_series("kubetally_node_info", {**node, "gpu_sharing": ""}, _const(1)))
        out.append(_series("kubetally_node_cpu_capacity_cores", node, _const(cores)))
        out.append(_series("kubetally_node_memory_capacity_bytes", node, _const(gib * GiB)))
        for r in ("cpu", "ram", "gpu"):
            out.append(_series(f"kubetally_node_{r}_unit_price_dollars",
                               {**node, "cluster": "c1"}, _const(float(cl["prices"][r][j]))))
        for g in range(gpus):
            uuid = f"GPU-{name}-{g}"
            out.append(_series("kubetally_gpu_info", {**node, "gpu_uuid": uuid,
                                                      "mig_profile": "", "parent_uuid": ""},
                               _const(1)))
            out.append(_series("kubetally_gpu_physical_share_ratio",
                               {**node, "gpu_uuid": uuid}, _const(1)))
    gpu_node = cl["node_rows"][cl["gpu_node"]][0]
    for k, (profile, share) in enumerate(MIG_SHARES.items()):  # MIG instances of GPU 2
        uuid = f"MIG-{gpu_node}-{k}"
        out.append(_series("kubetally_gpu_info", {"node": gpu_node, "gpu_uuid": uuid,
                                                  "mig_profile": profile,
                                                  "parent_uuid": f"GPU-{gpu_node}-2"},
                           _const(1)))
        out.append(_series("kubetally_gpu_physical_share_ratio",
                           {"node": gpu_node, "gpu_uuid": uuid}, _const(share)))
    for i in range(len(cl["node"])):
        labels = {"namespace": str(cl["ns"][i]), "pod": f"p{i}", "uid": f"u{i}",
                  "container": f"c{i}", "node": cl["node_rows"][cl["node"][i]][0],
                  "controller_kind": "Deployment", "controller": f"d{i}"}
        if not np.isnan(cl["cpu_use"][i]):
            step = float(cl["cpu_use"][i]) * STEP
            out.append(_series("kubetally_container_cpu_usage_seconds_total", labels,
                               f"0+{step!r}x{SAMPLES - 1}"))
            out.append(_series("kubetally_container_memory_working_set_bytes", labels,
                               _const(float(cl["ram_use"][i]))))
        if not np.isnan(cl["cpu_req"][i]):
            out.append(_series("kubetally_container_cpu_request_cores", labels,
                               _const(float(cl["cpu_req"][i]))))
            out.append(_series("kubetally_container_memory_request_bytes", labels,
                               _const(float(cl["ram_req"][i]))))
        if cl["whole"][i]:
            out.append(_series("kubetally_container_gpu_request_devices",
                               {**labels, "resource": "nvidia.com/gpu"},
                               _const(float(cl["whole"][i]))))
        if i in cl["mig"]:
            profile, count = cl["mig"][i]
            out.append(_series("kubetally_container_gpu_request_devices",
                               {**labels, "resource": f"nvidia.com/mig-{profile}"},
                               _const(count)))
    return out


def _close(selector: str, by: str, expected: float, labels: dict[str, str]) -> dict:
    """A promtool case: 1 when the rule's value is within 1e-6 relative of ``expected``."""
    tol = 1e-6 * abs(expected) + 1e-12
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"expr": f"abs(sum by ({by}) ({selector}{{{body}}}) - {expected!r}) <= bool {tol!r}",
            "eval_time": f"{SAMPLES - 1}m",
            "exp_samples": [{"labels": "{" + body + "}", "value": 1}]}


def _count(selector: str, n: int) -> dict:
    return {"expr": f"count({selector})", "eval_time": f"{SAMPLES - 1}m",
            "exp_samples": [{"labels": "{}", "value": n}]}


def test_rules_match_the_aggregator(tmp_path):
    cl = _cluster()
    by_ns, by_node = _aggregator(cl)
    assert any(v > 0 for (_, r), v in by_ns.items() if r == "gpu")
    assert by_node[("idle", "n-tiny", "cpu")] == 0.0  # the clamp is exercised
    ns_rule = "namespace:kubetally_cost_dollars_per_hour:sum"
    cost_rule = "node:kubetally_node_cost_dollars_per_hour:sum"
    idle_rule = "node:kubetally_idle_cost_dollars_per_hour:clamp_min"
    cases = [_close(ns_rule, "namespace, resource", v, {"namespace": ns, "resource": r})
             for (ns, r), v in sorted(by_ns.items())]
    cases += [_close(cost_rule if kind == "cost" else idle_rule, "node, resource", v,
                     {"node": node, "resource": r})
              for (kind, node, r), v in sorted(by_node.items())]
    cases += [_count(ns_rule, len(by_ns)), _count(cost_rule, len(by_node) // 2),
              _count(idle_rule, len(by_node) // 2)]
    test_file = tmp_path / "equivalence_test.yml"
    test_file.write_text(yaml.safe_dump({
        "rule_files": [str(RULES)], "evaluation_interval": "1m",
        "tests": [{"interval": f"{STEP}s", "input_series": _inputs(cl),
                   "promql_expr_test": cases}]}, sort_keys=False))
    done = subprocess.run([PROMTOOL, "test", "rules", str(test_file)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert "SUCCESS" in done.stdout
