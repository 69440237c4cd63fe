"""Requests, limits and the scheduler's effective pod totals."""

from __future__ import annotations

import pytest

from exporter.pods import container_id, pod_info
from exporter.resources import is_gpu_resource, pod_totals, quantities


def no_owner(_ns, _refs):
    return ("", "")


def test_quantities_parse_every_suffix_in_base_units():
    got = quantities({"cpu": "250m", "memory": "1Gi", "nvidia.com/gpu": "2",
                      "nvidia.com/mig-1g.10gb": "1", "ephemeral-storage": "10Gi"})
    # 250m = 0.25 cores; 1Gi = 1024^3 = 1073741824 bytes; storage is not priced here
    assert got == {"cpu": 0.25, "memory": 1073741824.0, "nvidia.com/gpu": 2.0,
                   "nvidia.com/mig-1g.10gb": 1.0}
    assert quantities({"memory": "128M", "cpu": "1.5"}) == {"memory": 128e6, "cpu": 1.5}


def test_malformed_quantity_is_an_error_not_a_zero():
    with pytest.raises(ValueError):
        quantities({"cpu": "lots"})


@pytest.mark.parametrize("name, gpu", [
    ("nvidia.com/gpu", True), ("nvidia.com/gpu.shared", True), ("nvidia.com/mig-3g.20gb", True),
    ("cpu", False), ("amd.com/gpu", False), ("nvidia.com/gpus", False)])
def test_gpu_resources(name, gpu):
    assert is_gpu_resource(name) is gpu


def test_init_container_larger_than_app_sets_the_pod_request():
    # app: 0.5 + 0.5 = 1.0 core; init: 2 cores → pod reserves max(1.0, 2) = 2
    assert pod_totals([{"cpu": 0.5}, {"cpu": 0.5}], [({"cpu": 2.0}, False)]) == {"cpu": 2.0}


def test_sidecars_add_to_app_and_to_later_init_containers():
    # sidecar 0.2 (restartPolicy Always) then init 1.0, app 0.5:
    # init peak = max(0.2, 0.2 + 1.0) = 1.2 ; app total = 0.5 + 0.2 = 0.7 → 1.2
    got = pod_totals([{"cpu": 0.5}], [({"cpu": 0.2}, True), ({"cpu": 1.0}, False)])
    assert got == pytest.approx({"cpu": 1.2})
    # an init container BEFORE the sidecar does not run beside it: max(1.0, 0.5 + 0.2) = 1.0
    got = pod_totals([{"cpu": 0.5}], [({"cpu": 1.0}, False), ({"cpu": 0.2}, True)])
    assert got == pytest.approx({"cpu": 1.0})


def test_overhead_is_added_on_top():
    # RuntimeClass overhead 250m / 120Mi on top of 1 core / 1Gi
    got = pod_totals([{"cpu": 1.0, "memory": 2.0**30}], [], {"cpu": 0.25, "memory": 120 * 2.0**20})
    assert got == {"cpu": 1.25, "memory": 2.0**30 + 120 * 2.0**20}


def test_container_id_drops_the_runtime_scheme():
    assert container_id("containerd://abc") == "abc"
    assert container_id("cri-o://abc") == "abc"
    assert container_id("docker://abc") == "abc"
    assert container_id(None) == ""


def _pod():
    return {
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d",
                                          "controller": True}]},
        "spec": {"nodeName": "n1",
                 "initContainers": [
                     {"name": "mesh", "restartPolicy": "Always",
                      "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                     {"name": "migrate", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}],
                 "containers": [
                     {"name": "app", "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                                                   "limits": {"memory": "1Gi",
                                                              "nvidia.com/gpu": "1"}}}]},
        "status": {"phase": "Running", "qosClass": "Burstable",
                   "containerStatuses": [{"name": "app", "containerID": "containerd://aa",
                                          "restartCount": 3}],
                   "initContainerStatuses": [{"name": "mesh", "containerID": "containerd://bb"},
                                             {"name": "migrate", "containerID": "containerd://cc"}]},
    }


def test_pod_info_joins_spec_status_and_owner():
    seen = []

    def owners(ns, refs):
        seen.append((ns, refs[0]["name"]))
        return ("Deployment", "web")

    info = pod_info(_pod(), owners)
    assert seen == [("shop", "web-5d")]
    assert (info.uid, info.namespace, info.name, info.node) == ("u-1", "shop", "web-1", "n1")
    assert (info.controller_kind, info.controller, info.qos_class) == ("Deployment", "web",
                                                                       "Burstable")
    by_name = {c.name: c for c in info.containers}
    assert by_name["app"].container_id == "aa" and by_name["app"].restart_count == 3
    assert by_name["mesh"].sidecar and not by_name["mesh"].init
    assert by_name["migrate"].init and not by_name["migrate"].sidecar
    # cpu: app 0.5 + sidecar 0.1 = 0.6; init peak 0.1 + 2 = 2.1 → 2.1
    # memory: 512Mi + 64Mi = 576Mi; init 64Mi + 1Gi = 1088Mi → 1088Mi
    assert info.effective_requests == pytest.approx({"cpu": 2.1, "memory": 1088 * 2.0**20})
    # limits: only app sets memory 1Gi and gpu 1
    assert info.effective_limits == {"memory": 2.0**30, "nvidia.com/gpu": 1.0}


def test_pod_without_status_yet_has_no_container_ids():
    raw = _pod()
    del raw["status"]
    info = pod_info(raw, no_owner)
    assert all(c.container_id == "" for c in info.containers)
    assert info.phase == ""
