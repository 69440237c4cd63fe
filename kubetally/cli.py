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
from typing import TYPE_CHECKING, Any

from kubetally import config as layered

if TYPE_CHECKING:  # each command imports its own part when it runs
    from aggregator.config import AggregatorConfig
    from exporter.config import ExporterConfig

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
    from exporter.cgroup_fds import raise_nofile_limit
    from exporter.kube import api_client_from

    raise_nofile_limit()  # before the cgroup reader sizes its descriptor budget
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


def run_aggregator(cfg: AggregatorConfig, config_file: str | None,
                   price_flags: dict[str, Any]) -> int:
    """Scrape, cost and store every interval until SIGINT/SIGTERM."""
    from aggregator.app import build_aggregator
    from aggregator.pricebook import PriceBook, load_price_book
    from aggregator.pricefile import PriceBookSource, default_prices_file

    # The prices file (the API's PUT target) is re-read each interval when it changes;
    # until it exists, the main config file's prices section applies.
    file = cfg.prices_file or default_prices_file(cfg.store)
    prices: PriceBook | PriceBookSource = (
        PriceBookSource(file, fallback=config_file or None, environ=os.environ,
                        overrides=price_flags) if file is not None else
        load_price_book(config_file or None, environ=os.environ, overrides=price_flags))
    running = build_aggregator(cfg, prices)
    loop = threading.Thread(target=running.aggregator.run, args=(cfg.interval,),
                            name="aggregator", daemon=True)
    loop.start()
    log.info("aggregator: every %ds into %s; own metrics on :%d/metrics", cfg.interval,
             cfg.store, cfg.port)
    _wait_for_signal()
    running.close()
    loop.join(timeout=30)
    return 0


_COMMANDS = {
    "exporter": "per-node exporter: cgroups, Kubernetes API, NVML",
    "aggregator": "scrape exporters, price, cost and store in Zarr",
    "api": "serve the REST API (OpenCost-compatible allocation) over the store",
    "demo": "simulated cluster with days of cost history, then live (--once to stop)",
}


def _parser(command: str | None) -> argparse.ArgumentParser:
    """The parser, with full options for ``command`` only.

    Each command imports only its own part: the exporter, a DaemonSet on every node,
    must not pay for numpy and the aggregator's modules it never uses.
    """
    parser = argparse.ArgumentParser(prog="kubetally", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default=os.environ.get("KUBETALLY_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in _COMMANDS.items():
        cmd = sub.add_parser(name, help=help_)
        if name != command:
            continue
        if name == "exporter":
            from exporter.config import SECTION, ExporterConfig

            cmd.add_argument("--config", help="YAML file with an 'exporter:' section")
            layered.add_arguments(cmd, ExporterConfig, SECTION)
        elif name == "aggregator":
            from aggregator.config import SECTION, AggregatorConfig
            from aggregator.prices import SECTION as PRICES
            from aggregator.prices import UnitPrices

            cmd.add_argument("--config", help="YAML file with 'aggregator:' and 'prices:' sections")
            layered.add_arguments(cmd, AggregatorConfig, SECTION)
            layered.add_arguments(cmd, UnitPrices, PRICES)
        elif name == "api":
            from api.config import SECTION, ApiConfig

            cmd.add_argument("--config", help="YAML file with an 'api:' section")
            layered.add_arguments(cmd, ApiConfig, SECTION)
        elif name == "demo":
            from kubetally.demo import SECTION, DemoConfig

            cmd.add_argument("--config", help="YAML file with a 'demo:' section")
            layered.add_arguments(cmd, DemoConfig, SECTION)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--log-level":
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def _dispatch(command: str, flags: dict[str, Any], config_file: str | None) -> int:
    if command == "exporter":
        from exporter.config import SECTION, ExporterConfig

        cfg = layered.load(ExporterConfig, SECTION, file=config_file, environ=os.environ,
                           overrides=flags)
        return run_exporter(cfg)
    if command == "api":
        from api.config import SECTION, ApiConfig
        from api.server import serve

        return serve(layered.load(ApiConfig, SECTION, file=config_file, environ=os.environ,
                                  overrides=flags))
    if command == "demo":
        from kubetally.demo import SECTION, DemoConfig, run_demo

        return run_demo(layered.load(DemoConfig, SECTION, file=config_file, environ=os.environ,
                                     overrides=flags))
    from aggregator.config import SECTION, AggregatorConfig
    from aggregator.prices import UnitPrices

    price_fields = {f.name for f in dataclasses.fields(UnitPrices)}
    agg = layered.load(AggregatorConfig, SECTION, file=config_file, environ=os.environ,
                       overrides={k: v for k, v in flags.items() if k not in price_fields})
    return run_aggregator(agg, config_file,
                          {k: v for k, v in flags.items() if k in price_fields})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kubetally`` console command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(_command(argv)).parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    flags = {k: v for k, v in vars(args).items() if k not in ("command", "config", "log_level")}
    from aggregator.errors import AggregatorError  # light: no numpy
    from exporter.errors import ExporterError

    try:
        return _dispatch(args.command, flags, args.config)
    except (ExporterError, AggregatorError, layered.ConfigValueError, OSError) as exc:
        print(f"kubetally {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
