"""FakeKubeAPI speaks the real API's JSON: checked with the real kubernetes client."""

from __future__ import annotations

import json
import threading

import pytest
import urllib3
from kubefakes import clients, make_node, make_owner, make_pod, wait_until
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from exporter.simulate.apiserver import FakeKubeAPI


@pytest.fixture
def server():
    with FakeKubeAPI(bookmark_interval=0.05) as api:
        yield api


def watch_events(core, *, limit=None, **kwargs):
    """Events of one watch call until the server ends it (or ``limit`` events)."""
    resp = core.list_pod_for_all_namespaces(watch=True, _preload_content=False, **kwargs)
    events = []
    try:
        for line in iter_resp_lines(resp):
            events.append(json.loads(line))
            if limit and len(events) >= limit:
                break
    finally:
        resp.close()
    return events


def test_list_deserialises_with_the_real_models_and_filters_by_node(server):
    server.create(make_pod("web-1"))
    server.create(make_pod("web-2", node="node-b"))
    core, _, _ = clients(server.url)
    pods = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-a")
    assert [p.metadata.name for p in pods.items] == ["web-1"]
    pod = pods.items[0]
    assert pod.metadata.owner_references[0].kind == "ReplicaSet"
    assert pod.status.container_statuses[0].container_id.startswith("containerd://")
    assert pod.metadata.uid and pod.metadata.creation_timestamp is not None
    raw = json.loads(core.list_pod_for_all_namespaces(_preload_content=False).data)
    assert raw["kind"] == "PodList" and raw["apiVersion"] == "v1"
    assert raw["metadata"]["resourceVersion"] == str(server.rv)
    assert all("kind" not in item and "apiVersion" not in item for item in raw["items"])


def test_namespaced_list_label_selector_and_single_gets(server):
    server.create(make_pod("web-1", labels={"app": "web", "tier": "front"}))
    server.create(make_pod("db-1", labels={"app": "db"}))
    server.create(make_pod("web-9", namespace="other", labels={"app": "web"}))
    server.create(make_node("node-a"))
    server.create(make_owner("ReplicaSet", "web-5d9c7b6f4", parent=("Deployment", "web")))
    core, apps, _ = clients(server.url)
    names = [p.metadata.name for p in
             core.list_namespaced_pod("shop", label_selector="app=web,tier=front").items]
    assert names == ["web-1"]
    assert {p.metadata.name for p in core.list_namespaced_pod("shop").items} == {"web-1", "db-1"}
    assert [p.metadata.name for p in
            core.list_pod_for_all_namespaces(label_selector="app!=db").items] == ["web-1", "web-9"]
    assert core.read_node("node-a").status.capacity["pods"] == "110"
    nodes = core.list_node(field_selector="metadata.name=node-a").items
    assert [n.metadata.name for n in nodes] == ["node-a"]
    rs = apps.read_namespaced_replica_set("web-5d9c7b6f4", "shop")
    assert rs.metadata.owner_references[0].name == "web"


def test_not_found_is_a_status_object(server):
    _, _, batch = clients(server.url)
    with pytest.raises(ApiException) as err:
        batch.read_namespaced_cron_job("nightly", "shop")
    assert err.value.status == 404
    body = json.loads(err.value.body)
    assert body | {"message": ""} == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                      "status": "Failure", "message": "", "reason": "NotFound",
                                      "code": 404}
    resp = urllib3.PoolManager().request("GET", server.url + "/api/v1/namespaces/x/nodes")
    assert resp.status == 404 and resp.json()["reason"] == "NotFound"
    assert server.requests[-1] == ("GET", "/api/v1/namespaces/x/nodes")
    resp = urllib3.PoolManager().request("GET", server.url + "/api/v1/pods?watch=1&"
                                         "resourceVersion=abc")
    assert resp.status == 400 and resp.json()["reason"] == "BadRequest"


def test_watch_replays_history_after_the_resource_version(server):
    core, _, _ = clients(server.url)
    server.create(make_pod("web-1"))
    since = server.rv
    server.create(make_pod("web-2"))
    changed = make_pod("web-1", cpu="500m")
    server.update(changed)
    server.delete("pods", "shop", "web-2")
    events = watch_events(core, resource_version=str(since), limit=3)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "web-2"), ("MODIFIED", "web-1"), ("DELETED", "web-2")]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[-1] == server.rv
    assert events[0]["object"]["kind"] == "Pod"


def test_watch_without_resource_version_starts_with_current_state(server):
    server.create(make_pod("web-1"))
    server.create(make_pod("web-2", node="node-b"))
    core, _, _ = clients(server.url)
    events = watch_events(core, field_selector="spec.nodeName=node-a", limit=1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "web-1")]


def test_object_leaving_the_selector_is_deleted_for_the_watcher(server):
    server.create(make_pod("web-1", labels={"app": "web"}))
    since = server.rv
    server.update(make_pod("web-1", labels={"app": "old"}))
    server.update(make_pod("web-1", labels={"app": "web"}))
    core, _, _ = clients(server.url)
    events = watch_events(core, label_selector="app=web", resource_version=str(since), limit=2)
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]
    assert events[0]["object"]["metadata"]["labels"] == {"app": "web"}
    assert events[0]["object"]["metadata"]["resourceVersion"] == str(since + 1)


def test_compacted_history_answers_410_like_the_real_api(server):
    server.create(make_pod("web-1"))
    server.create(make_pod("web-2"))
    server.compact()
    core, _, _ = clients(server.url)
    events = watch_events(core, resource_version="2", timeout_seconds=5)
    assert events == [{"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f"too old resource version: 2 ({server.rv})", "reason": "Expired",
        "code": 410}}]


def test_bookmarks_and_timeout_end_the_stream_cleanly(server):
    core, _, _ = clients(server.url)
    events = watch_events(core, resource_version=str(server.rv), allow_watch_bookmarks=True,
                          timeout_seconds=1)
    assert events and {e["type"] for e in events} == {"BOOKMARK"}
    assert events[-1]["object"] == {"kind": "Pod", "apiVersion": "v1",
                                    "metadata": {"resourceVersion": str(server.rv)}}


def test_fail_next_then_recovery(server):
    core, _, _ = clients(server.url)
    server.fail_next(2, status=503)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            core.list_node()
        assert err.value.status == 503
        assert json.loads(err.value.body)["reason"] == "ServiceUnavailable"
    assert core.list_node().items == []


def test_drop_watches_cuts_streams_and_many_watchers_see_each_event(server):
    core, _, _ = clients(server.url)
    got: list[list[str]] = [[] for _ in range(12)]
    errors: list[BaseException] = []

    def watcher(i):
        resp = core.list_pod_for_all_namespaces(watch=True, _preload_content=False,
                                                resource_version=str(server.rv))
        try:
            for line in iter_resp_lines(resp):
                got[i].append(json.loads(line)["object"]["metadata"]["name"])
        except urllib3.exceptions.ProtocolError as exc:  # the abrupt end
            errors.append(exc)

    threads = [threading.Thread(target=watcher, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    wait_until(lambda: sum("watch=true" in p for _, p in server.requests) >= 12,
               what="all watches open")
    server.create(make_pod("web-1"))
    wait_until(lambda: all(g == ["web-1"] for g in got), what="every watcher saw the pod")
    server.drop_watches()
    for t in threads:
        t.join(10)
    assert len(errors) == 12
