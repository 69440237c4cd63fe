"""Which workload a pod belongs to, for cost attribution.

Pods point at their direct owner, but the owner worth billing is one hop further up:
a Deployment's ReplicaSets change name on every rollout and a CronJob's Jobs on every run,
so costs grouped by ReplicaSet or Job would scatter over short-lived names. Resolving the
hop costs one GET per ReplicaSet or Job, so results are cached; the API being away or
forbidding the read (RBAC) degrades to the direct owner rather than to no owner at all.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import urllib3
from kubernetes.client.exceptions import ApiException

__all__ = ["AppsReader", "BatchReader", "OwnerResolver", "controller_ref"]

log = logging.getLogger(__name__)

#: Prune expired entries once the cache holds this many (a node sees a few hundred owners).
_PRUNE_AT = 4096


def controller_ref(refs: Sequence[Mapping[str, Any]] | None) -> Mapping[str, Any] | None:
    """The ownerReference with ``controller: true``, else the first one, else None."""
    refs = [r for r in refs or () if isinstance(r, Mapping)]
    return next((r for r in refs if r.get("controller")), refs[0] if refs else None)


class AppsReader(Protocol):
    """Reads ReplicaSets: ``AppsV1Api`` or :class:`exporter.kubeapi.LeanKubeAPI`."""

    def read_namespaced_replica_set(self, name: str, namespace: str, **kwargs: Any) -> Any: ...


class BatchReader(Protocol):
    """Reads Jobs: ``BatchV1Api`` or :class:`exporter.kubeapi.LeanKubeAPI`."""

    def read_namespaced_job(self, name: str, namespace: str, **kwargs: Any) -> Any: ...


class OwnerResolver:
    """Maps a pod's ownerReferences to (controller_kind, controller), with a TTL cache.

    A ReplicaSet or Job is read and its own controller followed one hop (normally a
    Deployment or CronJob; an Argo Rollout or a JobSet just as well). Every other owner
    kind (StatefulSet, DaemonSet, Node for static pods, custom kinds) is the answer as is.
    Thread-safe: scrapes may resolve concurrently (a duplicate GET at worst).
    """

    def __init__(self, apps: AppsReader, batch: BatchReader, ttl_seconds: float = 600,
                 clock: Callable[[], float] = time.monotonic, *,
                 failure_ttl_seconds: float = 30.0, request_timeout: float = 5.0) -> None:
        self._readers: dict[str, Callable[..., Any]] = {
            "ReplicaSet": apps.read_namespaced_replica_set,
            "Job": batch.read_namespaced_job,
        }
        self._ttl = ttl_seconds
        self._failure_ttl = failure_ttl_seconds
        self._timeout = request_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, str], tuple[tuple[str, str], float]] = {}
        #: Lookups that failed and fell back to the direct owner.
        self.errors = 0

    def resolve(self, namespace: str,
                owner_references: Sequence[Mapping[str, Any]] | None) -> tuple[str, str]:
        """(controller_kind, controller) of a pod; ("", "") for a pod without owner."""
        ref = controller_ref(owner_references)
        if ref is None:
            return "", ""
        kind, name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        read = self._readers.get(kind)
        if read is None or not name:
            return kind, name
        key = (namespace, kind, name)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[1] > self._clock():
            return hit[0]
        result, ttl = self._lookup(read, namespace, kind, name)
        with self._lock:
            now = self._clock()
            self._cache[key] = (result, now + ttl)
            if len(self._cache) > _PRUNE_AT:
                self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
        return result

    def _lookup(self, read: Callable[..., Any], namespace: str, kind: str,
                name: str) -> tuple[tuple[str, str], float]:
        """The owner's controller and how long to trust the answer."""
        try:
            resp = read(name, namespace, _preload_content=False,
                        _request_timeout=self._timeout)
            try:
                body = json.loads(resp.data)
            finally:
                resp.release_conn()
            if not isinstance(body, dict):
                raise ValueError(f"{kind} {namespace}/{name}: not a JSON object")
        except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            with self._lock:
                self.errors += 1
            reason = f"HTTP {exc.status}" if isinstance(exc, ApiException) else str(exc)
            log.warning("owner of %s %s/%s unresolved, using it as is: %s",
                        kind, namespace, name, reason)
            return (kind, name), self._failure_ttl
        parent = controller_ref((body.get("metadata") or {}).get("ownerReferences"))
        if parent is not None and parent.get("kind") and parent.get("name"):
            return (str(parent["kind"]), str(parent["name"])), self._ttl
        return (kind, name), self._ttl
