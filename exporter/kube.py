"""The exporter's view of the Kubernetes API: a client, and a list-then-watch cache.

:class:`ObjectWatcher` is a small reflector. It keeps raw JSON dicts rather than the
client's model objects (which are slow to build and several times larger) and drives the
HTTP calls itself instead of using ``kubernetes.watch.Watch``, whose ``deserialize=False``
path breaks on ERROR events. While the API is away the cache keeps serving: the exporter
must go on attributing usage to pods during an API server upgrade.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes.client as k8s
import kubernetes.config as kconfig
import urllib3
import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.watch.watch import iter_resp_lines

from exporter.errors import KubeError

__all__ = ["ObjectWatcher", "api_client_from"]

log = logging.getLogger(__name__)

_REASONS = ("expired", "error", "timeout")


def api_client_from(kubeconfig: str | None = None, host: str | None = None) -> k8s.ApiClient:
    """An API client on a fresh Configuration; the library's global default stays untouched.

    ``host`` (tests, the simulated node) wins; then an explicit kubeconfig; then the pod's
    service account (the DaemonSet case); then the default kubeconfig (a developer laptop).
    """
    if host:
        return k8s.ApiClient(k8s.Configuration(host=host))
    config = k8s.Configuration()
    in_cluster = "skipped: a kubeconfig was given"
    if kubeconfig is None:
        try:
            kconfig.load_incluster_config(client_configuration=config)
            return k8s.ApiClient(config)
        except ConfigException as exc:
            in_cluster = str(exc)
    try:
        kconfig.load_kube_config(config_file=kubeconfig, client_configuration=config)
    except (ConfigException, OSError, ValueError, yaml.YAMLError) as exc:
        raise KubeError(f"no Kubernetes API configuration: in-cluster: {in_cluster}; "
                        f"kubeconfig {kubeconfig or '(default)'}: {exc}") from exc
    return k8s.ApiClient(config)


class _Expired(Exception):
    """The watch's resourceVersion is gone (410): only a relist can resynchronise."""


class ObjectWatcher:
    """List, then watch, one query in a daemon thread, caching the objects by uid.

    ``snapshot()`` is safe from any thread. ``generation`` changes with every cache change
    so callers can keep derived data until it moves. ``restarts`` counts watch restarts by
    reason: ``expired`` (410, relisted), ``error`` (backed off, resumed from the last
    resourceVersion with the cache kept) and ``timeout`` (the server ended the watch).
    """

    def __init__(self, list_fn: Callable[..., Any], *, resource: str,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0,
                 watch_timeout_seconds: float = 300, request_timeout: float = 30.0,
                 sleep: Callable[[float], object] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 jitter: Callable[[], float] = random.random, **list_kwargs: Any) -> None:
        self.resource = resource
        self._list_fn = list_fn
        self._kwargs = list_kwargs
        self._backoff = (backoff_initial, backoff_max)
        self._watch_timeout = max(1, int(watch_timeout_seconds))
        self._request_timeout = request_timeout
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait  # the default wakes up on stop()
        self._clock = clock
        self._jitter = jitter
        self._lock = threading.Lock()
        self._cache: dict[str, dict[str, Any]] = {}
        self._resp: Any = None
        self._synced = threading.Event()
        self._thread: threading.Thread | None = None
        self.resource_version = ""
        #: Restarts by reason; every reason is present from the start, so readers never see
        #: the dict grow under them.
        self.restarts: collections.Counter[str] = collections.Counter(dict.fromkeys(_REASONS, 0))
        #: Failed list/watch calls and malformed events.
        self.errors = 0
        #: Bumped on every change of the cache.
        self.generation = 0

    # --- public -----------------------------------------------------------------------------
    @property
    def synced(self) -> bool:
        """True while a watch is live after a successful list; False while backing off."""
        return self._synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        """Block until synced or ``timeout`` seconds; returns :attr:`synced`."""
        return self._synced.wait(timeout)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """A consistent shallow copy: uid → object. The objects are shared; do not mutate."""
        with self._lock:
            return dict(self._cache)

    def start(self) -> None:
        """Start the list-then-watch thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"kube-watch-{self.resource}",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop promptly by cutting the open response; True when the thread has exited."""
        self._stopping.set()
        with self._lock:
            resp = self._resp
        if resp is not None:
            _interrupt(resp)
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    # --- the loop ---------------------------------------------------------------------------
    def _run(self) -> None:
        """Relist only when the resourceVersion is gone; otherwise resume, so that an API
        server restart costs each node one watch request, not a full list."""
        delay, cap = self._backoff
        last = ""
        while not self._stopping.is_set():
            started = self._clock()
            try:
                if not self.resource_version:
                    self._list()
                self._watch()
                reason = "timeout"
            except (_Expired, ApiException, urllib3.exceptions.HTTPError, OSError, ValueError,
                    KubeError) as exc:
                if self._stopping.is_set():
                    break
                expired = isinstance(exc, _Expired) or getattr(exc, "status", None) == 410
                reason = "expired" if expired else "error"
                self._synced.clear()
                if expired:
                    self.resource_version = ""
                else:
                    self.errors += 1
                log.warning("%s watch restarting (%s): %s", self.resource, reason, _describe(exc))
            if self._stopping.is_set():
                break
            self.restarts[reason] += 1
            elapsed = self._clock() - started
            if elapsed >= cap:  # a long healthy stream resets the backoff
                delay, last = self._backoff[0], ""
            # Errors back off; so do a second 410 in a row (a relist that does not help) and
            # a server ending watches at once (a misbehaving proxy), lest we spin on the API.
            if reason == "error" or reason == last == "expired" or (
                    reason == "timeout" and elapsed < 1.0):
                self._sleep(delay * (0.5 + 0.5 * self._jitter()))
                delay = min(delay * 2, cap)
            last = reason
        self._synced.clear()

    def _list(self) -> None:
        """Replace the cache with a fresh list; objects deleted while away disappear."""
        with self._response(self._list_fn(**self._kwargs, _preload_content=False,
                                          _request_timeout=self._request_timeout)) as resp:
            body = json.loads(resp.data)
        if not isinstance(body, dict) or not _meta(body).get("resourceVersion"):
            raise KubeError(f"{self.resource} list without metadata.resourceVersion")
        kind = str(body.get("kind", "")).removesuffix("List")
        cache = {}
        for item in body.get("items") or []:
            uid = _slim(item)
            if uid:  # list items lack kind/apiVersion; watch objects carry them: align
                cache[uid] = {"kind": kind, "apiVersion": body.get("apiVersion"), **item}
        with self._lock:
            if cache != self._cache:
                self._cache = cache
                self.generation += 1
        self.resource_version = str(_meta(body)["resourceVersion"])

    def _watch(self) -> None:
        """Stream events from :attr:`resource_version` until the server ends the watch."""
        resp = self._list_fn(
            **self._kwargs, watch=True, _preload_content=False,
            resource_version=self.resource_version, allow_watch_bookmarks=True,
            timeout_seconds=self._watch_timeout,
            _request_timeout=(self._request_timeout, self._watch_timeout + self._request_timeout))
        with self._response(resp):
            self._synced.set()
            for line in iter_resp_lines(resp):
                if self._stopping.is_set():
                    return
                if line:
                    self._apply(json.loads(line))

    def _apply(self, event: dict[str, Any]) -> None:
        """Fold one watch event into the cache; bookmarks only move the resourceVersion."""
        obj = event.get("object") if isinstance(event, dict) else None
        if not isinstance(obj, dict):
            raise ValueError(f"watch event without an object: {event!r:.200}")
        kind = event.get("type")
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Expired(obj.get("message", "resource version expired"))
            raise KubeError(f"watch error {obj.get('code')}: {obj.get('message')}")
        rv = _meta(obj).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            uid = _slim(obj)
            if not uid:
                self.errors += 1
                log.warning("%s %s event without metadata.uid ignored", self.resource, kind)
            else:
                with self._lock:
                    if kind == "DELETED":
                        changed = self._cache.pop(uid, None) is not None
                    else:
                        self._cache[uid], changed = obj, True
                    self.generation += changed
        if rv:
            self.resource_version = str(rv)

    @contextlib.contextmanager
    def _response(self, resp: Any) -> Iterator[Any]:
        """Publish ``resp`` so that stop() can cut it, and release it afterwards."""
        with self._lock:
            self._resp = resp
        try:
            if self._stopping.is_set():
                raise OSError("stopping")
            yield resp
        finally:
            with self._lock:
                self._resp = None
            resp.close()
            resp.release_conn()


def _describe(exc: BaseException) -> str:
    """One log line: ApiException's str() spans headers and body."""
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def _meta(obj: Any) -> dict[str, Any]:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return meta if isinstance(meta, dict) else {}


def _slim(obj: Any) -> str:
    """Drop managedFields (half of a pod's JSON, never read); return the uid ("" if none)."""
    meta = _meta(obj)
    meta.pop("managedFields", None)
    return str(meta.get("uid") or "")


def _interrupt(resp: Any) -> None:
    """Wake a thread blocked reading ``resp``: shutting the socket down ends recv() at once."""
    sock = getattr(getattr(resp, "connection", None), "sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
