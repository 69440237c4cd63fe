"""``kubetally api`` as a user runs it: gunicorn on a free port, over a small store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from test_api_store import T0, H, build_store

from api.config import ApiConfig
from api.server import gunicorn_options
from kubetally import config as layered


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_config_layers_and_port_alias(tmp_path):
    cfg = layered.load(ApiConfig, "api", environ={"PORT": "8123", "KUBETALLY_API_WORKERS": "3"})
    assert cfg.port == 8123 and cfg.workers == 3
    both = layered.load(ApiConfig, "api", environ={"PORT": "1", "KUBETALLY_API_PORT": "2"})
    assert both.port == 2
    assert gunicorn_options(cfg)["bind"] == "0.0.0.0:8123"


def test_kubetally_api_serves_under_gunicorn_and_stops_on_sigterm(tmp_path):
    store = build_store(tmp_path / "store")
    port = _free_port()
    env = {**os.environ, "KUBETALLY_API_TOKEN": "", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubetally", "api", "--store", str(store), "--host",
         "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, body = _get(base + "/healthz")
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "api did not start"
                time.sleep(0.1)
        assert status == 200 and body == {"status": "ok"}
        status, body = _get(f"{base}/api/v1/allocation?window={T0},{T0 + 2 * H}"
                             "&aggregate=namespace&accumulate=true")
        assert status == 200 and abs(body["data"][0]["web"]["totalCost"] - 9.2) < 1e-9
        status, body = _get(f"{base}/api/v1/allocation?window=nope")
        assert status == 400 and body["parameter"] == "window"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "Shutting down" in out or "Handling signal" in out
