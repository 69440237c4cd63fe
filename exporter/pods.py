"""Raw pod JSON from the API → :class:`~exporter.model.PodInfo`.

Conversion happens once per pod version (the collectors cache it by
resourceVersion), so the scrape path never touches the raw JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from exporter.model import ContainerInfo, PodInfo
from exporter.resources import pod_totals, quantities

__all__ = ["OwnerLookup", "container_id", "pod_info"]

#: (namespace, ownerReferences) → (controller_kind, controller)
OwnerLookup = Callable[[str, list[dict[str, Any]] | None], tuple[str, str]]


def container_id(raw: str | None) -> str:
    """``containerd://abc…`` → ``abc…``; the cgroup names carry the bare ID."""
    if not raw:
        return ""
    return raw.rpartition("://")[2]


def _statuses(status: Mapping[str, Any], key: str) -> dict[str, Mapping[str, Any]]:
    return {s.get("name", ""): s for s in status.get(key) or ()}


def _container(
    spec: Mapping[str, Any], status: Mapping[str, Any] | None, *, init: bool
) -> ContainerInfo:
    resources = spec.get("resources") or {}
    sidecar = init and spec.get("restartPolicy") == "Always"
    return ContainerInfo(
        name=spec.get("name", ""),
        container_id=container_id((status or {}).get("containerID")),
        requests=quantities(resources.get("requests")),
        limits=quantities(resources.get("limits")),
        init=init and not sidecar,
        sidecar=sidecar,
        restart_count=int((status or {}).get("restartCount", 0)),
    )


def pod_info(raw: Mapping[str, Any], owners: OwnerLookup) -> PodInfo:
    """Build the collectors' view of one pod; ValueError on a malformed quantity."""
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    app_status = _statuses(status, "containerStatuses")
    init_status = _statuses(status, "initContainerStatuses")
    app = [_container(c, app_status.get(c.get("name", "")), init=False)
           for c in spec.get("containers") or ()]
    init = [_container(c, init_status.get(c.get("name", "")), init=True)
            for c in spec.get("initContainers") or ()]
    overhead = quantities(spec.get("overhead"))
    requests = pod_totals((c.requests for c in app),
                          ((c.requests, c.sidecar) for c in init), overhead)
    limits = pod_totals((c.limits for c in app), ((c.limits, c.sidecar) for c in init), overhead)
    namespace = meta.get("namespace", "")
    kind, controller = owners(namespace, meta.get("ownerReferences"))
    return PodInfo(
        uid=meta.get("uid", ""),
        namespace=namespace,
        name=meta.get("name", ""),
        node=spec.get("nodeName", ""),
        qos_class=status.get("qosClass", ""),
        phase=status.get("phase", ""),
        controller_kind=kind,
        controller=controller,
        labels=dict(meta.get("labels") or {}),
        containers=(*app, *init),
        effective_requests=requests,
        effective_limits=limits,
    )
