"""``kubetally``: one command, a subcommand per part.

Each subcommand's flags come from its config dataclass; the layers are
defaults → ``--config`` file → ``KUBETALLY_*`` environment → flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from typing import Any

from exporter.config import SECTION as EXPORTER
from exporter.config import ExporterConfig
from exporter.errors import ExporterError
from kubetally import config as layered

__all__ = ["main"]

log = logging.getLogger("kubetally")


def _wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM (the kubelet's stop)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(3600):
        pass


def _load_nvml() -> Any | None:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


def run_exporter(cfg: ExporterConfig) -> int:
    """Serve a real node, or a simulated one with ``--simulate``."""
    from exporter.app import build_exporter
    from exporter.kube import api_client_from

    if not cfg.simulate:
        client = api_client_from(cfg.kubeconfig or None, cfg.kube_api or None)
        exporter = build_exporter(cfg, client, _load_nvml())
        exporter.start()
        log.info("exporter for node %s on :%d/metrics", cfg.node_name, exporter.server.port)
        _wait_for_signal()
        exporter.stop()
        return 0

    from exporter.simulate.node import SimulatedNode

    with tempfile.TemporaryDirectory(prefix="kubetally-sim-") as workdir, SimulatedNode(
        workdir, seed=cfg.seed, pods=cfg.sim_pods, gpu=cfg.sim_gpu
    ) as sim:
        cfg = dataclasses.replace(
            cfg, node_name=sim.node_name, cgroup_root=sim.cgroup_root, proc_root=sim.proc_root,
            kube_api=sim.api_url)
        exporter = build_exporter(cfg, api_client_from(host=sim.api_url), sim.nvml)
        exporter.start()
        sim.run_in_background(cfg.sim_tick)
        print(f"simulated node {sim.node_name} ({sim.instance_type}, {len(sim.pods)} pods) — "
              f"curl localhost:{exporter.server.port}/metrics", flush=True)
        _wait_for_signal()
        exporter.stop()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubetally", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default=os.environ.get("KUBETALLY_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("exporter", help="per-node exporter: cgroups, Kubernetes API, NVML")
    exp.add_argument("--config", help="YAML file with an 'exporter:' section")
    layered.add_arguments(exp, ExporterConfig, EXPORTER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kubetally`` console command."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    flags = {k: v for k, v in vars(args).items() if k not in ("command", "config", "log_level")}
    try:
        if args.command == "exporter":
            cfg = layered.load(ExporterConfig, EXPORTER, file=args.config, environ=os.environ,
                               overrides=flags)
            return run_exporter(cfg)
    except (ExporterError, layered.ConfigValueError, OSError) as exc:
        print(f"kubetally {args.command}: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
