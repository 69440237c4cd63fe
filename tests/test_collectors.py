"""Collector behaviour that the end-to-end scrape cannot pin down: when the tree is walked."""

from __future__ import annotations

import os
import time

import pytest

from exporter.cgroups import CgroupReader
from exporter.collectors import CgroupCollector, Identities
from exporter.kube import ObjectWatcher, api_client_from
from exporter.kubeapi import LeanKubeAPI
from exporter.podindex import PodIndex
from exporter.selfmetrics import CollectorStats
from exporter.simulate.node import SimulatedNode


class CountingReader(CgroupReader):
    def __init__(self, root):
        super().__init__(root)
        self.scans = 0

    def scan(self, keep_open=None):
        self.scans += 1
        return super().scan(keep_open)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def setup(tmp_path):
    with SimulatedNode(str(tmp_path), seed=11, pods=5, gpu=False) as sim:
        lean = LeanKubeAPI(api_client_from(host=sim.api_url))
        watcher = ObjectWatcher(lean.list_pod_for_all_namespaces, resource="pods",
                                field_selector=f"spec.nodeName={sim.node_name}")
        watcher.start()
        assert watcher.wait_synced(10)
        index = PodIndex(watcher, lambda ns, refs: ("", ""))
        reader, clock = CountingReader(sim.cgroup_root), Clock()
        collector = CgroupCollector(reader, index, Identities(sim.node_name), CollectorStats(),
                                    rescan_seconds=30, clock=clock)
        yield sim, watcher, reader, clock, collector
        watcher.stop()


def usage_rows(collector):
    fam = next(f for f in collector.collect() if f.name.endswith("cpu_usage_seconds_total"))
    return len(fam)


def test_walks_once_while_nothing_changes_then_on_the_rescan_period(setup):
    _sim, _watcher, reader, clock, collector = setup
    first = usage_rows(collector)
    assert first > 0
    for _ in range(3):
        clock.now += 5
        assert usage_rows(collector) == first
    assert reader.scans == 1
    clock.now += 30
    usage_rows(collector)
    assert reader.scans == 2


def test_a_restart_seen_by_the_api_walks_again_at_once(setup):
    sim, watcher, reader, _clock, collector = setup
    rows = usage_rows(collector)
    generation = watcher.generation
    pod = sim.pods[0]
    sim.restart_container(pod, pod.containers[0].name)
    deadline = 200
    while watcher.generation == generation and deadline:
        time.sleep(0.05)
        deadline -= 1
    assert usage_rows(collector) == rows  # the new container is read, the old one is gone
    assert reader.scans == 2


def cpu_values(collector):
    fam = next(f for f in collector.collect() if f.name.endswith("cpu_usage_seconds_total"))
    return fam.render()


def wait_for_generation(watcher, generation):
    for _ in range(200):
        if watcher.generation != generation:
            return
        time.sleep(0.05)
    raise AssertionError("the pod cache never saw the change")


def test_values_follow_the_files_between_scrapes(setup):
    """The simulator replaces files by rename: kept descriptors must not pin old values."""
    sim, _watcher, _reader, clock, collector = setup
    first = cpu_values(collector)
    assert cpu_values(collector) == first
    sim.advance(sim.now + 60)
    clock.now += 1  # no walk: the same cgroups, new content
    assert cpu_values(collector) != first


def test_restarts_do_not_pile_up_descriptors(setup):
    sim, watcher, reader, _clock, collector = setup
    rows = usage_rows(collector)
    kept = len(reader.files)
    assert kept == 3 * rows
    fds = len(os.listdir("/proc/self/fd"))
    for i in range(12):
        pod = sim.pods[i % len(sim.pods)]
        generation = watcher.generation
        sim.restart_container(pod, next(c.name for c in pod.containers if not c.init))
        wait_for_generation(watcher, generation)
        assert usage_rows(collector) == rows
        assert len(reader.files) == kept  # the old container's files closed, the new one's kept
    assert len(os.listdir("/proc/self/fd")) <= fds
