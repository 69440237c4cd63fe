"""The whole exporter against a simulated GPU node, scraped over HTTP.

The exporter is the production assembly (``build_exporter``): the real cgroup
reader on a generated tree, the real ``kubernetes`` client watching a local API
server, the GPU reader on the fake pynvml. Values are checked against the
simulation's own state, and the exposition against ``promtool check metrics``.
"""

from __future__ import annotations

import dataclasses
import gzip
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter import contract as c
from exporter.app import build_exporter
from exporter.config import ExporterConfig
from exporter.kube import api_client_from
from exporter.simulate.node import SimulatedNode


def wait_for(check, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def fetch(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, dict(resp.headers), resp.read()


def samples(text):
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with SimulatedNode(str(tmp_path_factory.mktemp("node")), seed=3, pods=30, gpu=True) as node:
        node.advance(node.now + 600)
        yield node


def start_exporter(sim, nvml, **overrides):
    cfg = ExporterConfig(node_name=sim.node_name, cgroup_root=sim.cgroup_root,
                         proc_root=sim.proc_root, host="127.0.0.1", port=0)
    cfg = dataclasses.replace(cfg, **overrides)
    exporter = build_exporter(cfg, api_client_from(host=sim.api_url), nvml)
    exporter.start()
    assert exporter.pods.wait_synced(20) and exporter.nodes.wait_synced(20)
    return exporter, f"http://127.0.0.1:{exporter.server.port}"


@pytest.fixture(scope="module")
def running(sim):
    exporter, url = start_exporter(sim, sim.nvml)
    yield exporter, url
    exporter.stop()


def scrape(url):
    return fetch(url + "/metrics")[2].decode()


def test_promtool_accepts_the_full_output(running):
    _, url = running
    body = scrape(url)
    result = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""


def test_every_family_of_the_contract_has_samples(running):
    _, url = running
    got = samples(scrape(url))
    missing = [m.name for m in c.ALL if m.name not in got]
    assert missing == []


def test_container_values_are_what_the_cgroup_files_hold(running, sim):
    _, url = running
    got = samples(scrape(url))
    pod = next(p for p in sim.pods if p.owner[0] == "ReplicaSet" and not p.containers[0].gpus)
    container = pod.containers[0]
    labels = {"namespace": pod.namespace, "pod": pod.name, "uid": pod.uid,
              "container": container.name, "node": sim.node_name}

    def value(name):
        hits = [v for lab, v in got[name] if all(lab.get(k) == x for k, x in labels.items())]
        assert len(hits) == 1, (name, hits)
        return hits[0]

    # the writer stores usage_usec = round(seconds * 1e6); working set = current − inactive_file
    assert value(c.CONTAINER_CPU_USAGE.name) == round(container.cpu_seconds * 1e6) / 1e6
    assert value(c.CONTAINER_MEMORY_WORKING_SET.name) == round(container.working_set)
    assert value(c.CONTAINER_MEMORY_RSS.name) == round(container.working_set * 0.85)
    cpu_m = int(container.requests["cpu"].removesuffix("m"))
    assert value(c.CONTAINER_CPU_REQUEST.name) == pytest.approx(cpu_m / 1000)
    mem_mi = int(container.requests["memory"].removesuffix("Mi"))
    assert value(c.CONTAINER_MEMORY_REQUEST.name) == mem_mi * 2**20
    owner = next(lab for lab, _ in got[c.CONTAINER_CPU_USAGE.name] if lab["uid"] == pod.uid)
    assert owner["controller_kind"] == "Deployment"
    assert pod.owner[1].startswith(owner["controller"] + "-")  # RS name = deployment + hash


def test_node_info_and_capacity(running, sim):
    _, url = running
    got = samples(scrape(url))
    (info, _), = got[c.NODE_INFO.name]
    assert info == {"node": sim.node_name, "provider": "aws", "instance_type": "p4d.24xlarge",
                    "region": "us-east-1", "zone": "us-east-1a",
                    "capacity_type": sim.model.capacity_type,
                    "gpu_model": "NVIDIA-A100-SXM4-40GB", "gpu_sharing": "time-slicing"}
    assert got[c.NODE_CPU_CAPACITY.name] == [({"node": sim.node_name}, 96.0)]
    gpu_cap = {lab["resource"]: v for lab, v in got[c.NODE_GPU_CAPACITY.name]}
    assert gpu_cap == {"nvidia.com/gpu": 4, "nvidia.com/gpu.shared": 8,
                       "nvidia.com/mig-1g.5gb": 9, "nvidia.com/mig-2g.10gb": 1,
                       "nvidia.com/mig-3g.20gb": 1}


def test_gpus_whole_shared_and_mig(running, sim):
    _, url = running
    got = samples(scrape(url))
    share = {lab["gpu_uuid"]: v for lab, v in got[c.GPU_PHYSICAL_SHARE.name]}
    gpu7 = sim.model.gpus[7]
    # gpu 7 is 3g.20gb + 2g.10gb + 2 × 1g.5gb on an A100 whose MIG maximum is 7 slices
    assert [share[u] for u, _p, _s in gpu7.mig] == pytest.approx([3 / 7, 2 / 7, 1 / 7, 1 / 7])
    assert share[gpu7.uuid] == 1.0
    shared_uuid = sim.model.gpus[4].uuid
    on_shared = [lab for lab, _ in got[c.CONTAINER_GPU_SM_UTILIZATION.name]
                 if lab["gpu_uuid"] == shared_uuid]
    assert len({lab["pod"] for lab in on_shared}) == 3  # three pods time-slice GPU 4
    ratios = [v for lab, v in got[c.CONTAINER_GPU_SM_UTILIZATION.name]]
    assert all(0.0 <= r <= 1.0 for r in ratios)
    mig_uuid = sim.model.gpus[6].mig[0][0]
    assert any(lab["gpu_uuid"] == mig_uuid for lab, _ in got[c.CONTAINER_GPU_MEMORY_USED.name])


def test_gzip_when_asked(running):
    _, url = running
    status, headers, body = fetch(url + "/metrics", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("Content-Encoding") == "gzip"
    assert c.CONTAINER_CPU_USAGE.name in gzip.decompress(body).decode()


def test_healthz_and_unknown_paths(running):
    _, url = running
    assert fetch(url + "/healthz")[0] == 200
    with pytest.raises(urllib.error.HTTPError) as err:
        fetch(url + "/nope")
    assert err.value.code == 404


def test_restart_resets_the_counter_under_a_new_container_id(running, sim):
    _, url = running
    pod = next(p for p in sim.pods if not p.containers[0].gpus)
    name = pod.containers[0].name
    before = [v for lab, v in samples(scrape(url))[c.CONTAINER_CPU_USAGE.name]
              if lab["uid"] == pod.uid and lab["container"] == name]
    assert before and before[0] > 0
    sim.restart_container(pod, name)

    def after():
        got = [v for lab, v in samples(scrape(url))[c.CONTAINER_CPU_USAGE.name]
               if lab["uid"] == pod.uid and lab["container"] == name]
        return got if got and got[0] == 0.0 else None

    assert wait_for(after, what="the restarted container's fresh counter") == [0.0]


def test_serves_from_cache_while_the_api_is_away(running, sim):
    exporter, url = running
    pods_before = len(samples(scrape(url))[c.POD_INFO.name])
    sim.api.fail_next(10**6)
    sim.api.drop_watches()
    try:
        wait_for(lambda: not exporter.pods.synced, what="the watch to notice the outage")
        got = samples(scrape(url))
        assert got[c.KUBE_SYNCED.name] == [({}, 0.0)]
        assert len(got[c.POD_INFO.name]) == pods_before
        assert c.CONTAINER_CPU_USAGE.name in got
    finally:
        sim.api.fail_next(0)
    wait_for(lambda: exporter.pods.synced, timeout=60, what="the watch to recover")
    restarts = samples(scrape(url))[c.KUBE_WATCH_RESTARTS.name]
    assert any(lab["reason"] == "error" and v >= 1 for lab, v in restarts)


@pytest.mark.parametrize("nvml", ["none", "library-missing"])
def test_without_nvml_the_gpu_collector_reports_absent(sim, nvml):
    from exporter.simulate.fakenvml import FakeNVML

    module = None if nvml == "none" else FakeNVML([], library_present=False)
    exporter, url = start_exporter(sim, module)
    try:
        got = samples(scrape(url))
    finally:
        exporter.stop()
    assert ({"collector": "gpu"}, 0.0) in got[c.COLLECTOR_AVAILABLE.name]
    assert c.GPU_INFO.name not in got
    assert c.CONTAINER_CPU_USAGE.name in got and c.NODE_INFO.name in got
    assert ({"collector": "gpu"}, 0.0) in got[c.COLLECTOR_ERRORS.name]


def test_unreadable_cgroup_file_costs_only_that_value(tmp_path):
    with SimulatedNode(str(tmp_path), seed=5, pods=6, gpu=False) as node:
        pod = node.pods[0]
        victim = pod.containers[0]
        path = node.cgroup_root + node.tree.container_path(pod, victim.container_id)
        with open(f"{path}/memory.stat", "w") as fh:
            fh.write("garbage without numbers\n")
        exporter, url = start_exporter(node, None)
        try:
            got = samples(scrape(url))
        finally:
            exporter.stop()
    ws = {lab["uid"] + lab["container"] for lab, _ in got[c.CONTAINER_MEMORY_WORKING_SET.name]}
    cpu = {lab["uid"] + lab["container"] for lab, _ in got[c.CONTAINER_CPU_USAGE.name]}
    assert pod.uid + victim.name in cpu  # its CPU is still read
    assert pod.uid + victim.name not in ws  # its working set is unknown: absent, not 0
    errors = dict((lab["collector"], v) for lab, v in got[c.COLLECTOR_ERRORS.name])
    assert errors["cgroup"] >= 1
