"""Throughput of kubetally's exposition parser against prometheus_client's.

The aggregator scrapes every node's exporter each minute, so parse cost scales with
nodes x samples; this benchmark answers "how many samples per second per core" on
real exporters' payloads: the kubetally exporter's scrape of a simulated 110-pod node
over HTTP, a real dcgm-exporter capture (tests/fixtures/dcgm), and a larger scrape
rendered by the exporter's own code (:func:`exporter.exposition.render`) with
synthetic values: ~250 containers in ~125 pods, about 4,200 samples.

Run: ``.venv/bin/python bench/parse_bench.py [--quick]``.  Each parser is warmed up,
then timed several times in this process; the median is reported.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from report import write_section

from aggregator.ingest import Ingest, TargetScrape
from aggregator.textparse import SeriesTable, parse
from exporter import contract as c
from exporter.exposition import Family, render

NODE = "ip-10-42-17-203.eu-west-1.compute.internal"
NAMESPACES = ("payments", "checkout", "search", "ml-training", "ml-serving", "observability",
              "kube-system", "ingress-nginx", "data-pipeline", "identity", "catalog", "batch")
CONTROLLER_KINDS = ("Deployment", "Deployment", "Deployment", "StatefulSet", "DaemonSet",
                    "CronJob", "Job")
CONTAINER_NAMES = ("app", "istio-proxy", "log-shipper", "metrics-sidecar", "init-migrate")
GPU_MODELS = ("NVIDIA H100 80GB HBM3",)


def _rand_suffix(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))


class _Scrape:
    """The families of one exporter-like scrape, filled with plausible values."""

    def __init__(self, containers: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.containers = containers
        self.gpus = [f"GPU-{uuid.UUID(int=self.rng.getrandbits(128))}" for _ in range(8)]

    def collect(self) -> Iterator[Family]:
        rng = self.rng
        fams: dict[str, Family] = {m.name: m.family() for m in c.ALL}
        pods_left = self.containers
        pod_no = 0
        while pods_left > 0:
            pod_no += 1
            ns = rng.choice(NAMESPACES)
            kind = rng.choice(CONTROLLER_KINDS)
            ctrl = f"{ns}-{rng.choice(('api', 'worker', 'web', 'db', 'cache'))}-{pod_no % 17}"
            pod = f"{ctrl}-{_rand_suffix(rng, 10)}-{_rand_suffix(rng, 5)}"
            uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            gpu = self.gpus[pod_no % 8] if ns.startswith("ml-") or pod_no % 4 else ""
            n_cont = min(pods_left, rng.choice((1, 2, 2, 3)))
            pods_left -= n_cont
            pod_lv = [ns, pod, uid, NODE, kind, ctrl]
            for k in range(n_cont):
                lv = [ns, pod, uid, CONTAINER_NAMES[k], NODE, kind, ctrl]
                self._container(fams, lv, gpu)
            fams[c.POD_INFO.name].add([*pod_lv, "Burstable", "Running"], 1)
            fams[c.POD_LABELS_INFO.name].add([ns, pod, uid], 1)
            for m in (c.POD_CPU_REQUEST, c.POD_CPU_LIMIT):
                fams[m.name].add(pod_lv, rng.choice((0.1, 0.25, 0.5, 1.0, 2.0)))
            for m in (c.POD_MEMORY_REQUEST, c.POD_MEMORY_LIMIT):
                fams[m.name].add(pod_lv, rng.choice((128, 256, 512, 2048)) * 2.0**20)
            if gpu:
                fams[c.POD_GPU_REQUEST.name].add([*pod_lv, "nvidia.com/gpu"], 1)
        self._node_and_gpus(fams)
        for m in c.ALL:
            if len(fams[m.name]):
                yield fams[m.name]

    def _container(self, fams: dict[str, Family], lv: list[str], gpu: str) -> None:
        rng = self.rng

        def add(m: c.Metric, v: float) -> None:
            fams[m.name].add(lv, v)

        add(c.CONTAINER_CPU_USAGE, rng.uniform(1, 5e6))
        periods = rng.randrange(1, 10**7)
        add(c.CONTAINER_CPU_PERIODS, periods)
        add(c.CONTAINER_CPU_THROTTLED_PERIODS, rng.randrange(0, periods))
        add(c.CONTAINER_CPU_THROTTLED, rng.uniform(0, 1e4))
        add(c.CONTAINER_MEMORY_WORKING_SET, rng.randrange(2**20, 2**34))
        add(c.CONTAINER_MEMORY_RSS, rng.randrange(2**20, 2**33))
        add(c.CONTAINER_CPU_REQUEST, rng.choice((0.05, 0.1, 0.25, 0.5, 1.0)))
        add(c.CONTAINER_CPU_LIMIT, rng.choice((0.5, 1.0, 2.0, 4.0)))
        add(c.CONTAINER_MEMORY_REQUEST, rng.choice((64, 128, 256, 1024)) * 2.0**20)
        add(c.CONTAINER_MEMORY_LIMIT, rng.choice((256, 512, 2048, 8192)) * 2.0**20)
        if gpu:
            for m in (c.CONTAINER_GPU_REQUEST, c.CONTAINER_GPU_LIMIT):
                fams[m.name].add([*lv, "nvidia.com/gpu"], 1)
            fams[c.CONTAINER_GPU_MEMORY_USED.name].add(
                [*lv, gpu], rng.randrange(2**28, 2**35))
            fams[c.CONTAINER_GPU_SM_UTILIZATION.name].add([*lv, gpu], rng.random())

    def _node_and_gpus(self, fams: dict[str, Family]) -> None:
        rng = self.rng
        fams[c.NODE_INFO.name].add(
            [NODE, "aws", "p5.48xlarge", "eu-west-1", "eu-west-1b", "on_demand",
             GPU_MODELS[0], "time-slicing"], 1)
        for m, v in ((c.NODE_CPU_CAPACITY, 192), (c.NODE_CPU_ALLOCATABLE, 191.5),
                     (c.NODE_MEMORY_CAPACITY, 2 * 2.0**40),
                     (c.NODE_MEMORY_ALLOCATABLE, 2 * 2.0**40 - 2**32)):
            fams[m.name].add([NODE], v)
        for m in (c.NODE_GPU_CAPACITY, c.NODE_GPU_ALLOCATABLE):
            fams[m.name].add([NODE, "nvidia.com/gpu"], 32)
        for i, g in enumerate(self.gpus):
            fams[c.GPU_INFO.name].add([NODE, g, str(i), GPU_MODELS[0], "", ""], 1)
            for m, v in ((c.GPU_PHYSICAL_SHARE, 1.0), (c.GPU_MEMORY_TOTAL, 85520809984.0),
                         (c.GPU_MEMORY_USED, rng.randrange(2**30, 2**36)),
                         (c.GPU_UTILIZATION, rng.random()), (c.GPU_POWER, rng.uniform(80, 700))):
                fams[m.name].add([NODE, g], v)
        fams[c.EXPORTER_BUILD_INFO.name].add(["0.1.0", NODE], 1)
        for coll in ("cgroup", "kube", "gpu"):
            fams[c.COLLECTOR_DURATION.name].add([coll], rng.uniform(0.001, 0.2))
            fams[c.COLLECTOR_ERRORS.name].add([coll], rng.randrange(0, 5))
            fams[c.COLLECTOR_AVAILABLE.name].add([coll], 1)
        fams[c.KUBE_CACHED_PODS.name].add([], 131)
        fams[c.KUBE_SYNCED.name].add([], 1)
        for reason in ("expired", "error", "timeout"):
            fams[c.KUBE_WATCH_RESTARTS.name].add(["pods", reason], rng.randrange(9))
        fams[c.UNMATCHED_CGROUPS.name].add([], 0)


def build_payload(containers: int = 250, seed: int = 1) -> bytes:
    """One exporter-like scrape in text format 0.0.4, as the exporter would serve it."""
    return render(_Scrape(containers, seed).collect())


def _median_seconds(cases: dict[str, tuple[Callable[[], object], int]], rounds: int,
                    warmup: int) -> dict[str, float]:
    """Median wall time of one call of each case.

    Cases are interleaved round by round (case ``(fn, k)`` is timed ``k`` times per round)
    so that load from other processes on a shared machine hits all of them alike.
    """
    for fn, _ in cases.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(rounds):
        for label, (fn, k) in cases.items():
            for _ in range(k):
                t0 = time.perf_counter()
                fn()
                times[label].append(time.perf_counter() - t0)
    return {label: statistics.median(t) for label, t in times.items()}


DCGM = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "dcgm"


def payloads(containers: int) -> dict[str, bytes]:
    """The payloads measured: real exporters' output, by what produced them."""
    from fleet import scrape_simulated_node

    return {
        "kubetally exporter over HTTP, simulated 110-pod node": scrape_simulated_node(110),
        f"kubetally exporter renderer, {containers} containers (synthetic values)":
            build_payload(containers),
        "dcgm-exporter, real capture (AWS, 1 NVIDIA L4)":
            (DCGM / "cncf-ai-conformance-kops-aws-l4-full-scrape.prom").read_bytes(),
    }


def measure(payload: bytes, rounds: int, warmup: int) -> dict[str, float]:
    """Seconds per parse of ``payload``: prometheus_client, kubetally cold / warm / + ingest."""
    text = payload.decode()

    def reference() -> int:
        return sum(len(f.samples) for f in text_string_to_metric_families(text))

    n = reference()
    warm = SeriesTable()
    if len(parse(payload, warm)) != n:
        raise SystemExit(f"sample count differs: prometheus_client {n}, kubetally "
                         f"{len(parse(payload, SeriesTable()))}")
    ingest = Ingest("bench")
    state = ingest.state("t")
    t = [1_764_000_000]

    def parse_and_ingest() -> None:
        t[0] += 60
        ingest.frame(t[0] - 60, t[0], [TargetScrape("t", parse(payload, state.table), t[0])])

    parse_and_ingest()
    seconds = _median_seconds({
        "reference": (reference, 1),
        "cold": (lambda: parse(payload, SeriesTable()), 2),
        "warm": (lambda: parse(payload, warm), 10),
        "ingest": (parse_and_ingest, 10),
    }, rounds, warmup)
    return {"samples": n, **seconds}


def main(argv: list[str] | None = None) -> int:
    """Measure and print the markdown table; returns the process exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke test)")
    ap.add_argument("--containers", type=int, default=250)
    ap.add_argument("--write", type=Path, help="update this markdown file's section")
    args = ap.parse_args(argv)
    rounds, warmup = (3, 1) if args.quick else (15, 2)
    lines = [f"Median of {rounds} interleaved rounds per payload (numpy {np.__version__}); "
             "samples per second, and the ratio to prometheus_client's "
             "`text_string_to_metric_families` on the same bytes. *Cold* is a target's "
             "first scrape (every series new), *warm* every later one, *+ ingest* adds "
             "turning the warm parse into the interval's container and node rows.", "",
             "| payload | samples | bytes | prometheus_client | kubetally cold | "
             "kubetally warm | kubetally warm + ingest | warm vs prometheus_client |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    ratios = {}
    for label, payload in payloads(args.containers).items():
        m = measure(payload, rounds, warmup)
        n = m["samples"]
        ratios[label] = m["reference"] / m["warm"]
        lines.append(f"| {label} | {n:,} | {len(payload):,} | {n / m['reference']:,.0f} | "
                     f"{n / m['cold']:,.0f} | {n / m['warm']:,.0f} | {n / m['ingest']:,.0f} | "
                     f"**{ratios[label]:.0f}x** |")
    main_label = next(iter(ratios))
    lines += ["", f"**Steady state on the exporter's own scrape: {ratios[main_label]:.0f}x "
              f"prometheus_client** (target >= 30x); on the dcgm-exporter capture "
              f"{ratios[label]:.0f}x (a {n}-sample payload: fixed per-call costs weigh "
              "more).", "",
              "Command: `make bench` (or `.venv/bin/python bench/parse_bench.py "
              "--write docs/benchmarks.md`)."]
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section(args.write, "parse", "## Parse: kubetally vs prometheus_client\n\n" + body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
