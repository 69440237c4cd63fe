"""The aggregator's options, declared once (flags, environment, file and README come from here)."""

from __future__ import annotations

from dataclasses import dataclass

from kubetally.config import option

__all__ = ["SECTION", "AggregatorConfig"]

SECTION = "aggregator"


@dataclass(frozen=True, slots=True)
class AggregatorConfig:
    """Options of ``kubetally aggregator``."""

    port: int = option(9103, "TCP port of the aggregator's own /metrics")
    host: str = option("0.0.0.0", "address to listen on")
    cluster: str = option("default", "cluster name stored with every series")
    targets: tuple[str, ...] = option((), "comma list of exporters (host:port or URL)")
    file_sd: str = option("", "Prometheus file_sd JSON/YAML file of exporters (reloaded)")
    kube_selector: str = option(
        "", "discover exporter pods by this label selector (e.g. app.kubernetes.io/name="
            "kubetally-exporter) through the Kubernetes API")
    kube_namespace: str = option("", "namespace of the exporter pods (all when empty)")
    kube_api: str = option("", "API server URL, overriding in-cluster config and kubeconfig")
    kubeconfig: str = option("", "kubeconfig file when not running in a pod")
    exporter_port: int = option(9102, "port of discovered exporter pods")
    interval: int = option(60, "seconds between scrapes, aligned to the wall clock")
    timeout: float = option(10.0, "seconds a target may take before it counts as failed")
    shard: str = option("0/1", "i/n: scrape only the targets hashing to shard i of n")
    store: str = option("./kubetally-data", "store URL: a directory or an fsspec URL")
    raw_retention_days: float = option(7, "days the raw tier is kept")
    hourly_retention_days: float = option(400, "days the hourly tier is kept")
    daily_retention_days: float = option(3650, "days the daily tier is kept")
    prices_file: str = option("", "YAML file with unit prices and per-node overrides, re-read "
                                  "when it changes (empty: <store dir>/prices.yaml for a local "
                                  "store once it exists, else the config file)")
