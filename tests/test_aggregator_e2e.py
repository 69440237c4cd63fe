"""The aggregator end to end: real exporters on simulated nodes, a dead target, the store.

Intervals are stamped with synthetic times that cross an hour, so the raw hour seals
into a Zarr partition during the test; the simulated nodes advance by the same 60 s.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest
import xarray as xr
import zarr

from aggregator.app import build_aggregator
from aggregator.config import AggregatorConfig
from aggregator.measures import CONTAINER_MEASURES, NODE_MEASURES
from aggregator.pricebook import load_price_book
from aggregator.store import StoreReader
from exporter.app import build_exporter
from exporter.config import ExporterConfig
from exporter.kube import api_client_from
from exporter.simulate.node import SimulatedNode

T0 = 1_764_000_000 - 1_764_000_000 % 3600 + 3600 - 180  # three minutes before an hour


def dead_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    sims, exporters = [], []
    for seed, gpu in ((21, False), (22, True)):
        sim = SimulatedNode(str(tmp_path_factory.mktemp(f"node{seed}")), seed=seed, pods=12,
                            gpu=gpu, start=T0 - 60).__enter__()
        exporter = build_exporter(
            ExporterConfig(node_name=sim.node_name, cgroup_root=sim.cgroup_root,
                           proc_root=sim.proc_root, host="127.0.0.1", port=0),
            api_client_from(host=sim.api_url), sim.nvml)
        exporter.start()
        assert exporter.pods.wait_synced(20) and exporter.nodes.wait_synced(20)
        sims.append(sim)
        exporters.append(exporter)
    urls = [f"127.0.0.1:{e.server.port}" for e in exporters]
    store = tmp_path_factory.mktemp("store")
    cfg = AggregatorConfig(targets=(*urls, f"127.0.0.1:{dead_port()}"), store=str(store),
                           timeout=2.0, cluster="e2e")
    running = build_aggregator(cfg, load_price_book(None, environ={}), serve_metrics=False)
    reports = []
    for k in range(6):  # 6 intervals: 3 before the hour, 3 after
        start = T0 + 60 * (k - 1)
        for sim in sims:
            sim.advance(start + 60)
        reports.append(running.aggregator.step(start, start + 60, at=start + 60))
    yield sims, running, reports, store
    running.close()
    for e in exporters:
        e.stop()
    for sim in sims:
        sim.close()


def test_dead_target_costs_only_itself(cluster):
    sims, _running, reports, _store = cluster
    for report in reports:
        assert list(report.failed.values()) == ["connection"]
        assert report.nodes == 2
        running = sum(1 for s in sims for p in s.pods for c in p.containers if not c.init)
        assert report.containers == running
        assert report.total_cost > 0


def test_costs_add_up_per_node(cluster):
    _sims, _running, _reports, store = cluster
    reader = StoreReader(str(store))
    start, end = T0 - 60, T0 + 300
    nodes = reader.query(start, end, 60, ["node"], table="nodes")
    containers = reader.query(start, end, 60, ["node"], table="containers")
    assert list(nodes.keys["node"]) == list(containers.keys["node"])
    for resource in ("cpu", "ram", "gpu"):
        node_cost = np.nansum(nodes.values[f"{resource}_cost"], axis=0)
        charged = np.nansum(containers.values[f"{resource}_cost"], axis=0)
        idle = np.nansum(nodes.values[f"{resource}_idle_cost"], axis=0)
        # charged + idle = node cost unless containers are charged beyond the node
        assert np.all(charged + idle >= node_cost - 1e-9)
    assert np.nansum(nodes.values["gpu_cost"]) > 0  # the p4d node's GPUs


def test_first_interval_has_no_rates_then_usage_appears(cluster):
    _sims, _running, _reports, store = cluster
    reader = StoreReader(str(store))
    q = reader.query(T0 - 60, T0 + 300, 60, ["cluster"], table="containers")
    usage = q.values["cpu_usage_core_hours"][:, 0]
    # interval 0 had no previous counter: unknown usage, not 0; later ones have usage
    assert np.all(usage[1:] > 0)
    assert q.keys["cluster"].tolist() == ["e2e"]


def test_sealed_partition_opens_with_zarr_and_xarray(cluster):
    _sims, _running, _reports, store = cluster
    reader = StoreReader(str(store))
    sealed = reader.partitions("raw")
    assert sealed, "the hour before T0 + 180 must have been sealed"
    group = reader.open_partition(sealed[0])
    assert isinstance(group, zarr.Group)
    names = set(group.group_keys())
    assert {"containers", "nodes"} <= names
    ds = xr.open_zarr(reader.open_store(sealed[0]), group="containers", consolidated=False)
    assert set(CONTAINER_MEASURES) <= set(ds.data_vars)
    ds_nodes = xr.open_zarr(reader.open_store(sealed[0]), group="nodes", consolidated=False)
    assert set(NODE_MEASURES) <= set(ds_nodes.data_vars)
