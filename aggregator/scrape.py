"""Scrape every exporter at once, each within its own deadline.

One interval's data must not depend on its slowest node: a hung or dead exporter costs
its own result (``ok=False`` with a ``reason``), never the others' and never an
exception. Each target gets ``timeout`` seconds from the moment its fetch starts:

* connecting and waiting for the headers are bounded by urllib3's timeout, whose read
  part shrinks to what is left of the total;
* the body is bounded by a watchdog in the calling thread that shuts the socket down at
  the deadline (a server trickling a byte per second defeats per-read timeouts);
* a fetch that still has not finished a grace period later (stuck in name resolution,
  which nothing interrupts) is abandoned with ``reason="timeout"``; its thread finishes
  on its own later and its result is dropped.

Bodies are read raw and gunzipped here, with ``max_body_bytes`` applied both to the bytes
on the wire and to the decompressed size, so a gzip bomb is refused like a huge body.
With more targets than ``max_workers`` the extra ones queue; a queued target's deadline
starts when its fetch does, so size ``max_workers`` above the number of targets that may
hang at once.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import http.client
import logging
import queue
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

import urllib3

from aggregator.errors import AggregatorError
from aggregator.targets import Target

__all__ = ["ACCEPT", "REASONS", "ScrapeError", "ScrapeResult", "Scraper"]

log = logging.getLogger(__name__)

#: What Prometheus 2.x sends: OpenMetrics preferred, the 0.0.4 text format accepted.
ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
          "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
REASONS = ("", "timeout", "connection", "http_status", "too_large", "decode")
_CHUNK = 256 * 1024
_GRACE = 1.0  # seconds after an interrupt before a fetch is abandoned
_POLL = 0.1  # the watchdog's longest sleep


class ScrapeError(AggregatorError, ValueError):
    """The scraper is misconfigured (a target's failure is a result, never this)."""


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    """One target's scrape: the decoded body when ``ok``, else the error and its reason."""

    target: Target
    ok: bool
    body: bytes | None
    content_type: str  #: the Content-Type header, "" when absent
    started: float  #: wall-clock time the fetch started, for sample timestamps
    duration: float  #: seconds from start to result
    error: str | None
    reason: str  #: one of :data:`REASONS`; "" when ok


class _Failed(Exception):
    """A failed fetch, with the reason for the result."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _Fetch:
    """What the watchdog knows of one fetch in flight."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.lock = threading.Lock()
        self.started: float | None = None  # monotonic, once a worker picked it up
        self.wall = 0.0
        self.response: urllib3.BaseHTTPResponse | None = None
        self.interrupted = False

    def interrupt(self) -> None:
        """Wake a worker blocked on the body: a shut-down socket reads as EOF at once."""
        with self.lock:
            self.interrupted = True
            response = self.response
        if response is not None:  # errors: already released or closed, nothing to wake
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                response.shutdown()

    def result(self, ok: bool, body: bytes | None = None, content_type: str = "",
               error: str | None = None, reason: str = "") -> ScrapeResult:
        started = self.started if self.started is not None else time.monotonic()
        return ScrapeResult(self.target, ok, body, content_type, self.wall,
                            time.monotonic() - started, error, reason)


class Scraper:
    """Concurrent HTTP scrapes with per-target deadlines; reusable across intervals."""

    def __init__(self, timeout: float, max_workers: int = 32,
                 http: urllib3.PoolManager | None = None,
                 max_body_bytes: int = 64 * 1024 * 1024) -> None:
        if not timeout > 0 or max_workers < 1 or max_body_bytes < 1:
            raise ScrapeError("timeout, max_workers and max_body_bytes must be positive")
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self._own_http = http is None
        # One pool per exporter, kept across intervals so connections can be reused.
        self.http = http or urllib3.PoolManager(num_pools=1024, maxsize=max_workers,
                                               retries=False)
        self._pool = cf.ThreadPoolExecutor(max_workers, thread_name_prefix="scrape")
        self._headers = {"Accept": ACCEPT, "Accept-Encoding": "gzip",
                         "User-Agent": "kubetally-aggregator",
                         "X-Prometheus-Scrape-Timeout-Seconds": f"{timeout:g}"}

    def close(self) -> None:
        """Stop the worker threads (abandoned fetches finish in the background)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._own_http:
            self.http.clear()

    def __enter__(self) -> Scraper:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def scrape(self, targets: Sequence[Target]) -> list[ScrapeResult]:
        """Scrape all ``targets`` concurrently; one result per target, in the same order.

        Finished fetches arrive on a queue and the watchdog looks only at the fetches
        in flight (at most ``max_workers``, plus abandoned ones), so an interval costs
        O(targets): waiting on every pending future after each completion made 5,000
        targets cost 2 ms of CPU each.
        """
        fetches = [_Fetch(t) for t in targets]
        finished: queue.SimpleQueue[tuple[cf.Future[ScrapeResult], _Fetch]] = queue.SimpleQueue()
        running: set[_Fetch] = set()
        guard = threading.Lock()
        for fetch in fetches:
            future = self._pool.submit(self._tracked, fetch, running, guard)
            future.add_done_callback(lambda fu, f=fetch: finished.put((fu, f)))
        results: dict[int, ScrapeResult] = {}
        while len(results) < len(fetches):
            with guard:
                flying = [f for f in running if id(f) not in results]
            try:
                batch = [finished.get(timeout=self._watch(flying, results))]
            except queue.Empty:
                continue
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(finished.get_nowait())
            for future, fetch in batch:
                if id(fetch) not in results:  # else abandoned: too late
                    results[id(fetch)] = _outcome(future, fetch)
        return [results[id(f)] for f in fetches]

    def _tracked(self, fetch: _Fetch, running: set[_Fetch], guard: threading.Lock
                 ) -> ScrapeResult:
        """Worker: :meth:`_run`, listed in ``running`` while it runs (for the watchdog)."""
        with guard:
            running.add(fetch)
        try:
            return self._run(fetch)
        finally:
            with guard:
                running.discard(fetch)

    def _watch(self, flying: list[_Fetch], results: dict[int, ScrapeResult]) -> float:
        """Interrupt overdue fetches, abandon hopeless ones; seconds until the next check."""
        now, wake = time.monotonic(), _POLL
        for fetch in flying:
            if fetch.started is None:
                continue
            deadline = fetch.started + self.timeout
            if now >= deadline + _GRACE:
                log.warning("abandoning the scrape of %s: no result %.1fs after its deadline",
                            fetch.target.url, _GRACE)
                results[id(fetch)] = fetch.result(
                    False, error=f"no response within {self.timeout:g}s", reason="timeout")
            elif now >= deadline:
                if not fetch.interrupted:
                    fetch.interrupt()
                wake = min(wake, deadline + _GRACE - now)
            else:
                wake = min(wake, deadline - now)
        return max(wake, 0.001)

    def _run(self, fetch: _Fetch) -> ScrapeResult:
        """Worker: fetch one target; every failure becomes a result."""
        fetch.wall, fetch.started = time.time(), time.monotonic()
        response: urllib3.BaseHTTPResponse | None = None
        try:
            response = self.http.request(
                "GET", fetch.target.url, headers=self._headers, preload_content=False,
                decode_content=False, redirect=False, retries=False,
                timeout=urllib3.Timeout(total=self.timeout))
            with fetch.lock:
                fetch.response = response
                cut = fetch.interrupted
            if cut:
                raise _Failed("timeout", f"no complete response within {self.timeout:g}s")
            content_type = response.headers.get("Content-Type", "")
            body = self._body(fetch, response)
            return fetch.result(True, body, content_type)
        except _Failed as exc:
            return fetch.result(False, error=str(exc), reason=exc.reason)
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError,
                ValueError) as exc:
            # NewConnectionError (refused, unresolvable) derives from ConnectTimeoutError.
            refused = isinstance(exc, urllib3.exceptions.NewConnectionError)
            late = time.monotonic() - (fetch.started or 0.0) >= self.timeout * 0.99
            if late or fetch.interrupted or (not refused and isinstance(
                    exc, urllib3.exceptions.TimeoutError | TimeoutError)):
                return fetch.result(False, error=f"timed out after {self.timeout:g}s: {exc}",
                                    reason="timeout")
            return fetch.result(False, error=f"{type(exc).__name__}: {exc}",
                                reason="connection")
        finally:
            if response is not None:
                response.release_conn()  # after a full read the connection is reusable

    def _body(self, fetch: _Fetch, response: urllib3.BaseHTTPResponse) -> bytes:
        """The checked, decoded body; raises :class:`_Failed` with the reason otherwise."""
        limit = self.max_body_bytes
        if response.status != 200:
            response.close()  # do not read an error page we will not use
            raise _Failed("http_status", f"HTTP {response.status} {response.reason or ''}"
                          .rstrip())
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            response.close()
            raise _Failed("too_large", f"Content-Length {length} exceeds {limit} bytes")
        raw = bytearray()
        while chunk := response.read(_CHUNK, decode_content=False):
            raw += chunk
            if len(raw) > limit:
                response.close()
                raise _Failed("too_large", f"body exceeds {limit} bytes")
        if fetch.interrupted:  # the EOF may be our own shutdown, not the end of the body
            raise _Failed("timeout", f"body incomplete after {self.timeout:g}s")
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            return _gunzip(bytes(raw), limit)
        if encoding not in ("identity", ""):
            raise _Failed("decode", f"unsupported Content-Encoding {encoding!r}")
        return bytes(raw)


def _outcome(future: cf.Future[ScrapeResult], fetch: _Fetch) -> ScrapeResult:
    """A finished worker's result; a worker's own exception is a bug, logged loudly, and
    still costs only its target's result."""
    if future.cancelled():
        return fetch.result(False, error="the scraper was closed", reason="connection")
    exc = future.exception()
    if exc is None:
        return future.result()
    log.error("scraping %s failed unexpectedly", fetch.target.url, exc_info=exc)
    return fetch.result(False, error=f"internal error: {exc!r}", reason="connection")


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress every gzip member of ``data``, refusing to produce over ``limit`` bytes."""
    out = bytearray()
    try:
        while data:
            gz = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += gz.decompress(data, limit - len(out) + 1)
            if len(out) > limit:
                raise _Failed("too_large", f"gzip body inflates beyond {limit} bytes")
            if not gz.eof:
                raise _Failed("decode", "truncated gzip body")
            data = gz.unused_data
    except zlib.error as exc:
        raise _Failed("decode", f"bad gzip body: {exc}") from exc
    return bytes(out)

