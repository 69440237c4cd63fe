"""The ``kubetally`` command as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter import contract as c
from kubetally.cli import main


def test_exporter_without_node_name_says_what_to_set(capsys, monkeypatch):
    monkeypatch.delenv("NODE_NAME", raising=False)
    monkeypatch.delenv("KUBETALLY_EXPORTER_NODE_NAME", raising=False)
    code = main(["exporter", "--kube-api", "http://127.0.0.1:9", "--no-gpu"])
    assert code == 2
    err = capsys.readouterr().err
    assert "node name is required" in err and "NODE_NAME" in err


def test_bad_environment_value_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.setenv("KUBETALLY_EXPORTER_PORT", "ninety")
    assert main(["exporter"]) == 2
    assert "KUBETALLY_EXPORTER_PORT" in capsys.readouterr().err


def test_simulated_exporter_serves_every_family_and_promtool_accepts_it():
    """The README's demo: ``kubetally exporter --simulate`` on its defaults (but port 0)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "kubetally", "exporter", "--simulate",
                             "--port", "0", "--host", "127.0.0.1", "--sim-tick", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        banner = proc.stdout.readline()
        match = re.search(r"curl localhost:(\d+)/metrics", banner)
        assert match, banner + proc.stderr.read()
        url = f"http://127.0.0.1:{match.group(1)}/metrics"
        deadline = time.monotonic() + 30
        while True:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = resp.read().decode()
            names = {s.name for f in text_string_to_metric_families(body) for s in f.samples}
            if all(m.name in names for m in c.ALL) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert sorted(m.name for m in c.ALL if m.name not in names) == []
        check = subprocess.run(["promtool", "check", "metrics"], input=body, text=True,
                               capture_output=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert proc.returncode == 0  # SIGTERM is a clean stop


@pytest.mark.parametrize("argv", [["--help"], ["exporter", "--help"]])
def test_help_lists_flags_with_their_environment_variables(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    if argv[0] == "exporter":
        assert "--cgroup-root" in out and "KUBETALLY_EXPORTER_CGROUP_ROOT" in out


def test_aggregator_command_scrapes_and_stores(tmp_path):
    """``kubetally aggregator --targets ...`` against a simulated exporter, 1 s intervals."""
    from aggregator.store import StoreReader
    from exporter.app import build_exporter
    from exporter.config import ExporterConfig
    from exporter.kube import api_client_from
    from exporter.simulate.node import SimulatedNode

    with SimulatedNode(str(tmp_path / "node"), seed=4, pods=6, gpu=False) as sim:
        exporter = build_exporter(
            ExporterConfig(node_name=sim.node_name, cgroup_root=sim.cgroup_root,
                           proc_root=sim.proc_root, host="127.0.0.1", port=0, gpu=False),
            api_client_from(host=sim.api_url), None)
        exporter.start()
        store = tmp_path / "store"
        proc = subprocess.Popen(
            [sys.executable, "-m", "kubetally", "aggregator", "--targets",
             f"127.0.0.1:{exporter.server.port}", "--interval", "1", "--store", str(store),
             "--port", "0", "--host", "127.0.0.1", "--cluster", "cli"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            total = 0.0
            while time.monotonic() < deadline and total <= 0:
                time.sleep(0.5)
                if store.exists():
                    now = int(time.time())
                    q = StoreReader(str(store)).query(now - 3600, now + 1, 1, ["cluster"],
                                                      table="nodes")
                    total = float(np.nansum(q.values["cpu_cost"])) if len(q.keys["cluster"]) else 0
        finally:
            proc.terminate()
            _out, err = proc.communicate(timeout=30)
            exporter.stop()
    assert proc.returncode == 0, err
    assert total > 0, err
