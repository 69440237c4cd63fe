"""``kubetally demo``: backfill through the real path, the summary, the command, SIGTERM."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

import kubetally.demo as demo
from aggregator.store import StoreReader
from exporter.simulate.workload import generate_node
from kubetally.cli import main
from kubetally.config import ConfigValueError
from kubetally.demo_backfill import intervals
from kubetally.demo_store import prepare_store

NODES, PODS, SEED = 2, 30, 1
COST = ["cpu_cost", "ram_cost", "gpu_cost"]


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """One in-process demo: 2 nodes (node 0 with GPUs), 1 day, --once."""
    store = str(tmp_path_factory.mktemp("demo") / "store")
    seen = {}
    real = demo.summarize

    def spy(url, start, end):
        seen["window"] = (start, end)
        seen["summary"] = real(url, start, end)
        return seen["summary"]

    out = io.StringIO()
    mp = pytest.MonkeyPatch()
    mp.setattr(demo, "summarize", spy)
    try:
        code = demo.run_demo(demo.DemoConfig(nodes=NODES, pods=PODS, seed=SEED, days=1,
                                             store=store, port=0, once=True), out=out)
    finally:
        mp.undo()
    return code, out.getvalue(), store, seen


def test_exits_zero_and_seals_raw_and_hourly_partitions(ran):
    code, _out, store, _seen = ran
    assert code == 0
    reader = StoreReader(store)
    assert len(reader.partitions("raw")) >= 23
    assert reader.partitions("hourly"), "the day before today must have rolled up"


def test_every_namespace_with_running_pods_is_charged(ran):
    _code, _out, store, seen = ran
    start, end = seen["window"]
    models = [generate_node(SEED * 1000 + i, PODS, i == 0) for i in range(NODES)]
    expected = {p.namespace for m in models for p in m.pods
                if any(not c.init for c in p.containers)}
    q = StoreReader(store).query(start, end, end - start, ["namespace"], measures=COST)
    dollars = dict(zip(q.keys["namespace"].tolist(),
                       sum(np.nansum(q.values[m], axis=0) for m in COST).tolist(), strict=True))
    assert expected <= set(dollars)
    assert all(dollars[ns] > 0 for ns in expected), dollars


def test_gpu_node_has_gpu_cost(ran):
    _code, _out, store, seen = ran
    start, end = seen["window"]
    gpu_node = generate_node(SEED * 1000, PODS, True).name
    q = StoreReader(store).query(start, end, end - start, ["node"], table="nodes",
                                 measures=["gpu_cost"])
    per_node = dict(zip(q.keys["node"].tolist(), np.nansum(q.values["gpu_cost"], axis=0),
                        strict=True))
    assert per_node[gpu_node] > 0
    assert sum(v for k, v in per_node.items() if k != gpu_node) == 0


def _printed(out: str, label: str) -> float:
    match = re.search(rf"{label}\s+\$([\d,]+\.\d\d)", out)
    assert match, out
    return float(match.group(1).replace(",", ""))


def test_printed_summary_matches_an_independent_raw_read(ran):
    """One query over the whole window (raw tier + open hour) against the printed
    numbers, which the demo reads through the hourly tier where it can."""
    _code, out, store, seen = ran
    start, end = seen["window"]
    assert end - start == 86400
    reader = StoreReader(store)
    nodes = reader.query(start, end, end - start, [], table="nodes")
    containers = reader.query(start, end, end - start, ["namespace"], measures=COST)
    total = sum(np.nansum(nodes.values[m]) for m in COST)
    idle = sum(np.nansum(nodes.values[f"{r}_idle_cost"]) for r in ("cpu", "ram", "gpu"))
    assert _printed(out, r"total \(nodes\)") == pytest.approx(total, abs=0.006)
    assert _printed(out, "charged to pods") == pytest.approx(
        sum(np.nansum(containers.values[m]) for m in COST), abs=0.006)
    assert _printed(out, "idle") == pytest.approx(idle, abs=0.006)
    assert _printed(out, "GPU") == pytest.approx(np.nansum(nodes.values["gpu_cost"]), abs=0.006)
    top = max(seen["summary"].namespaces, key=seen["summary"].namespaces.get)
    assert _printed(out, top) == pytest.approx(seen["summary"].namespaces[top], abs=0.006)
    assert f"({seen['summary'].idle_share:.1%} of total)" in out


def test_hourly_tier_equals_the_raw_hours_it_rolls_up(ran):
    _code, _out, store, _seen = ran
    reader = StoreReader(store)
    day = reader.partitions("hourly")[0]
    hourly = reader.query(day.start, day.end, 3600, [], table="nodes", measures=COST)
    raw = reader.query(day.start, day.end, 60, [], table="nodes", measures=COST)
    assert any(t == "hourly" for _s, t, _p in hourly.sources)
    assert all(t != "hourly" for _s, t, _p in raw.sources)
    for m in COST:
        assert np.nansum(hourly.values[m]) == pytest.approx(np.nansum(raw.values[m]), rel=1e-12)


def test_intervals_cut_at_step_multiples_and_window_ends():
    assert list(intervals(3500, 7300, 3600)) == [(3500, 3600), (3600, 7200), (7200, 7300)]
    assert list(intervals(0, 1200, 600)) == [(0, 600), (600, 1200)]
    assert list(intervals(5, 5, 600)) == []


def test_store_wipe_refuses_a_directory_that_is_not_a_store(tmp_path):
    (tmp_path / "shard-0-of-1" / "raw").mkdir(parents=True)
    prepare_store(tmp_path, keep=True)
    assert (tmp_path / "shard-0-of-1").exists()
    prepare_store(tmp_path, keep=False)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigValueError, match="more than a kubetally store"):
        prepare_store(tmp_path, keep=False)
    assert (tmp_path / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize("flag, value", [("--backfill-step", "7"), ("--days", "0"),
                                         ("--nodes", "0"), ("--interval", "7200")])
def test_bad_values_are_refused_before_anything_starts(flag, value, tmp_path, capsys):
    assert main(["demo", flag, value, "--store", str(tmp_path / "s"), "--once"]) == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def _demo(tmp_path, *args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "kubetally", "demo", "--nodes", "2",
                             "--store", str(tmp_path / "store"), "--port", "0", "--api-port", "0",
                             *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_command_once_prints_the_summary(tmp_path):
    proc = _demo(tmp_path, "--days", "1", "--once")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "total (nodes)" in out and "top 5 namespaces" in out, out + err
    assert "ready:" not in out


def test_sigterm_during_the_live_phase_exits_zero(tmp_path):
    proc = _demo(tmp_path, "--days", "0.05", "--interval", "2")
    try:
        lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("ready:"):
                break
        assert lines and lines[-1].startswith("ready:"), "".join(lines) + proc.stderr.read()
        text = "".join(lines)
        # every API query the demo prints answers non-empty JSON
        queries = re.findall(r"'localhost:(\d+)(/api/v1/[^']*)'", text)
        assert {q[1].split("?")[0] for q in queries} == {"/api/v1/allocation",
                                                         "/api/v1/assets"}, text
        assert any("label:team" in q[1] for q in queries), text
        for port, path in queries:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as resp:
                body = json.loads(resp.read())
            assert resp.status == 200 and body["data"] and any(body["data"]), path
            if "aggregate=namespace" in path:
                assert "ml-inference" in body["data"][0]  # the GPU node's namespace
        time.sleep(4.5)  # at least one live interval
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped cleanly" in out
    assert re.search(r"interval \d+: 2/2 targets", err), err
