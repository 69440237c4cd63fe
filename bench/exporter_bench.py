"""One scrape of a 110-pod / ~250-container node: kubetally's exporter vs node_exporter.

Both run as separate processes on this machine, scraped alternately over HTTP
in the same run: median and p90 wall time of a full scrape (request to last
byte), payload size, and resident memory after the scrapes. The kubetally
exporter reads a generated cgroup v2 tree and watches a local API server
(``exporter.simulate``) with the real kubernetes client; node_exporter reads
this machine's /proc and /sys with its default collectors.

    .venv/bin/python bench/exporter_bench.py [--quick] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

from exporter.contract import KUBE_CACHED_PODS
from exporter.simulate.node import SimulatedNode

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read()


def wait_until(check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("timed out waiting for a process to become ready")


def rss_mib(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    kib = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.M))
    return int(kib["VmRSS"]) / 1024, int(kib["VmHWM"]) / 1024


def time_scrapes(urls: dict[str, str], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in urls}
    for _ in range(rounds):
        for name, url in urls.items():  # alternate, so drift hits both alike
            start = time.perf_counter()
            fetch(url)
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds (CI smoke run)")
    parser.add_argument("--pods", type=int, default=110)
    parser.add_argument("--write", type=Path, help="update this markdown file's section")
    args = parser.parse_args()
    rounds, warmup = (5, 2) if args.quick else (60, 10)
    node_exporter = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if node_exporter is None:
        raise SystemExit("prometheus-node-exporter not found: "
                         "apt-get install prometheus-node-exporter")

    with tempfile.TemporaryDirectory() as work, SimulatedNode(work, seed=1, pods=args.pods,
                                                              gpu=False) as sim:
        sim.advance(sim.now + 3600)
        containers = sum(1 for p in sim.pods for c in p.containers if not c.init)
        ours_port, theirs_port = free_port(), free_port()
        ours = subprocess.Popen([
            str(ROOT / ".venv/bin/kubetally"), "--log-level", "WARNING", "exporter",
            "--node-name", sim.node_name,
            "--cgroup-root", sim.cgroup_root, "--proc-root", sim.proc_root,
            "--kube-api", sim.api_url, "--no-gpu", "--host", "127.0.0.1",
            "--port", str(ours_port)])
        theirs = subprocess.Popen([node_exporter, f"--web.listen-address=127.0.0.1:{theirs_port}",
                                   "--log.level=error"], stderr=subprocess.DEVNULL)
        try:
            ours_url = f"http://127.0.0.1:{ours_port}/metrics"
            theirs_url = f"http://127.0.0.1:{theirs_port}/metrics"
            wait_until(lambda: f"{KUBE_CACHED_PODS.name} {float(args.pods)}"
                       in fetch(ours_url).decode())
            wait_until(lambda: bool(fetch(theirs_url)))
            urls = {"kubetally exporter": ours_url, "node_exporter": theirs_url}
            time_scrapes(urls, warmup)
            times = time_scrapes(urls, rounds)
            sizes = {name: fetch(url) for name, url in urls.items()}
            memory = {"kubetally exporter": rss_mib(ours.pid), "node_exporter": rss_mib(theirs.pid)}
        finally:
            for proc in (ours, theirs):
                proc.terminate()
                proc.wait(timeout=10)

    version = subprocess.run([node_exporter, "--version"], capture_output=True, text=True)
    ne_version = (version.stdout or version.stderr).split("\n")[0]
    med = {n: statistics.median(t) * 1000 for n, t in times.items()}
    p90 = {n: statistics.quantiles(t, n=10)[-1] * 1000 for n, t in times.items()}
    rows = ["| exporter | median scrape (ms) | p90 (ms) | samples | bytes | RSS (MiB) "
            "| peak RSS (MiB) |", "|---|---|---|---|---|---|---|"]
    for name in urls:
        body = sizes[name].decode()
        samples = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
        rows.append(f"| {name} | {med[name]:.2f} | {p90[name]:.2f} | {samples} "
                    f"| {len(sizes[name])} | {memory[name][0]:.1f} | {memory[name][1]:.1f} |")
    per_sample = {}
    for name in urls:
        samples = sum(1 for line in sizes[name].decode().splitlines()
                      if line and not line.startswith("#"))
        per_sample[name] = med[name] * 1000 / samples
    ratio = med["kubetally exporter"] / med["node_exporter"]
    body = "\n".join([
        f"Node: {args.pods} pods, {containers} running containers (generated cgroup v2 tree, "
        f"local API server); {rounds} alternating scrapes after {warmup} warm-up each. "
        f"Anchor: {ne_version}, default collectors.",
        "", *rows, "",
        f"**Scrape time ratio kubetally / node_exporter: {ratio:.2f}** (target ≤ 1.0); "
        f"kubetally RSS {memory['kubetally exporter'][0]:.1f} MiB (target < 60 MB). "
        f"Per sample served: kubetally {per_sample['kubetally exporter']:.1f} µs, "
        f"node_exporter {per_sample['node_exporter']:.1f} µs.",
        "", "Command: `make bench` (or `.venv/bin/python bench/exporter_bench.py "
        "--write docs/benchmarks.md`)."])
    print(body)
    if args.write:
        write_section(args.write, "exporter", "## Exporter scrape vs node_exporter\n\n" + body)


if __name__ == "__main__":
    main()
