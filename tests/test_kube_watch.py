"""ObjectWatcher and api_client_from against FakeKubeAPI with the real kubernetes client."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from kubefakes import clients, make_node, make_pod, wait_until
from kubernetes import client as k8s

from exporter.errors import KubeError
from exporter.kube import ObjectWatcher, api_client_from
from exporter.simulate.apiserver import FakeKubeAPI

FOREVER = 10**6


@pytest.fixture
def server():
    with FakeKubeAPI(bookmark_interval=0.05) as api:
        api.create(make_node("node-a"))
        yield api


@pytest.fixture
def watch(server):
    made: list[ObjectWatcher] = []

    def make(list_fn=None, **kwargs):
        core, _, _ = clients(server.url)
        opts = {"resource": "pods", "field_selector": "spec.nodeName=node-a",
                "backoff_initial": 0.01, "backoff_max": 0.05, "watch_timeout_seconds": 30}
        watcher = ObjectWatcher(list_fn or core.list_pod_for_all_namespaces, **(opts | kwargs))
        made.append(watcher)
        watcher.start()
        return watcher

    yield make
    for watcher in made:
        watcher.stop()


def names(watcher):
    return sorted(o["metadata"]["name"] for o in watcher.snapshot().values())


def pod_calls(server, watching):
    return [p for _, p in server.requests
            if "/pods" in p and ("watch=true" in p) == watching]


def test_initial_list_fills_the_cache(server, watch):
    server.create(make_pod("web-1"))
    server.create(make_pod("db-1"))
    watcher = watch()
    assert watcher.wait_synced(10)
    assert names(watcher) == ["db-1", "web-1"]
    for uid, pod in watcher.snapshot().items():
        assert uid == pod["metadata"]["uid"] and pod["kind"] == "Pod"
        assert "managedFields" not in pod["metadata"]
        assert pod["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
    assert watcher.generation >= 1 and watcher.errors == 0
    assert watcher.restarts == {"expired": 0, "error": 0, "timeout": 0}


def test_added_modified_deleted_are_reflected(server, watch):
    server.create(make_pod("web-1"))
    watcher = watch()
    assert watcher.wait_synced(10)
    generation = watcher.generation
    server.create(make_pod("web-2"))
    wait_until(lambda: names(watcher) == ["web-1", "web-2"], what="ADDED")
    server.update(make_pod("web-1", cpu="1500m"))

    def cpu():
        pod = next(p for p in watcher.snapshot().values() if p["metadata"]["name"] == "web-1")
        return pod["spec"]["containers"][0]["resources"]["requests"]["cpu"]

    wait_until(lambda: cpu() == "1500m", what="MODIFIED")
    server.delete("pods", "shop", "web-2")
    wait_until(lambda: names(watcher) == ["web-1"], what="DELETED")
    assert watcher.generation >= generation + 3
    assert all("managedFields" not in p["metadata"] for p in watcher.snapshot().values())


def test_pods_of_other_nodes_are_never_cached(server, watch):
    watcher = watch()
    assert watcher.wait_synced(10)
    server.create(make_pod("elsewhere", node="node-b"))
    server.create(make_pod("web-1"))
    wait_until(lambda: "web-1" in names(watcher), what="this node's pod")
    assert names(watcher) == ["web-1"]  # events arrive in order: elsewhere would be here


def test_dropped_watch_resumes_from_last_resource_version_without_relist(server, watch):
    watcher = watch()
    assert watcher.wait_synced(10)
    server.create(make_pod("web-1"))
    wait_until(lambda: names(watcher) == ["web-1"])
    last_rv = server.rv  # web-1's; bookmarks carry the same RV while nothing changes
    server.drop_watches()
    wait_until(lambda: watcher.restarts["error"] >= 1, what="the drop")
    server.create(make_pod("web-2"))
    wait_until(lambda: names(watcher) == ["web-1", "web-2"], what="the resumed watch")
    assert len(pod_calls(server, watching=False)) == 1
    watches = pod_calls(server, watching=True)
    assert len(watches) >= 2
    resumed = int(parse_qs(urlsplit(watches[1]).query)["resourceVersion"][0])
    assert resumed == last_rv
    assert watcher.restarts["expired"] == 0 and watcher.synced


def test_compaction_while_away_relists_exactly(server, watch):
    for name in ("web-1", "web-2", "web-3"):
        server.create(make_pod(name))
    watcher = watch()
    wait_until(lambda: names(watcher) == ["web-1", "web-2", "web-3"])
    server.fail_next(FOREVER)
    server.drop_watches()
    wait_until(lambda: not watcher.synced and watcher.restarts["error"] >= 2, what="failing")
    server.delete("pods", "shop", "web-2")  # missed while disconnected
    server.create(make_pod("web-4"))
    server.update(make_pod("web-3", cpu="2"))
    server.compact()
    server.fail_next(0)
    wait_until(lambda: watcher.synced and names(watcher) == ["web-1", "web-3", "web-4"],
               what="the relist")
    assert watcher.restarts["expired"] == 1
    assert len(pod_calls(server, watching=False)) == 2
    expected = {}
    for name in ("web-1", "web-3", "web-4"):
        obj = server.get("pods", "shop", name)
        del obj["metadata"]["managedFields"]
        expected[obj["metadata"]["uid"]] = obj
    assert watcher.snapshot() == expected


def test_410_status_on_watch_start_relists(server, watch):
    server.create(make_pod("web-1"))
    watcher = watch()
    assert watcher.wait_synced(10)
    server.fail_next(1, status=410)
    server.drop_watches()
    wait_until(lambda: watcher.restarts["expired"] == 1 and watcher.synced, what="relist")
    wait_until(lambda: len(pod_calls(server, watching=False)) == 2, what="second list")
    assert names(watcher) == ["web-1"]


def test_failing_api_backs_off_keeps_the_cache_and_recovers(server, watch):
    delays: list[float] = []

    def sleep(seconds):
        delays.append(seconds)
        time.sleep(seconds)

    server.create(make_pod("web-1"))
    watcher = watch(sleep=sleep, jitter=lambda: 1.0, clock=lambda: 0.0,
                    backoff_initial=0.01, backoff_max=0.04)
    assert watcher.wait_synced(10)
    server.fail_next(FOREVER, status=500)
    server.drop_watches()
    wait_until(lambda: len(delays) >= 5, what="backoff")
    assert not watcher.synced
    assert names(watcher) == ["web-1"]
    assert delays[:5] == pytest.approx([0.01, 0.02, 0.04, 0.04, 0.04])
    assert watcher.errors >= 5 and watcher.restarts["error"] >= 5
    server.fail_next(0)
    server.create(make_pod("web-2"))
    wait_until(lambda: watcher.synced and names(watcher) == ["web-1", "web-2"], what="recovery")
    assert watcher.restarts["expired"] == 0
    assert len(pod_calls(server, watching=False)) == 1


def test_server_timeout_resumes_without_relist(server, watch):
    watcher = watch(watch_timeout_seconds=1)
    assert watcher.wait_synced(10)
    wait_until(lambda: watcher.restarts["timeout"] >= 1, what="a server-side timeout")
    server.create(make_pod("web-1"))
    wait_until(lambda: names(watcher) == ["web-1"])
    assert len(pod_calls(server, watching=False)) == 1 and watcher.errors == 0


def test_stop_is_prompt_while_watching_and_while_backing_off(server, watch):
    watcher = watch(watch_timeout_seconds=300)
    assert watcher.wait_synced(10)
    assert watcher.stop() is True
    assert not watcher.synced
    server.fail_next(FOREVER)
    backing_off = watch(backoff_initial=30.0, backoff_max=60.0)
    wait_until(lambda: backing_off.errors >= 1, what="a failure")
    assert backing_off.stop() is True


def test_node_watcher(server, watch):
    core, _, _ = clients(server.url)
    watcher = watch(core.list_node, resource="nodes", field_selector="metadata.name=node-a")
    assert watcher.wait_synced(10)
    server.create(make_node("node-b"))
    node = make_node("node-a")
    node["metadata"]["labels"]["karpenter.sh/capacity-type"] = "spot"
    server.update(node)
    wait_until(lambda: "karpenter.sh/capacity-type" in
               next(iter(watcher.snapshot().values()))["metadata"]["labels"])
    assert names(watcher) == ["node-a"]
    assert next(iter(watcher.snapshot().values()))["kind"] == "Node"


def test_api_client_from_kubeconfig_leaves_the_global_default_alone(server, tmp_path):
    before = k8s.Configuration.get_default_copy().host
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: sim, cluster: {{server: "{server.url}"}}}}]
users: [{{name: me, user: {{token: abc123}}}}]
contexts: [{{name: sim, context: {{cluster: sim, user: me}}}}]
current-context: sim
""")
    core = k8s.CoreV1Api(api_client_from(kubeconfig=str(path)))
    assert [n.metadata.name for n in core.list_node().items] == ["node-a"]
    assert k8s.Configuration.get_default_copy().host == before
    assert api_client_from(host=server.url).configuration.host == server.url


@pytest.mark.parametrize("content", [None, "{not yaml: [", "apiVersion: v1\nkind: Config\n"])
def test_api_client_from_without_any_configuration(tmp_path, content):
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    with pytest.raises(KubeError, match="no Kubernetes API configuration"):
        api_client_from(kubeconfig=str(path))
