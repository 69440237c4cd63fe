"""This node's pods, indexed for the scrape path.

The pod watcher holds raw JSON; converting it (quantities, owner lookups)
costs far more than a scrape should, so the index converts each pod once per
resourceVersion and rebuilds its lookup tables only when the watcher's cache
changed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from exporter.model import ContainerInfo, PodInfo
from exporter.pods import OwnerLookup, pod_info

__all__ = ["PodIndex", "PodSnapshot", "PodStore"]

log = logging.getLogger(__name__)

_CONFIG_HASH = "kubernetes.io/config.hash"


class PodStore(Protocol):
    """What the index needs of a watcher (``exporter.kube.ObjectWatcher`` is one)."""

    generation: int

    def snapshot(self) -> dict[str, dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class PodSnapshot:
    """Lookup tables of one version of the pod cache."""

    pods: Mapping[str, PodInfo] = field(default_factory=dict)
    #: (pod uid, container id) → (pod, container), for matching cgroups and GPU processes.
    containers: Mapping[tuple[str, str], tuple[PodInfo, ContainerInfo]] = field(
        default_factory=dict)


class PodIndex:
    """Converts and indexes the watcher's pods lazily, once per cache generation."""

    def __init__(self, store: PodStore, owners: OwnerLookup,
                 on_error: Callable[[str], None] | None = None) -> None:
        self._store = store
        self._owners = owners
        self._on_error = on_error or (lambda _msg: None)
        self._lock = threading.Lock()
        self._generation = -1
        self._converted: dict[tuple[str, str], PodInfo] = {}
        self._snapshot = PodSnapshot()

    def current(self) -> PodSnapshot:
        """The index of the watcher's latest cache (rebuilt only when it changed)."""
        with self._lock:
            generation = self._store.generation
            if generation != self._generation:
                self._snapshot = self._rebuild(self._store.snapshot())
                self._generation = generation
            return self._snapshot

    def _rebuild(self, raw_pods: Mapping[str, Mapping[str, Any]]) -> PodSnapshot:
        converted: dict[tuple[str, str], PodInfo] = {}
        pods: dict[str, PodInfo] = {}
        containers: dict[tuple[str, str], tuple[PodInfo, ContainerInfo]] = {}
        for uid, raw in raw_pods.items():
            version = (uid, str((raw.get("metadata") or {}).get("resourceVersion", "")))
            info = self._converted.get(version)
            if info is None:
                try:
                    info = pod_info(raw, self._owners)
                except (ValueError, TypeError) as exc:
                    self._on_error(f"pod {uid}: {exc}")
                    log.warning("skipping malformed pod %s: %s", uid, exc)
                    continue
            converted[version] = info
            pods[uid] = info
            # A static pod's cgroup is named after the kubelet's config hash, not the uid
            # of its mirror pod in the API.
            config_hash = ((raw.get("metadata") or {}).get("annotations") or {}).get(
                _CONFIG_HASH, "")
            for container in info.containers:
                if container.container_id:
                    containers[(uid, container.container_id)] = (info, container)
                    if config_hash:
                        containers[(config_hash, container.container_id)] = (info, container)
        self._converted = converted
        return PodSnapshot(pods=pods, containers=containers)
