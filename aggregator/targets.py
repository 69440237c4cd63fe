"""Where the exporters are: scrape targets from flags, a file_sd file or the Kubernetes API.

Every source answers ``targets()`` with a list sorted and deduplicated by URL (the first
wins): a URL scraped twice would count its node's cost twice. In steady state discovery
never raises: a source keeps its last good list and counts ``errors``, because losing
every target over a half-written file or an API server upgrade would blank the cost data.
Misconfiguration (a bad static URL, a bad shard spec) raises :class:`TargetError` up front.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml
from kubernetes.client import ApiClient

from aggregator.errors import AggregatorError
from exporter.kube import ObjectWatcher
from exporter.kubeapi import LeanKubeAPI

__all__ = ["FileSDTargets", "KubeTargets", "ShardFilter", "StaticTargets", "Target",
           "TargetError", "TargetSource", "fnv1a_64", "jump_hash", "parse_shard", "shard_of"]

log = logging.getLogger(__name__)

_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$")


class TargetError(AggregatorError):
    """A target, target file or shard specification is invalid."""


@dataclass(frozen=True)
class Target:
    """One exporter to scrape. Equality and hashing use ``url`` and ``node`` only."""

    url: str  #: full URL of the metrics endpoint
    node: str = ""  #: the node it reports on; "" when the source does not know
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)


class TargetSource(Protocol):
    """What the scrape loop needs from a source; ``name`` is its ``source`` metric label."""

    name: str

    @property
    def errors(self) -> int: ...  # discovery failures so far (cumulative)

    def targets(self) -> list[Target]: ...


def _url(address: str, scheme: str = "http", path: str = "/metrics") -> str:
    """``host:port`` (with ``scheme`` and ``path``) or a full http(s) URL, checked."""
    address = address.strip()
    if "://" in address:
        scheme, _, rest = address.partition("://")
        hostport, slash, tail = rest.partition("/")
        path = slash + tail if tail else path  # "http://h:1" and "http://h:1/" mean /metrics
    else:
        hostport = address
    if scheme not in ("http", "https"):
        raise TargetError(f"target {address!r}: scheme must be http or https, not {scheme!r}")
    match = _HOST_PORT.match(hostport)
    if not match or not 0 < int(match.group(1)) < 65536:
        raise TargetError(f"target {address!r}: expected host:port (a port from 1 to 65535)")
    if not path.startswith("/") or any(c.isspace() for c in path):
        raise TargetError(f"target {address!r}: bad metrics path {path!r}")
    return f"{scheme}://{hostport}{path}"


def _unique(targets: Iterable[Target]) -> list[Target]:
    """Sorted by URL; the first target of each URL wins."""
    first = {t.url: t for t in reversed(list(targets))}
    return [first[url] for url in sorted(first)]


class StaticTargets:
    """A fixed list from the command line: ``host:port`` or full URLs, validated up front."""

    name = "static"

    def __init__(self, urls: Sequence[str]) -> None:
        if isinstance(urls, str):  # a lone string would be split into characters
            raise TargetError("StaticTargets takes a sequence of URLs, not one string")
        self._targets = _unique(Target(_url(u)) for u in urls)
        self.errors = 0

    def targets(self) -> list[Target]:
        """The configured targets."""
        return list(self._targets)


class FileSDTargets:
    """Prometheus ``file_sd`` JSON or YAML, re-read when its inode, size or mtime changes.

    ``__scheme__``, ``__metrics_path__`` and ``node`` (→ :attr:`Target.node`) are honoured,
    other ``__`` labels dropped. A missing or malformed file keeps the last good list;
    each bad version counts one error, with the reason in :attr:`last_error` and the log.
    """

    name = "file_sd"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        if not self.path.endswith((".json", ".yml", ".yaml")):
            raise TargetError(f"file_sd {self.path}: the name must end in .json, .yml or .yaml")
        self.errors = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._seen: tuple[int, ...] | None = None
        self._targets: list[Target] = []

    def targets(self) -> list[Target]:
        """The current targets, reloading the file first if it changed."""
        with self._lock:
            try:
                st = os.stat(self.path)
                sig: tuple[int, ...] = (st.st_ino, st.st_size, st.st_mtime_ns)
            except OSError:
                sig = ()  # gone: reading it below says why
            if sig != self._seen:
                self._seen = sig
                try:
                    self._targets, self.last_error = self._load(), None
                except (OSError, ValueError, yaml.YAMLError, TargetError) as exc:
                    self.errors += 1
                    self.last_error = str(exc)
                    log.warning("file_sd %s: %s; keeping the last %d targets", self.path, exc,
                                len(self._targets))
            return list(self._targets)

    def _load(self) -> list[Target]:
        with open(self.path, "rb") as f:
            raw = f.read()
        doc = json.loads(raw) if self.path.endswith(".json") else yaml.safe_load(raw)
        doc = [] if doc is None else doc  # an empty YAML file: no targets, as in Prometheus
        if not isinstance(doc, list):
            raise TargetError("expected a list of {targets: [...], labels: {...}} groups")
        out = []
        for i, group in enumerate(doc):
            addrs = group.get("targets") if isinstance(group, dict) else None
            labels = (group.get("labels") or {}) if isinstance(group, dict) else None
            if not isinstance(addrs, list) or not isinstance(labels, dict) or not all(
                    isinstance(v, str) for v in [*addrs, *labels, *labels.values()]):
                raise TargetError(f"group {i}: targets must be a list of strings and labels "
                                  "a map of strings")
            scheme = labels.get("__scheme__", "http")
            path = labels.get("__metrics_path__", "/metrics")
            kept = {k: v for k, v in labels.items() if not k.startswith("__") and k != "node"}
            out += [Target(_url(a, scheme, path), labels.get("node", ""), kept) for a in addrs]
        return _unique(out)


class _PodLister(LeanKubeAPI):
    """LeanKubeAPI plus the namespaced pod list, which a namespaced Role permits."""

    def list_namespaced_pod(self, namespace: str, **kwargs: Any) -> Any:
        """GET /api/v1/namespaces/{namespace}/pods (list, or watch with ``watch=True``)."""
        return self._get("/api/v1/namespaces/{namespace}/pods", {"namespace": namespace},
                         kwargs)


class KubeTargets:
    """The exporter DaemonSet's Running and Ready pods, watched through the API.

    ``api`` is an ``ApiClient`` (e.g. ``exporter.kube.api_client_from()``), a
    ``LeanKubeAPI`` or a ``CoreV1Api``. With ``namespace`` the namespaced list is used,
    so a Role in that namespace is enough. Call :meth:`start` (or use ``with``); while
    the API is away the last known pods keep being scraped.
    """

    name = "kubernetes"

    def __init__(self, api: Any, namespace: str | None, label_selector: str, port: int = 9102,
                 scheme: str = "http", path: str = "/metrics", *,
                 watch_timeout_seconds: float = 300) -> None:
        api = api.api_client if isinstance(api, LeanKubeAPI) else api
        lister = _PodLister(api) if isinstance(api, ApiClient) else api
        _url(f"127.0.0.1:{port}", scheme, path)  # fail now on a bad port, scheme or path
        self._where = (port, scheme, path)
        where = {"namespace": namespace} if namespace else {}
        self.watcher = ObjectWatcher(
            lister.list_namespaced_pod if namespace else lister.list_pod_for_all_namespaces,
            resource="pods", label_selector=label_selector,
            watch_timeout_seconds=watch_timeout_seconds, **where)
        self._cached: tuple[int, list[Target]] = (-1, [])

    @property
    def errors(self) -> int:
        """Failed list/watch calls so far."""
        return self.watcher.errors

    def start(self) -> KubeTargets:
        """Start watching (idempotent); returns self."""
        self.watcher.start()
        return self

    def stop(self) -> None:
        """Stop the watch thread."""
        self.watcher.stop()

    def wait_synced(self, timeout: float) -> bool:
        """Block until the first list has arrived (or ``timeout``); True when synced."""
        return self.watcher.wait_synced(timeout)

    __enter__ = start

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def targets(self) -> list[Target]:
        """One target per ready exporter pod; rebuilt only when the cache changed."""
        generation = self.watcher.generation
        if generation != self._cached[0]:
            port, scheme, path = self._where
            found = [Target(_url(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}", scheme,
                                 path), node, {"namespace": ns, "pod": name})
                     for ns, name, ip, node in map(_ready_pod, self.watcher.snapshot().values())
                     if ip]
            self._cached = (generation, _unique(found))
        return list(self._cached[1])


def _ready_pod(pod: dict[str, Any]) -> tuple[str, str, str, str]:
    """(namespace, name, podIP, nodeName); podIP is "" unless Running, addressed and Ready."""
    meta, spec, status = (pod.get(k) or {} for k in ("metadata", "spec", "status"))
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [] if isinstance(c, dict))
    ip = str(status.get("podIP") or "") if status.get("phase") == "Running" and ready else ""
    return (str(meta.get("namespace", "")), str(meta.get("name", "")), ip,
            str(spec.get("nodeName") or ""))


def fnv1a_64(data: bytes) -> int:
    """64-bit FNV-1a: offset basis 0xcbf29ce484222325, prime 0x100000001b3."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def shard_of(target: Target, n: int) -> int:
    """``jump(fnv1a_64(url as UTF-8), n)``: stable everywhere, unlike ``hash()``.

    Jump consistent hashing (Lamping & Veach, 2014) rather than ``% n`` so that growing
    from n to n+1 shards moves only a 1/(n+1) share of the targets (all to the new
    shard), and each aggregator keeps most of its per-target state.
    """
    if n < 1:
        raise TargetError(f"shard count must be at least 1, not {n}")
    return jump_hash(fnv1a_64(target.url.encode("utf-8")), n)


def jump_hash(key: int, buckets: int) -> int:
    """Jump consistent hash of a 64-bit ``key`` into ``range(buckets)``, as published."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → (i, n), with 0 ≤ i < n; anything else raises :class:`TargetError`."""
    match = re.fullmatch(r"([0-9]+)/([0-9]+)", text.strip())
    if not match:
        raise TargetError(f"shard {text!r}: expected INDEX/COUNT, e.g. 0/3")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise TargetError(f"shard {text!r}: the count must be at least 1")
    if index >= count:
        raise TargetError(f"shard {text!r}: the index counts from 0, so it must be < {count}")
    return index, count


class ShardFilter:
    """This aggregator's share of another source's targets (see :func:`shard_of`)."""

    def __init__(self, source: TargetSource, index: int, count: int) -> None:
        parse_shard(f"{index}/{count}")  # the same checks and messages
        self.source, self.index, self.count = source, index, count
        self.name = source.name

    @property
    def errors(self) -> int:
        """The wrapped source's errors."""
        return self.source.errors

    def targets(self) -> list[Target]:
        """The wrapped source's targets that fall in this shard."""
        return [t for t in self.source.targets() if shard_of(t, self.count) == self.index]
