"""Node pricing identity from the labels the platforms set, on real captured nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from exporter.nodeinfo import capacity_type, node_facts

FIX = Path(__file__).parent / "fixtures" / "k8s"


def test_real_minikube_node_capacity():
    node = yaml.safe_load((FIX / "nri-kubernetes-1_35-minikube-nodes.yaml").read_text())["items"][0]
    facts = node_facts(node)
    assert facts.name == "datagen-1-35"
    # capacity cpu "14"; memory 8024304Ki = 8024304 * 1024 = 8216887296 bytes
    assert facts.capacity == {"cpu": 14.0, "memory": 8216887296.0}
    assert facts.allocatable == {"cpu": 14.0, "memory": 8216887296.0}
    assert (facts.provider, facts.instance_type, facts.capacity_type) == ("", "", "on_demand")


def test_real_gpu_operator_labels_give_the_gpu_model():
    labels = json.loads((FIX / "nvidia-cloud-native-docs-h100-mig-single-node-labels.json")
                        .read_text())
    node = {"metadata": {"name": "s4124-0073", "labels": labels},
            "status": {"capacity": {"cpu": "128", "nvidia.com/gpu": "7"}}}
    facts = node_facts(node, gpu_model_fallback="ignored")
    assert facts.gpu_model == "NVIDIA-H100-80GB-HBM3"
    assert facts.gpu_sharing == "none"
    assert facts.gpu_resources() == ["nvidia.com/gpu"]


@pytest.mark.parametrize("labels, expected", [
    ({"eks.amazonaws.com/capacityType": "SPOT"}, "spot"),
    ({"eks.amazonaws.com/capacityType": "ON_DEMAND"}, "on_demand"),
    ({"karpenter.sh/capacity-type": "spot"}, "spot"),
    ({"karpenter.sh/capacity-type": "on-demand"}, "on_demand"),
    ({"cloud.google.com/gke-spot": "true"}, "spot"),
    ({"cloud.google.com/gke-preemptible": "true"}, "spot"),
    ({"cloud.google.com/gke-provisioning": "spot"}, "spot"),
    ({"kubernetes.azure.com/scalesetpriority": "spot"}, "spot"),
    ({"kubernetes.azure.com/scalesetpriority": "regular"}, "on_demand"),
    ({}, "on_demand"),
])
def test_spot_detection_per_platform(labels, expected):
    assert capacity_type(labels) == expected


def test_aws_node_identity():
    node = {"metadata": {"name": "ip-10-0-1-2.ec2.internal", "labels": {
        "node.kubernetes.io/instance-type": "g5.12xlarge",
        "topology.kubernetes.io/region": "us-west-2",
        "topology.kubernetes.io/zone": "us-west-2b"}},
        "spec": {"providerID": "aws:///us-west-2b/i-0abc"},
        "status": {"capacity": {"cpu": "48", "memory": "192Gi", "nvidia.com/gpu": "4"}}}
    facts = node_facts(node, gpu_model_fallback="NVIDIA A10G")
    assert (facts.provider, facts.instance_type, facts.region, facts.zone) == (
        "aws", "g5.12xlarge", "us-west-2", "us-west-2b")
    assert facts.gpu_model == "NVIDIA A10G"  # no GFD label: NVML's name
    assert facts.capacity["memory"] == 192 * 2**30


def test_legacy_beta_labels_and_gce_provider():
    node = {"metadata": {"name": "gke-n1", "labels": {
        "beta.kubernetes.io/instance-type": "n1-standard-4",
        "failure-domain.beta.kubernetes.io/region": "europe-west1",
        "failure-domain.beta.kubernetes.io/zone": "europe-west1-b"}},
        "spec": {"providerID": "gce://proj/europe-west1-b/gke-n1"}}
    facts = node_facts(node)
    assert (facts.provider, facts.instance_type, facts.region, facts.zone) == (
        "gcp", "n1-standard-4", "europe-west1", "europe-west1-b")
