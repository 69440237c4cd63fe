"""What a Node object says about its price: provider, instance type, place, spot or not.

Spot detection reads the labels each platform sets on its nodes, so no cloud
API call is needed: EKS managed node groups, Karpenter, GKE (spot and the
older preemptible), AKS scale sets; ``capacity_type`` is ``spot`` or
``on_demand``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.resources import is_gpu_resource, quantities

__all__ = ["NodeFacts", "capacity_type", "node_facts"]

_INSTANCE_TYPE = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")
_REGION = ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")
_ZONE = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
#: label → values meaning spot (compared lower-cased)
_SPOT_LABELS = {
    "eks.amazonaws.com/capacitytype": ("spot",),
    "karpenter.sh/capacity-type": ("spot",),
    "cloud.google.com/gke-spot": ("true",),
    "cloud.google.com/gke-preemptible": ("true",),
    "cloud.google.com/gke-provisioning": ("spot", "preemptible"),
    "kubernetes.azure.com/scalesetpriority": ("spot",),
}
_PROVIDERS = {"aws": "aws", "gce": "gcp", "azure": "azure", "kind": "kind"}


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """A node's pricing identity and its capacity, in base units."""

    name: str
    provider: str
    instance_type: str
    region: str
    zone: str
    capacity_type: str
    gpu_model: str
    gpu_sharing: str
    capacity: Mapping[str, float]
    allocatable: Mapping[str, float]

    def gpu_resources(self) -> list[str]:
        """GPU resource names the node advertises."""
        return sorted(r for r in {*self.capacity, *self.allocatable} if is_gpu_resource(r))


def _first(labels: Mapping[str, str], keys: tuple[str, ...]) -> str:
    for key in keys:
        if labels.get(key):
            return labels[key]
    return ""


def capacity_type(labels: Mapping[str, str]) -> str:
    """``spot`` when any platform's spot label says so, else ``on_demand``."""
    lowered = {k.lower(): str(v).lower() for k, v in labels.items()}
    for key, spot_values in _SPOT_LABELS.items():
        if lowered.get(key) in spot_values:
            return "spot"
    return "on_demand"


def node_facts(raw: Mapping[str, Any], gpu_model_fallback: str = "") -> NodeFacts:
    """Read a Node; ``gpu_model_fallback`` (from NVML) is used when GFD labels are absent."""
    meta = raw.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    provider_id = (raw.get("spec") or {}).get("providerID", "")
    scheme = provider_id.partition("://")[0] if "://" in provider_id else ""
    status = raw.get("status") or {}
    return NodeFacts(
        name=meta.get("name", ""),
        provider=_PROVIDERS.get(scheme, scheme),
        instance_type=_first(labels, _INSTANCE_TYPE),
        region=_first(labels, _REGION),
        zone=_first(labels, _ZONE),
        capacity_type=capacity_type(labels),
        gpu_model=labels.get("nvidia.com/gpu.product", "") or gpu_model_fallback,
        gpu_sharing=labels.get("nvidia.com/gpu.sharing-strategy", ""),
        capacity=quantities(status.get("capacity")),
        allocatable=quantities(status.get("allocatable")),
    )
