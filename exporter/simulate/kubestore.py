"""The in-memory object store behind :class:`~exporter.simulate.apiserver.FakeKubeAPI`.

It keeps what an API server's watch cache keeps: objects by resource, one global
resourceVersion counter and a bounded window of watch events, and it turns that history
into the events a *filtered* watcher sees (an object leaving the selector reads as DELETED,
as the real API does). Objects are serialised once per version so that lists and watch
streams are joined from bytes instead of re-encoding ~110 pods per request.
"""

from __future__ import annotations

import bisect
import copy
import datetime
import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["KINDS", "Expired", "KubeStore", "Stored", "parse_selector", "status_body"]

#: resource → (Kind, group/version, namespaced)
KINDS: dict[str, tuple[str, str, bool]] = {
    "pods": ("Pod", "v1", True),
    "nodes": ("Node", "v1", False),
    "replicasets": ("ReplicaSet", "apps/v1", True),
    "deployments": ("Deployment", "apps/v1", True),
    "statefulsets": ("StatefulSet", "apps/v1", True),
    "daemonsets": ("DaemonSet", "apps/v1", True),
    "jobs": ("Job", "batch/v1", True),
    "cronjobs": ("CronJob", "batch/v1", True),
}
_RESOURCE_OF_KIND = {kind: res for res, (kind, _, _) in KINDS.items()}
_REASONS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            410: "Expired", 429: "TooManyRequests", 503: "ServiceUnavailable"}
#: Events kept for watches; older resourceVersions get 410, like the API server's watch cache.
MAX_HISTORY = 20_000

Selector = list[tuple[str, bool, str]]


class Expired(Exception):
    """A watch asked for events the history no longer holds (410 Gone)."""


class Stored:
    """One object version and its encodings: watch/get carry kind and apiVersion, list items not."""

    __slots__ = ("full", "item", "obj")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.full = json.dumps(obj, separators=(",", ":")).encode()
        item = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
        self.item = json.dumps(item, separators=(",", ":")).encode()


def status_body(code: int, message: str) -> dict[str, Any]:
    """A ``Status`` object as the API server returns it with a failed request or watch."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": _REASONS.get(code, "InternalError"), "code": code}


def parse_selector(text: str) -> Selector:
    """Equality selectors: ``a=b``, ``a==b`` and ``a!=b`` terms joined by commas."""
    terms = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        key, op, value = term.partition("!=") if "!=" in term else term.partition("=")
        terms.append((key.strip(), op != "!=", value.lstrip("=").strip()))
    return terms


def matches(obj: dict[str, Any], fields: Selector, labels: Selector) -> bool:
    """Whether ``obj`` passes a field selector (dotted paths, missing = "") and a label one."""
    for path, equal, want in fields:
        value: Any = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if (("" if value is None else str(value)) == want) != equal:
            return False
    have = obj.get("metadata", {}).get("labels") or {}
    return all((have.get(key) == want) == equal for key, equal, want in labels)


def resource_of(kind: str) -> str:
    """The resource ("pods") of a Kind ("Pod"); a resource passes through."""
    return _RESOURCE_OF_KIND.get(kind, kind)


class KubeStore:
    """Objects, resourceVersions and watch history, guarded by one condition variable."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.objects: dict[str, dict[tuple[str, str], Stored]] = {r: {} for r in KINDS}
        self.rv = 1
        self.compacted_rv = 1
        # (rv, resource, type, previous version or None, current version)
        self._history: list[tuple[int, str, str, Stored | None, Stored]] = []
        self._history_rvs: list[int] = []

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Add an object (its ``kind`` picks the collection); returns the stored copy."""
        return self._write(obj, "ADDED")

    def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace an existing object (uid and creationTimestamp carried over if missing)."""
        return self._write(obj, "MODIFIED")

    def delete(self, kind: str, namespace: str, name: str) -> None:
        """Remove an object; ``kind`` is a resource ("pods") or a Kind ("Pod")."""
        resource = resource_of(kind)
        with self.cond:
            old = self.objects[resource].pop((namespace if KINDS[resource][2] else "", name))
            self._record(resource, "DELETED", old, copy.deepcopy(old.obj))

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A copy of the current object, or None."""
        resource = resource_of(kind)
        with self.cond:
            stored = self.objects[resource].get((namespace if KINDS[resource][2] else "", name))
            return copy.deepcopy(stored.obj) if stored else None

    def compact(self) -> None:
        """Forget the watch history: watches from an older resourceVersion get 410 Expired."""
        with self.cond:
            self.compacted_rv = self.rv
            self._history.clear()
            self._history_rvs.clear()
            self.cond.notify_all()

    def events_since(self, pos: int, resource: str,
                     wanted: Callable[[Stored | None], bool]) -> tuple[list[bytes], int]:
        """Watch lines for ``resource`` after RV ``pos`` and the RV reached (lock held)."""
        if pos < self.compacted_rv:
            raise Expired(f"too old resource version: {pos} ({self.compacted_rv})")
        out: list[bytes] = []
        for rv, res, typ, old, cur in self._history[bisect.bisect_right(self._history_rvs, pos):]:
            pos = rv
            if res == resource:
                out.extend(_event(typ, wanted(old), wanted(cur), old, cur, rv))
        return out, pos

    def _write(self, obj: dict[str, Any], event: str) -> dict[str, Any]:
        resource = resource_of(obj["kind"])
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.pop("resourceVersion", None)
        if not KINDS[resource][2]:
            meta.pop("namespace", None)
        key = (meta.setdefault("namespace", "default") if KINDS[resource][2] else "",
               meta["name"])
        with self.cond:
            old = self.objects[resource].get(key)
            if (old is None) != (event == "ADDED"):
                raise KeyError(f"{resource} {key}: " + ("exists" if old else "not found"))
            prior = old.obj["metadata"] if old else {}
            meta.setdefault("uid", prior.get("uid") or str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", prior.get("creationTimestamp") or
                            datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            self._record(resource, event, old, obj)
            return copy.deepcopy(obj)

    def _record(self, resource: str, event: str, old: Stored | None,
                obj: dict[str, Any]) -> None:
        """Bump the RV, stamp it, store the object and append the watch event (lock held)."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        stored = Stored(obj)
        if event != "DELETED":
            self.objects[resource][(obj["metadata"].get("namespace", ""),
                                    obj["metadata"]["name"])] = stored
        self._history.append((self.rv, resource, event, old, stored))
        self._history_rvs.append(self.rv)
        if len(self._history) > MAX_HISTORY:  # a bounded window, like the watch cache
            cut = len(self._history) // 2
            self.compacted_rv = self._history_rvs[cut - 1]
            del self._history[:cut], self._history_rvs[:cut]
        self.cond.notify_all()


def _event(typ: str, was: bool, now: bool, old: Stored | None, cur: Stored,
           rv: int) -> list[bytes]:
    """The line a filtered watcher sees for one change, if any."""
    if typ == "DELETED":
        return [b'{"type":"DELETED","object":%s}\n' % cur.full] if was else []
    if not now:
        if not was or old is None:
            return []
        # Leaving the selector: DELETED with the last matching state at the event's RV.
        gone = {**old.obj, "metadata": {**old.obj["metadata"], "resourceVersion": str(rv)}}
        return [b'{"type":"DELETED","object":%s}\n' % json.dumps(gone).encode()]
    typ = "ADDED" if not was else typ
    return [b'{"type":"%s","object":%s}\n' % (typ.encode(), cur.full)]
