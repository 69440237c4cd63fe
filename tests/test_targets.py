"""Target discovery: static lists, file_sd files, the Kubernetes API, and sharding.

KubeTargets runs against FakeKubeAPI with the real kubernetes client, so the label
selector, the namespaced path and the watch events are the API's, not a mock's.
"""

from __future__ import annotations

import json
import os

import pytest
import yaml
from kubefakes import make_pod, wait_until
from kubernetes import client as k8s

from aggregator.targets import (
    FileSDTargets,
    KubeTargets,
    ShardFilter,
    StaticTargets,
    Target,
    TargetError,
    fnv1a_64,
    jump_hash,
    parse_shard,
    shard_of,
)
from exporter.kube import api_client_from
from exporter.kubeapi import LeanKubeAPI
from exporter.simulate.apiserver import FakeKubeAPI

SELECTOR = "app.kubernetes.io/name=kubetally-exporter"


def urls(source):
    return [t.url for t in source.targets()]


# --- static -----------------------------------------------------------------------------
def test_static_targets_accept_host_port_and_urls_sorted_and_deduplicated():
    source = StaticTargets(["node-b.example:9102", "10.0.0.7:9102", "[fd00::1]:9102",
                            "https://node-c.example:8443/custom/metrics?x=1",
                            "http://node-a.example:9102", " 10.0.0.7:9102 "])
    assert urls(source) == [
        "http://10.0.0.7:9102/metrics", "http://[fd00::1]:9102/metrics",
        "http://node-a.example:9102/metrics", "http://node-b.example:9102/metrics",
        "https://node-c.example:8443/custom/metrics?x=1"]
    assert all(t.node == "" and dict(t.labels) == {} for t in source.targets())
    assert source.errors == 0 and source.name == "static"


@pytest.mark.parametrize(("bad", "says"), [
    ("", "host:port"), ("node-a", "host:port"), ("node-a:0", "host:port"),
    ("node-a:65536", "host:port"), ("node-a:http", "host:port"), ("no de:9102", "host:port"),
    ("ftp://node-a:21/metrics", "scheme"), ("http://:9102/metrics", "host:port"),
    ("http://node-a/metrics", "host:port"), ("http://node-a:9102/has space", "path")])
def test_static_targets_refuse_bad_entries_at_construction(bad, says):
    with pytest.raises(TargetError, match=says) as info:
        StaticTargets(["10.0.0.1:9102", bad])
    assert repr(bad.strip()) in str(info.value)


def test_static_targets_refuse_a_lone_string():
    with pytest.raises(TargetError, match="sequence"):
        StaticTargets("10.0.0.1:9102")


def test_targets_compare_and_hash_by_url_and_node():
    a = Target("http://a:1/metrics", "n", {"x": "1"})
    assert a == Target("http://a:1/metrics", "n", {"x": "1"})
    assert len({a, Target("http://a:1/metrics", "n", {"x": "1"})}) == 1


# --- file_sd ----------------------------------------------------------------------------
def write(path, groups, fmt):
    """Write like a config-management tool would: a new file renamed over the old one."""
    text = json.dumps(groups) if fmt == "json" else yaml.safe_dump(groups)
    write_text(path, text)


def write_text(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


GROUPS = [
    {"targets": ["10.0.0.2:9102", "10.0.0.1:9102"], "labels": {"node": "node-1", "zone": "a"}},
    {"targets": ["10.0.1.1:9443"],
     "labels": {"__scheme__": "https", "__metrics_path__": "/x/metrics", "__meta_foo": "dropped",
                "node": "node-2"}},
    {"targets": ["10.0.2.1:9102"]},
]


@pytest.fixture(params=["json", "yaml"])
def fmt(request):
    return request.param


def test_file_sd_reads_groups_and_honours_scheme_path_and_node(tmp_path, fmt):
    path = tmp_path / f"exporters.{fmt}"
    write(path, GROUPS, fmt)
    got = FileSDTargets(path).targets()
    assert [(t.url, t.node, dict(t.labels)) for t in got] == [
        ("http://10.0.0.1:9102/metrics", "node-1", {"zone": "a"}),
        ("http://10.0.0.2:9102/metrics", "node-1", {"zone": "a"}),
        ("http://10.0.2.1:9102/metrics", "", {}),
        ("https://10.0.1.1:9443/x/metrics", "node-2", {}),
    ]


def test_file_sd_reloads_on_change_and_keeps_the_last_good_list(tmp_path, fmt, caplog):
    path = tmp_path / f"exporters.{fmt}"
    write(path, GROUPS[:1], fmt)
    source = FileSDTargets(path)
    assert len(source.targets()) == 2 and source.errors == 0

    write(path, GROUPS, fmt)
    assert len(source.targets()) == 4

    write_text(path, '[{"targets": ["10.0.0.1:9102"' if fmt == "json" else "- targets: [a:1\n")
    assert len(source.targets()) == 4  # a half-written file: the last good list stays
    assert source.errors == 1 and source.last_error
    assert len(source.targets()) == 4 and source.errors == 1  # one error per bad version
    assert "keeping the last 4 targets" in caplog.text

    write(path, [{"targets": ["10.0.0.1:http"]}], fmt)  # parses, but a bad target
    assert len(source.targets()) == 4 and source.errors == 2 and "host:port" in source.last_error

    with open(path, "w") as f:  # rewritten in place, a different size
        f.write(json.dumps(GROUPS[2:]) if fmt == "json" else yaml.safe_dump(GROUPS[2:]))
    assert urls(source) == ["http://10.0.2.1:9102/metrics"] and source.last_error is None

    os.unlink(path)
    assert urls(source) == ["http://10.0.2.1:9102/metrics"]
    assert source.errors == 3 and "No such file" in source.last_error
    write(path, GROUPS[:1], fmt)
    assert len(source.targets()) == 2


@pytest.mark.parametrize("doc", [
    {"targets": ["a:1"]}, [["a:1"]], [{"targets": "a:1"}], [{"targets": [1]}],
    [{"targets": ["a:1"], "labels": {"x": 1}}], [{"targets": ["a:1"], "labels": ["x"]}]])
def test_file_sd_refuses_wrong_shapes_without_raising(tmp_path, doc):
    path = tmp_path / "sd.json"
    write(path, doc, "json")
    source = FileSDTargets(path)
    assert source.targets() == [] and source.errors == 1
    assert "group" in source.last_error or "list" in source.last_error


def test_file_sd_tolerates_a_missing_file_and_an_empty_yaml(tmp_path):
    missing = FileSDTargets(tmp_path / "later.json")
    assert missing.targets() == [] and missing.errors == 1
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert FileSDTargets(empty).targets() == []
    with pytest.raises(TargetError, match=r"\.json, \.yml or \.yaml"):
        FileSDTargets(tmp_path / "sd.txt")


# --- Kubernetes -------------------------------------------------------------------------
def exporter_pod(name, node, ip="", *, ready=True, phase="Running", namespace="kubetally",
                 labels=None):
    pod = make_pod(name, namespace=namespace, node=node, owner=("DaemonSet", "exporter"),
                   labels={"app.kubernetes.io/name": "kubetally-exporter"} if labels is None
                   else labels)
    status = pod["status"]
    status["phase"] = phase
    status["conditions"] = [{"type": "Initialized", "status": "True"},
                            {"type": "Ready", "status": "True" if ready else "False"}]
    if ip:
        status["podIP"] = ip
    else:
        status.pop("podIP", None)
    return pod


@pytest.fixture
def api():
    with FakeKubeAPI(bookmark_interval=0.05) as server:
        yield server


def snapshot(source):
    return [(t.url, t.node, dict(t.labels)) for t in source.targets()]


def test_kube_targets_follow_the_daemonset_pods(api):
    api.create(exporter_pod("exp-a", "node-a", "10.0.0.1"))
    api.create(exporter_pod("exp-b", "node-b"))  # scheduled, no IP yet
    api.create(exporter_pod("exp-c", "node-c", "10.0.0.3", ready=False))
    api.create(exporter_pod("web", "node-a", "10.0.0.9", labels={"app": "web"}))
    api.create(exporter_pod("exp-x", "node-x", "10.9.0.1", namespace="elsewhere"))
    with KubeTargets(api_client_from(host=api.url), "kubetally", SELECTOR) as source:
        assert source.wait_synced(10)
        assert snapshot(source) == [("http://10.0.0.1:9102/metrics", "node-a",
                                     {"namespace": "kubetally", "pod": "exp-a"})]
        api.update(exporter_pod("exp-b", "node-b", "10.0.0.2"))  # running and ready
        api.update(exporter_pod("exp-c", "node-c", "10.0.0.3"))  # became ready
        wait_until(lambda: len(source.targets()) == 3, what="two more ready pods")
        assert [(u, n) for u, n, _ in snapshot(source)] == [
            ("http://10.0.0.1:9102/metrics", "node-a"), ("http://10.0.0.2:9102/metrics",
                                                         "node-b"),
            ("http://10.0.0.3:9102/metrics", "node-c")]
        api.update(exporter_pod("exp-c", "node-c", "10.0.0.3", ready=False))
        api.delete("pods", "kubetally", "exp-a")
        wait_until(lambda: urls(source) == ["http://10.0.0.2:9102/metrics"], what="removals")
        assert source.errors == 0
    watched = [path for _, path in api.requests if "watch=true" in path]
    assert watched and all(p.startswith("/api/v1/namespaces/kubetally/pods?") for p in watched)


def test_kube_targets_in_all_namespaces_with_a_core_api(api):
    api.create(exporter_pod("exp-a", "node-a", "10.0.0.1", phase="Pending"))
    api.create(exporter_pod("exp-x", "node-x", "fd00::9", namespace="elsewhere"))
    core = k8s.CoreV1Api(api_client_from(host=api.url))
    source = KubeTargets(core, None, SELECTOR, port=9443, scheme="https", path="/m").start()
    try:
        wait_until(lambda: urls(source) == ["https://[fd00::9]:9443/m"], what="the pod")
        assert source.targets()[0].node == "node-x"
    finally:
        source.stop()
    assert all(p.startswith("/api/v1/pods?") for _, p in api.requests)


def test_kube_targets_keep_serving_while_the_api_is_away(api):
    api.create(exporter_pod("exp-a", "node-a", "10.0.0.1"))
    lean = LeanKubeAPI(api_client_from(host=api.url))
    with KubeTargets(lean, "kubetally", SELECTOR) as source:
        assert source.wait_synced(10) and len(source.targets()) == 1
        api.fail_next(10**6, 503)
        api.drop_watches()
        wait_until(lambda: source.errors >= 1, what="a failed watch")
        assert urls(source) == ["http://10.0.0.1:9102/metrics"]
        api.fail_next(0)


def test_kube_targets_refuse_a_bad_port_up_front():
    with pytest.raises(TargetError):
        KubeTargets(api_client_from(host="http://127.0.0.1:1"), None, SELECTOR, port=0)


# --- sharding ---------------------------------------------------------------------------
def test_fnv1a_64_matches_the_reference_vectors():
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a_64(b"foobar") == 0x85944171F73967E8


def test_jump_hash_matches_the_published_algorithm():
    # vectors shared by the reference implementations (e.g. github.com/dgryski/go-jump)
    assert [jump_hash(1, 1), jump_hash(42, 57), jump_hash(0xDEAD10CC, 666),
            jump_hash(256, 1024)] == [0, 43, 361, 520]


# shard_of(t, n) = jump_hash(fnv1a_64(t.url.encode("utf-8")), n), computed once and frozen
# here: a change reshuffles the targets of every deployed aggregator.
FIXED = {  # url: (fnv1a_64 of the URL, shards for n = 1, 2, 3, 7)
    "http://10.0.0.1:9102/metrics": (0x58FECF9D6629C2F9, (0, 1, 2, 4)),
    "http://10.0.0.2:9102/metrics": (0x955799D7D959A376, (0, 0, 0, 6)),
    "http://10.42.7.19:9102/metrics": (0x52BC9FAE6FDFA205, (0, 0, 0, 0)),
    "http://node-b.example:9102/metrics": (0xB1312B94700BA0D4, (0, 1, 1, 4)),
    "https://node-a.example:9443/metrics": (0x0459F78F30B91DC0, (0, 1, 2, 2)),
}


def test_shards_of_fixed_urls_never_change():
    for url, (fnv, shards) in FIXED.items():
        assert fnv1a_64(url.encode()) == fnv, url
        assert tuple(shard_of(Target(url), n) for n in (1, 2, 3, 7)) == shards, url


def fleet(n=1000):
    return [Target(f"http://10.{i // 250}.{i % 250}.{7 + i % 3}:9102/metrics") for i in range(n)]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_every_target_lands_in_exactly_one_shard_and_the_split_is_even(count):
    targets = fleet()
    source = StaticTargets([t.url for t in targets])
    shards = [ShardFilter(source, i, count).targets() for i in range(count)]
    assert sorted(t.url for shard in shards for t in shard) == sorted(t.url for t in targets)
    mean = len(targets) / count
    assert all(0.8 * mean <= len(shard) <= 1.2 * mean for shard in shards), \
        [len(s) for s in shards]


def test_adding_a_shard_moves_only_targets_to_the_new_shard():
    targets = fleet()
    for n in (1, 2, 4, 7):
        moved = [t for t in targets if shard_of(t, n) != shard_of(t, n + 1)]
        assert all(shard_of(t, n + 1) == n for t in moved)
        assert abs(len(moved) - len(targets) / (n + 1)) < 0.2 * len(targets) / (n + 1)


@pytest.mark.parametrize(("text", "says"), [
    ("3/3", "< 3"), ("0/0", "at least 1"), ("1", "INDEX/COUNT"), ("a/b", "INDEX/COUNT"),
    ("-1/3", "INDEX/COUNT"), ("1/2/3", "INDEX/COUNT"), ("", "INDEX/COUNT")])
def test_parse_shard_explains_bad_input(text, says):
    with pytest.raises(TargetError, match=says):
        parse_shard(text)


def test_parse_shard_and_filter_accept_good_input():
    assert parse_shard("0/1") == (0, 1) and parse_shard(" 2/3 ") == (2, 3)
    with pytest.raises(TargetError):
        ShardFilter(StaticTargets([]), 3, 3)
    with pytest.raises(TargetError):
        shard_of(Target("http://a:1/metrics"), 0)
    wrapped = ShardFilter(FileSDTargets("/nonexistent/sd.json"), 0, 2)
    assert wrapped.targets() == [] and wrapped.errors == 1 and wrapped.name == "file_sd"
