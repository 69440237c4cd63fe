"""The scraper against real exporters and misbehaving servers; the schedule; self-metrics.

Real exporters run on simulated nodes; the misbehaving targets are real sockets (a
closed port, a listener that never accepts, servers answering 500, gzip, 100 MB or a
byte at a time), so timeouts, interruption and size limits are exercised end to end.
"""

from __future__ import annotations

import gzip
import math
import socket
import subprocess
import threading
import time
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from aggregator.schedule import ScheduleError, Ticker, interval_of, next_boundary
from aggregator.scrape import ScrapeError, Scraper, ScrapeResult
from aggregator.selfmetrics import AggregatorMetrics, MetricsError
from aggregator.targets import Target
from exporter.app import build_exporter
from exporter.config import ExporterConfig
from exporter.kube import api_client_from
from exporter.simulate.node import SimulatedNode

TIMEOUT = 1.5
EXPOSITION = b"# HELP up_test A test.\n# TYPE up_test gauge\nup_test 1\n"
MB = 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        try:
            getattr(self, "serve_" + self.path.strip("/").replace("-", "_"))()
        except OSError:  # the scraper hung up, as it should on a bad target
            self.close_connection = True

    def head(self, status=200, length=None, encoding=None, ctype="text/plain; version=0.0.4"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def serve_error(self):
        body = b"exporter exploded\n"
        self.head(500, len(body), ctype="text/plain")
        self.wfile.write(body)

    def serve_gzip(self):
        assert "gzip" in self.headers["Accept-Encoding"]
        assert "text/plain;version=0.0.4" in self.headers["Accept"]
        body = gzip.compress(EXPOSITION)
        self.head(200, len(body), encoding="gzip")
        self.wfile.write(body)

    def serve_repeated(self):  # 112 kB inflated from about 1 kB
        body = gzip.compress(EXPOSITION * 2000)
        self.head(200, len(body), encoding="gzip")
        self.wfile.write(body)

    def serve_plain(self):
        self.head(200, len(EXPOSITION))
        self.wfile.write(EXPOSITION)

    def serve_huge(self):  # 100 MB, no Content-Length: only the streaming cap can stop it
        block = b"x" * MB
        self.head(200)
        for _ in range(100):
            self.chunk(block)
        self.wfile.write(b"0\r\n\r\n")

    def serve_huge_announced(self):  # refused from the header alone, before any body
        self.head(200, 100 * 1000 * 1000)
        self.wfile.write(b"x" * 1000)

    def serve_trickle(self):  # headers at once, then a byte every 0.2 s for 20 s
        self.head(200)
        for _ in range(100):
            self.chunk(b"#")
            self.wfile.flush()
            time.sleep(0.2)

    def serve_bomb(self):  # 20 kB of gzip inflating to 20 MB
        body = gzip.compress(b"\0" * (20 * MB))
        self.head(200, len(body), encoding="gzip")
        self.wfile.write(body)

    def serve_bad_gzip(self):
        body = gzip.compress(EXPOSITION)[:-12]
        self.head(200, len(body), encoding="gzip")
        self.wfile.write(body)

    def serve_brotli(self):
        self.head(200, 4, encoding="br")
        self.wfile.write(b"\x0b\x01\x80\x03")

    def log_message(self, format, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


@pytest.fixture(scope="module")
def misc():
    server = _Server(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def hanging():
    """A listener that never accepts: the kernel completes the handshake, nobody answers."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/metrics"
    sock.close()


@pytest.fixture(scope="module")
def dead():
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/metrics"


@pytest.fixture(scope="module")
def exporters(tmp_path_factory):
    """Three real exporters, each on its own simulated node: [(node name, URL)]."""
    with ExitStack() as stack:
        out = []
        for seed in (1, 2, 3):
            sim = stack.enter_context(SimulatedNode(str(tmp_path_factory.mktemp(f"n{seed}")),
                                                    seed=seed, pods=5, gpu=False))
            cfg = ExporterConfig(node_name=sim.node_name, cgroup_root=sim.cgroup_root,
                                 proc_root=sim.proc_root, host="127.0.0.1", port=0, gpu=False)
            exporter = build_exporter(cfg, api_client_from(host=sim.api_url), None)
            exporter.start()
            stack.callback(exporter.stop)
            assert exporter.pods.wait_synced(20)
            out.append((sim.node_name, f"http://127.0.0.1:{exporter.server.port}/metrics"))
        yield out


@pytest.fixture
def scraper():
    with Scraper(timeout=TIMEOUT) as s:
        yield s


def test_one_call_scrapes_good_and_bad_targets_each_with_its_reason(
        scraper, exporters, misc, hanging, dead):
    bad = {"dead": dead, "hanging": hanging, "error": f"{misc}/error",
           "huge": f"{misc}/huge", "announced": f"{misc}/huge-announced",
           "trickle": f"{misc}/trickle", "gzip": f"{misc}/gzip"}
    targets = [Target(url, node) for node, url in exporters]
    targets += [Target(url, name) for name, url in bad.items()]
    results = scraper.scrape(targets)

    assert [r.target for r in results] == targets
    by = {r.target.node: r for r in results}
    for node, _ in exporters:
        r = by[node]
        assert (r.ok, r.reason, r.error) == (True, "", None), r.error
        assert r.content_type.startswith("text/plain")
        # the exporter gzips (we asked); what we get is the decoded text
        assert r.body.startswith(b"# HELP ") and f'node="{node}"'.encode() in r.body
    assert (by["gzip"].ok, by["gzip"].body) == (True, EXPOSITION)
    expected = {"dead": "connection", "hanging": "timeout", "error": "http_status",
                "huge": "too_large", "announced": "too_large", "trickle": "timeout"}
    assert {name: by[name].reason for name in expected} == expected
    for name in expected:
        r = by[name]
        assert not r.ok and r.body is None and r.error
    assert "500" in by["error"].error
    for name in ("hanging", "trickle"):  # the deadline holds per target, reads or no reads
        assert TIMEOUT * 0.9 <= by[name].duration < 3 * TIMEOUT


def test_results_carry_start_times_and_the_scraper_is_reusable(scraper, exporters):
    before = time.time()
    first = scraper.scrape([Target(exporters[0][1])])
    second = scraper.scrape([Target(exporters[0][1])])
    assert first[0].ok and second[0].ok
    assert before <= first[0].started <= second[0].started <= time.time()
    assert 0 < first[0].duration < TIMEOUT


@pytest.mark.parametrize(("path", "reason"), [
    ("bomb", "too_large"), ("bad-gzip", "decode"), ("brotli", "decode"), ("plain", "")])
def test_bodies_are_checked_after_decompression(misc, path, reason):
    with Scraper(timeout=5, max_body_bytes=1 * MB) as scraper:
        (r,) = scraper.scrape([Target(f"{misc}/{path}")])
    assert (r.reason, r.ok) == (reason, not reason), r.error


@pytest.mark.parametrize(("path", "size"), [("plain", len(EXPOSITION)),
                                            ("repeated", 2000 * len(EXPOSITION))])
def test_a_body_exactly_at_the_limit_is_accepted(misc, path, size):
    """Plain: the limit applies to Content-Length; gzip: to the inflated size."""
    with Scraper(timeout=5, max_body_bytes=size) as scraper:
        ok, = scraper.scrape([Target(f"{misc}/{path}")])
    with Scraper(timeout=5, max_body_bytes=size - 1) as scraper:
        over, = scraper.scrape([Target(f"{misc}/{path}")])
    assert (ok.ok, len(ok.body), over.reason) == (True, size, "too_large")


def test_queued_targets_get_their_own_full_timeout(misc, hanging):
    """Two workers, three hanging targets: the third starts late and still gets its time."""
    with Scraper(timeout=0.5, max_workers=2) as scraper:
        results = scraper.scrape([Target(hanging)] * 3 + [Target(f"{misc}/plain")])
    assert [r.reason for r in results] == ["timeout"] * 3 + [""]
    assert all(0.45 <= r.duration < 1.5 for r in results[:3])


class _StuckResolver(urllib3.PoolManager):
    """A PoolManager whose name resolution hangs for one host, as a broken DNS does."""

    def __init__(self):
        super().__init__(retries=False)
        self.release = threading.Event()

    def request(self, method, url, *args, **kwargs):
        if "stuck.test" in url:
            self.release.wait(20)
            raise urllib3.exceptions.NameResolutionError("stuck.test", None, OSError("gave up"))
        return super().request(method, url, *args, **kwargs)


def test_an_uninterruptible_fetch_is_abandoned_not_waited_for(misc):
    http = _StuckResolver()
    with Scraper(timeout=0.3, http=http) as scraper:
        stuck, good = scraper.scrape([Target("http://stuck.test:9102/metrics"),
                                      Target(f"{misc}/plain")])
        http.release.set()
    assert (stuck.ok, stuck.reason, good.ok) == (False, "timeout", True)
    assert stuck.duration < 3


def test_unusable_urls_fail_alone_and_nothing_escapes(misc):
    with Scraper(timeout=1) as scraper:
        bad, good = scraper.scrape([Target("http://[not-an-ip/metrics"),
                                    Target(f"{misc}/plain")])
        assert scraper.scrape([]) == []
    assert (bad.reason, good.reason) == ("connection", "")


def test_bad_configuration_is_refused():
    for kwargs in ({"timeout": 0}, {"timeout": 1, "max_workers": 0},
                   {"timeout": 1, "max_body_bytes": 0}):
        with pytest.raises(ScrapeError):
            Scraper(**kwargs)


# --- schedule ---------------------------------------------------------------------------
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
intervals = st.one_of(st.sampled_from([1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 3600.0, 86400.0]),
                      st.floats(min_value=1e-3, max_value=86400.0))


@given(times, intervals)
def test_next_boundary_is_the_first_multiple_after_now(now, interval):
    b = next_boundary(now, interval)
    k = round(b / interval)
    assert b == k * interval  # a multiple, computed as one product
    assert now < b <= now + interval + 4 * math.ulp(b)
    assert (k - 1) * interval <= now  # no multiple is skipped
    assert next_boundary(b, interval) == (k + 1) * interval  # at a boundary: the next one


@given(times, intervals)
def test_interval_of_holds_t_and_agrees_with_next_boundary(t, interval):
    start, end = interval_of(t, interval)
    assert start <= t < end == next_boundary(t, interval)
    assert math.isclose(end - start, interval, rel_tol=1e-9, abs_tol=4 * math.ulp(end))
    assert interval_of(start, interval) == (start, end)


def test_boundaries_are_exact_on_common_intervals():
    assert next_boundary(1_700_000_001.5, 60) == 1_700_000_040.0
    assert next_boundary(1_700_000_040.0, 60) == 1_700_000_100.0
    assert interval_of(1_700_000_040.0, 60) == (1_700_000_040.0, 1_700_000_100.0)
    for bad in (0, -60, math.nan, math.inf):
        with pytest.raises(ScheduleError):
            next_boundary(1.0, bad)
    with pytest.raises(ScheduleError):
        interval_of(math.nan, 60)


class _FakeClock:
    def __init__(self, now):
        self.now, self.waits = now, []

    def __call__(self):
        return self.now

    def wait(self, seconds):
        self.waits.append(seconds)
        self.now += seconds
        return False


def test_ticker_yields_each_window_after_it_ends_and_skips_overruns():
    clock = _FakeClock(1_000_030.0)
    ticker = Ticker(60, clock=clock, wait=clock.wait)
    windows = []
    for window in ticker:
        windows.append((window, clock.now))
        if len(windows) == 2:
            clock.now += 130  # the loop body overran two boundaries
        if len(windows) == 3:
            ticker.stop()
    assert [w for w, _ in windows] == [(1_000_020.0, 1_000_080.0), (1_000_080.0, 1_000_140.0),
                                       (1_000_260.0, 1_000_320.0)]  # 140–260 dropped
    assert all(now == w[1] for w, now in windows)  # yielded at the boundary, not before
    assert ticker.skipped == 2 and clock.waits[0] == 50.0


def test_ticker_stops_while_waiting_and_refuses_bad_intervals():
    stopped = []
    ticker = Ticker(60, clock=lambda: 30.0, wait=lambda s: stopped.append(s) or True)
    assert list(ticker) == [] and stopped == [30.0]
    with pytest.raises(ScheduleError):
        Ticker(0)


def test_ticker_stop_wakes_a_waiting_loop_at_once():
    ticker = Ticker(3600)
    loop = threading.Thread(target=lambda: list(ticker))
    loop.start()
    ticker.stop()
    loop.join(5)
    assert not loop.is_alive()


# --- self-metrics -----------------------------------------------------------------------
def result(url, node, ok, reason="", duration=0.25):
    return ScrapeResult(Target(url, node), ok, b"" if ok else None, "", 0.0, duration,
                        None if ok else "boom", reason)


def value(registry, name, **labels):
    return registry.get_sample_value("kubetally_aggregator_" + name, labels)


def test_self_metrics_follow_scrapes_and_drop_vanished_targets():
    registry = CollectorRegistry()
    metrics = AggregatorMetrics(registry)
    a, b = ("http://a:9102/metrics", "node-a"), ("http://b:9102/metrics", "node-b")
    metrics.record_scrapes([result(*a, True), result(*b, False, "timeout")])
    metrics.set_samples(Target(*a), 1234)
    metrics.record_scrapes([result(*a, True, duration=0.5), result(*b, False, "timeout")])
    ta, tb = {"target": a[0], "node": a[1]}, {"target": b[0], "node": b[1]}
    assert value(registry, "target_up", **ta) == 1 and value(registry, "target_up", **tb) == 0
    assert value(registry, "target_scrape_duration_seconds", **ta) == 0.5
    assert value(registry, "target_samples", **ta) == 1234
    assert value(registry, "target_errors_total", **tb, reason="timeout") == 2
    metrics.count_error(Target(*a), "parse")
    assert value(registry, "target_up", **ta) == 0
    assert value(registry, "target_errors_total", **ta, reason="parse") == 1

    metrics.record_scrapes([result(*a, True)])  # b left discovery
    text = generate_latest(registry).decode()
    assert b[0] not in text and value(registry, "target_up", **ta) == 1
    with pytest.raises(MetricsError):
        metrics.count_error(Target(*a), "cosmic-ray")
    with pytest.raises(MetricsError):
        metrics.set_stage_duration("lunch", 1.0)


def test_discovery_and_interval_metrics():
    registry = CollectorRegistry()
    metrics = AggregatorMetrics(registry)
    metrics.record_discovery("file_sd", 3, 2)
    metrics.record_discovery("file_sd", 4, 5)
    metrics.record_discovery("file_sd", 4, 1)  # the source was recreated: a new baseline
    metrics.record_discovery("file_sd", 4, 2)
    assert value(registry, "discovery_errors_total", source="file_sd") == 6
    assert value(registry, "targets", source="file_sd") == 4
    metrics.set_stage_duration("parse", 0.75)
    metrics.interval_done()
    assert value(registry, "interval_duration_seconds", stage="parse") == 0.75
    assert value(registry, "interval_duration_seconds", stage="store") == 0
    assert value(registry, "intervals_total") == 1


def test_promtool_finds_nothing_to_lint(scraper, exporters, misc, dead):
    registry = CollectorRegistry()
    metrics = AggregatorMetrics(registry)
    results = scraper.scrape([Target(url, node) for node, url in exporters]
                             + [Target(dead, "gone"), Target(f"{misc}/error", "sick")])
    metrics.record_scrapes(results)
    for r in results:
        if r.ok:
            metrics.set_samples(r.target, r.body.count(b"\n"))
    for stage in ("scrape", "parse", "cost", "store"):
        metrics.set_stage_duration(stage, 0.1)
    metrics.interval_done()
    metrics.record_discovery("static", len(results), 0)
    metrics.record_discovery("kubernetes", 0, 3)
    body = generate_latest(registry)
    assert b"_created" not in body
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                           check=False, timeout=30)
    assert check.returncode == 0 and check.stdout == check.stderr == b"", check


def test_stopping_lets_the_interval_in_progress_reach_the_store(tmp_path):
    """Shutdown closes the store right after stop(): an interval cut off there is lost."""
    from aggregator.pricebook import load_price_book
    from aggregator.service import Aggregator
    from aggregator.store import Store
    from aggregator.targets import StaticTargets

    in_step = threading.Event()

    class SlowScraper(Scraper):
        def scrape(self, targets):
            in_step.set()
            time.sleep(0.5)
            return super().scrape(targets)

    agg = Aggregator(StaticTargets([]), SlowScraper(timeout=1.0), Store(tmp_path),
                     load_price_book(None, environ={}), AggregatorMetrics(CollectorRegistry()))
    loop = threading.Thread(target=agg.run, args=(1,))
    loop.start()
    assert in_step.wait(5)
    assert agg.stop(wait=10)  # returns once the step has stored its interval
    agg.store.close()
    loop.join(5)
    assert not loop.is_alive()
    assert Store(tmp_path).last_start() is not None
    assert agg.stop() is True
