"""Exporter payloads → interval frame: rates, resets, requests, GPU classes, labels.

Payloads are rendered with the exporter's own contract and exposition, parsed with
the aggregator's parser, and every expected number is worked out by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from aggregator.ingest import Ingest, TargetScrape
from aggregator.textparse import parse
from exporter import contract as c
from exporter.exposition import label_pairs, render

NODE = "gpu-node-1"


def ident(pod, container, uid):
    return label_pairs(c.CONTAINER_LABELS, ("ml", pod, uid, container, NODE, "Deployment", pod))


def payload(cpu_a, cpu_b, *, sharing="none", renamed=True, extra_pod_label="x"):
    fams = {m: m.family() for m in c.ALL}
    fams[c.NODE_INFO].add([NODE, "aws", "p4d.24xlarge", "us-east-1", "us-east-1a", "spot",
                           "NVIDIA-A100", sharing], 1)
    fams[c.NODE_CPU_CAPACITY].add([NODE], 96)
    fams[c.NODE_MEMORY_CAPACITY].add([NODE], 2**40)
    if renamed:
        fams[c.NODE_GPU_CAPACITY].add([NODE, "nvidia.com/gpu.shared"], 8)
    a, b, m = ident("train", "main", "u-a"), ident("infer", "srv", "u-b"), ident("mig", "m", "u-m")
    fams[c.CONTAINER_CPU_USAGE].add_pairs(a, cpu_a)
    fams[c.CONTAINER_CPU_USAGE].add_pairs(b, cpu_b)
    fams[c.CONTAINER_MEMORY_WORKING_SET].add_pairs(a, 3e9)
    fams[c.CONTAINER_CPU_REQUEST].add_pairs(a, 2)
    fams[c.CONTAINER_MEMORY_REQUEST].add_pairs(a, 4e9)
    fams[c.CONTAINER_CPU_REQUEST].add_pairs(m, 0.5)
    fams[c.CONTAINER_GPU_REQUEST].add_pairs(a + ',resource="nvidia.com/gpu"', 2)
    fams[c.CONTAINER_GPU_REQUEST].add_pairs(b + ',resource="nvidia.com/gpu.shared"', 1)
    fams[c.CONTAINER_GPU_REQUEST].add_pairs(m + ',resource="nvidia.com/mig-2g.10gb"', 1)
    fams[c.CONTAINER_GPU_SM_UTILIZATION].add_pairs(b + ',gpu_uuid="GPU-S"', 0.25)
    fams[c.CONTAINER_GPU_SM_UTILIZATION].add_pairs(a + ',gpu_uuid="GPU-A"', 0.9)
    devices = (("GPU-A", "", "", 1), ("GPU-S", "", "", 1), ("GPU-M", "", "", 1),
               ("MIG-1", "2g.10gb", "GPU-M", 2 / 7))
    for uuid, profile, parent, share in devices:
        fams[c.GPU_INFO].add([NODE, uuid, "0", "A100", profile, parent], 1)
        fams[c.GPU_PHYSICAL_SHARE].add([NODE, uuid], share)
    fams[c.POD_LABELS_INFO] = c.POD_LABELS_INFO.family(["label_team"])
    fams[c.POD_LABELS_INFO].add(["ml", "train", "u-a", extra_pod_label], 1)
    return render(fams.values())


def ingest(ing, body, t):
    state = ing.state("t1")
    return ing.frame(int(t) - 60, int(t), [TargetScrape("t1", parse(body, state.table), t)])


def row(frame, uid):
    return int(np.flatnonzero(frame.containers.identity["uid"] == uid)[0])


def test_counter_rates_and_resets():
    ing = Ingest("prod")
    first = ingest(ing, payload(100.0, 50.0), 1000.0)
    # no previous sample: the rate is unknown, not 0
    assert math.isnan(first.containers.cpu_usage_cores[row(first, "u-a")])
    second = ingest(ing, payload(130.0, 62.0), 1060.0)
    # (130 - 100) / 60 = 0.5 cores; (62 - 50) / 60 = 0.2 cores
    assert second.containers.cpu_usage_cores[row(second, "u-a")] == pytest.approx(0.5)
    assert second.containers.cpu_usage_cores[row(second, "u-b")] == pytest.approx(0.2)
    third = ingest(ing, payload(9.0, 74.0), 1120.0)
    # 130 → 9 is a restart: the new container used 9 s since it started, 9 / 60 = 0.15
    assert third.containers.cpu_usage_cores[row(third, "u-a")] == pytest.approx(0.15)


def test_requests_gauges_identity_and_node():
    frame = ingest(Ingest("prod"), payload(1.0, 1.0), 1000.0)
    k = frame.containers
    a, m = row(frame, "u-a"), row(frame, "u-m")
    assert (k.cpu_request_cores[a], k.ram_request_bytes[a], k.ram_usage_bytes[a]) == (2, 4e9, 3e9)
    # the MIG container sets no memory request: 0 (not set), and no working set seen: NaN
    assert k.ram_request_bytes[m] == 0 and math.isnan(k.ram_usage_bytes[m])
    assert k.identity["cluster"][a] == "prod" and k.identity["controller"][a] == "train"
    assert k.labels["label_team"][a] == "x" and k.labels["label_team"][m] == ""
    assert frame.nodes.identity["instance_type"][0] == "p4d.24xlarge"
    assert frame.nodes.identity["capacity_type"][0] == "spot"
    # GPU-A, GPU-S, GPU-M are physical; MIG-1 is a slice of GPU-M: 3 physical GPUs
    assert (frame.nodes.cpu_cores[0], frame.nodes.gpus[0]) == (96, 3)


def test_gpu_classes_whole_shared_and_mig():
    frame = ingest(Ingest(), payload(1.0, 1.0), 1000.0)
    k, d = frame.containers, frame.devices
    a, b, m = row(frame, "u-a"), row(frame, "u-b"), row(frame, "u-m")
    assert (k.gpu_request[a], k.gpu_request[b], k.gpu_request[m]) == (2, 0, 0)
    assert k.mig_gpus[m] == pytest.approx(2 / 7)  # one 2g.10gb = 2 of 7 slices
    shared = dict(zip(d.uuid, d.shared, strict=True))
    assert shared == {"GPU-A": False, "GPU-S": True, "GPU-M": False, "MIG-1": False}
    use = {(k.identity["uid"][ci], d.uuid[di]): s
           for ci, di, s in zip(frame.gpu_use.container, frame.gpu_use.device,
                                frame.gpu_use.sm_share, strict=True)}
    assert use == {("u-b", "GPU-S"): 0.25, ("u-a", "GPU-A"): 0.9}


def test_time_slicing_without_renaming_makes_gpu_requests_shares():
    frame = ingest(Ingest(), payload(1.0, 1.0, sharing="time-slicing", renamed=False), 1000.0)
    a = row(frame, "u-a")
    # nvidia.com/gpu is a replica here, not a whole GPU: not charged by allocation,
    # and the device its process uses is split by SM share
    assert frame.containers.gpu_request[a] == 0
    assert dict(zip(frame.devices.uuid, frame.devices.shared, strict=True))["GPU-A"]


def test_pod_label_change_takes_the_current_value():
    ing = Ingest()
    ingest(ing, payload(1.0, 1.0, extra_pod_label="old"), 1000.0)
    frame = ingest(ing, payload(2.0, 2.0, extra_pod_label="new"), 1060.0)
    assert frame.containers.labels["label_team"][row(frame, "u-a")] == "new"


def test_target_without_node_info_contributes_nothing():
    ing = Ingest()
    body = b"# TYPE other gauge\nother 1\n"
    frame = ingest(ing, body, 1000.0)
    assert len(frame.nodes) == 0 and len(frame.containers) == 0
