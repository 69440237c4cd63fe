"""For ``bench/tsdb_bench.py``: kubetally's samples as OpenMetrics text, promtool, Prometheus.

Kept apart so the benchmark script stays readable. The text is what ``promtool tsdb
create-blocks-from openmetrics`` backfills: one ``# TYPE <family> gauge`` line before a
family's samples, each series' samples contiguous and time-ascending, timestamps in
seconds, ``# EOF`` last. Building ~1.4 billion lines is the slow part of the benchmark,
so they are assembled as numpy byte matrices: each series' label prefix is built once,
values are written with 17 significant digits computed in extended precision (exactly
the stored float64 once parsed: Prometheus must compress the very bits kubetally
keeps), and NaN cells — the store's "no sample" — are skipped.
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = ["ApiServer", "PromServer", "blocks_bytes", "free_port", "get_bytes", "get_json",
           "label_prefixes", "median_of", "promtool_blocks", "write_family"]

_ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def label_prefixes(metric: str, identity: dict[str, np.ndarray]) -> list[bytes]:
    """``metric{col="v",…} `` for each series: built once, reused for every sample line."""
    cols = list(identity)
    rows = zip(*(identity[c].tolist() for c in cols), strict=True)
    return [(metric + "{" + ",".join(f'{c}="{_escape(str(v))}"'
                                     for c, v in zip(cols, row, strict=True)) + "} ").encode()
            for row in rows]


#: 10**k in extended precision for k in [-_POW0, _POW0]: a table, as np.power is slow there.
_POW0 = 120
_POW10 = np.array([np.longdouble(10) ** k for k in range(-_POW0, _POW0 + 1)])


def _digits(n: np.ndarray, width: int) -> np.ndarray:
    """``(…, width)`` ASCII digits of non-negative int64 ``n``, zero-padded."""
    out = np.empty((*n.shape, width), np.uint8)
    for k in range(width - 1, -1, -1):
        out[..., k] = 48 + n % 10
        n = n // 10
    return out


def _decimal(v: np.ndarray) -> np.ndarray:
    """``(…, 23)`` ASCII ``+d.dddddddddddddddde±ddd`` of finite float64 ``v``.

    Seventeen significant digits always parse back to the very same float64. They come
    from ``rint(|v|·10^(16-e))`` in x87 extended precision (64-bit mantissa): its error,
    ~1e-19 relative, is far below the half unit in the 17th digit, so the decimal
    stays within half an ulp of ``v`` — which :func:`write_family` checks by parsing the
    first values of every family back (where ``longdouble`` is only float64 it would not).
    """
    a = np.abs(v).astype(np.longdouble)
    nz = v != 0
    e = np.floor(np.log10(np.where(nz, np.abs(v), 1.0))).astype(np.int64)
    if np.abs(e).max(initial=0) > 90:
        raise ValueError("decimal exponent beyond ±90")
    for _ in range(2):  # log10 may be one off next to a power of ten
        n = np.rint(a * _POW10[_POW0 + 16 - e]).astype(np.int64)
        e = e + (n >= 10**17) - ((n < 10**16) & nz)
    n = np.rint(a * _POW10[_POW0 + 16 - e]).astype(np.int64)
    out = np.empty((*v.shape, 23), np.uint8)
    out[..., 0] = np.where(np.signbit(v), ord("-"), ord("+"))
    d = _digits(n, 17)
    out[..., 1] = d[..., 0]
    out[..., 2] = ord(".")
    out[..., 3:19] = d[..., 1:]
    out[..., 19] = ord("e")
    out[..., 20] = np.where(e < 0, ord("-"), ord("+"))
    out[..., 21:23] = _digits(np.abs(e), 2)
    return out


def _check_round_trip(digits: np.ndarray, values: np.ndarray, metric: str) -> None:
    """Raise unless the decimals written parse back to exactly ``values``."""
    back = np.array([float(bytes(d)) for d in digits.reshape(-1, digits.shape[-1])])
    if not np.array_equal(back, values.reshape(-1)):
        raise AssertionError(f"{metric}: 17-digit decimals do not round-trip on this machine "
                             f"(np.longdouble has {np.finfo(np.longdouble).nmant} bits)")


def write_family(out: BinaryIO, metric: str, prefixes: list[bytes], times: np.ndarray,
                 values: np.ndarray, chunk: int = 1024) -> int:
    """Write one gauge family of ``(time, series)`` ``values``; the number of samples written.

    Lines are assembled as byte matrices: series with equal prefix lengths (nearly all,
    the synthetic identities being fixed-width) get ``prefix + value + " ts\\n"`` for all
    their samples in a few numpy copies, ``chunk`` series at a time to bound memory.
    """
    v = np.ascontiguousarray(values.T)  # series-major: each series' samples contiguous
    present = ~np.isnan(v)
    if not present.any():
        return 0
    if not np.isfinite(v[present]).all():
        raise ValueError(f"{metric}: infinite values have no place in the store")
    stamps = np.array([list(f" {int(t)}\n".encode()) for t in times.tolist()], np.uint8)
    out.write(f"# TYPE {metric} gauge\n".encode())
    lengths = np.array([len(p) for p in prefixes])
    for length in np.unique(lengths).tolist():
        rows = np.nonzero(lengths == length)[0]
        for i in range(0, len(rows), chunk):
            idx = rows[i:i + chunk]
            pre = np.frombuffer(b"".join(prefixes[j] for j in idx.tolist()), np.uint8)
            w = length + 23 + stamps.shape[1]
            lines = np.empty((len(idx), v.shape[1], w), np.uint8)
            lines[..., :length] = pre.reshape(len(idx), 1, length)
            digits = _decimal(np.nan_to_num(v[idx]))
            if i == 0:  # Prometheus must get the very bits kubetally keeps: parse some back
                _check_round_trip(digits[:, :8], np.nan_to_num(v[idx][:, :8]), metric)
            lines[..., length:length + 23] = digits
            lines[..., length + 23:] = stamps
            keep = present[idx]
            out.write((lines if keep.all() else lines[keep]).tobytes())
    return int(present.sum())


def promtool_blocks(path: Path, outdir: Path) -> float:
    """Backfill ``path`` into 2 h blocks under ``outdir``, then delete it; promtool's seconds.

    Debian's promtool 2.42 has no ``--max-block-duration``: it always writes 2 h blocks,
    what a Prometheus head persists before compaction.
    """
    t0 = time.perf_counter()
    try:
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q",
                        str(path), str(outdir)], check=True, stdout=subprocess.DEVNULL)
    finally:
        path.unlink()
    return time.perf_counter() - t0


def blocks_bytes(tsdb: Path) -> tuple[int, int]:
    """(bytes, count) of the blocks (ULID folders: index, chunks, meta, tombstones)."""
    dirs = [d for d in tsdb.iterdir() if d.is_dir() and _ULID.fullmatch(d.name)]
    size = sum(f.stat().st_size for d in dirs for f in d.rglob("*") if f.is_file())
    return size, len(dirs)


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_bytes(url: str, timeout: float = 600) -> bytes:
    """GET ``url``'s whole body (a fresh connection each time, as curl would)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return bytes(resp.read())


def get_json(url: str, timeout: float = 600) -> Any:
    """GET ``url`` and decode its JSON body."""
    return json.loads(get_bytes(url, timeout))


class PromServer:
    """A real ``prometheus`` on a TSDB folder, on a free local port; stopped on exit.

    Retention is 100 years so the backfilled 2024 blocks are neither deleted nor capped
    (compaction then grows blocks up to 31 days, as with any long retention), and the
    sample limit is raised so a week of 60 s samples fits in one query.
    """

    def __init__(self, tsdb: Path) -> None:
        self.tsdb = tsdb
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        fd, self._cfg = tempfile.mkstemp(suffix=".yml")
        with os.fdopen(fd, "w") as f:
            f.write("global:\n  scrape_interval: 1m\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PromServer:
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={self._cfg}",
             f"--storage.tsdb.path={self.tsdb}", "--storage.tsdb.retention.time=100y",
             f"--web.listen-address=127.0.0.1:{self.port}", "--query.max-samples=1000000000",
             "--query.timeout=10m", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("prometheus did not become ready in 120 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            _stop(self.proc)
        os.unlink(self._cfg)

    def metric(self, name: str) -> float:
        """The value of one unlabelled series on the server's own /metrics."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=30) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return float("nan")

    def settle(self, quiet_s: float = 15.0) -> float:
        """Wait for the server's own compaction to finish; seconds waited.

        The TSDB first plans compaction a minute after start, then merges adjacent blocks
        into 6 h, 18 h, 54 h, 162 h … windows one plan at a time; done when the block count
        has not changed for ``quiet_s`` after that first minute.
        """
        t0 = time.monotonic()
        last, since = -1.0, time.monotonic()
        while True:
            n = self.metric("prometheus_tsdb_blocks_loaded")
            busy = any(p.name.endswith(".tmp-for-creation") for p in self.tsdb.iterdir())
            if n != last or busy:
                last, since = n, time.monotonic()
            elif time.monotonic() - t0 > 65 and time.monotonic() - since > quiet_s:
                return time.monotonic() - t0
            time.sleep(1.0)

    def range_url(self, query: str, start: float, end: float, step: int) -> str:
        """The ``/api/v1/query_range`` URL of ``query``."""
        qs = urllib.parse.urlencode({"query": query, "start": start, "end": end, "step": step})
        return f"{self.url}/api/v1/query_range?{qs}"

    @staticmethod
    def range_result(raw: bytes) -> list[dict]:
        """A ``query_range`` answer's result list; raises on an error status."""
        body = json.loads(raw)
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus query failed: {body}")
        return list(body["data"]["result"])


class ApiServer:
    """kubetally's API under gunicorn (``api.server.serve``, one worker) on a free port."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        code = ("from api.config import ApiConfig; from api.server import serve; "
                f"serve(ApiConfig(store={str(store)!r}, host='127.0.0.1', port={self.port}, "
                "workers=1))")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     cwd=Path(__file__).resolve().parent.parent)

    def __enter__(self) -> ApiServer:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kubetally api exited with {self.proc.returncode}")
            try:
                get_json(self.url + "/api/v1/allocation?window=1d", timeout=5)
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("kubetally api did not answer in 60 s")

    def __exit__(self, *exc: object) -> None:
        _stop(self.proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 30 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def median_of(fn: Any, repeats: int) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls after two warm-up calls, and the last answer."""
    fn()
    fn()
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out
