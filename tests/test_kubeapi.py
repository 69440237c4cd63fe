"""The lean API calls go through the kubernetes client's ApiClient to a real HTTP server."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from exporter.kube import ObjectWatcher, api_client_from
from exporter.kubeapi import LeanKubeAPI
from exporter.owners import OwnerResolver
from exporter.simulate.apiserver import FakeKubeAPI


def pod(name, node, owner=None):
    meta = {"name": name, "namespace": "shop"}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True,
                                    "apiVersion": "apps/v1", "uid": "x"}]
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": {"nodeName": node}}


@pytest.fixture
def server():
    with FakeKubeAPI() as api:
        yield api


def test_list_with_field_selector(server):
    server.create(pod("a", "n1"))
    server.create(pod("b", "n2"))
    lean = LeanKubeAPI(api_client_from(host=server.url))
    resp = lean.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1",
                                            _preload_content=False)
    body = json.loads(resp.data)
    assert [i["metadata"]["name"] for i in body["items"]] == ["a"]
    assert any("fieldSelector=spec.nodeName%3Dn1" in path for _m, path in server.requests)


def test_not_found_raises_api_exception(server):
    lean = LeanKubeAPI(api_client_from(host=server.url))
    with pytest.raises(ApiException) as err:
        lean.read_namespaced_job("missing", "shop", _preload_content=False)
    assert err.value.status == 404


def test_refuses_arguments_it_would_drop(server):
    lean = LeanKubeAPI(api_client_from(host=server.url))
    with pytest.raises(TypeError, match="pretty"):
        lean.list_node(pretty="true", _preload_content=False)


def test_watcher_and_owner_resolver_run_on_it(server):
    server.create({"kind": "Deployment", "apiVersion": "apps/v1",
                   "metadata": {"name": "web", "namespace": "shop"}})
    server.create({"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": {
        "name": "web-5d9", "namespace": "shop", "ownerReferences": [
            {"kind": "Deployment", "name": "web", "controller": True, "apiVersion": "apps/v1",
             "uid": "d"}]}})
    server.create(pod("web-5d9-x", "n1", ("ReplicaSet", "web-5d9")))
    lean = LeanKubeAPI(api_client_from(host=server.url))
    watcher = ObjectWatcher(lean.list_pod_for_all_namespaces, resource="pods",
                            field_selector="spec.nodeName=n1", backoff_initial=0.05)
    watcher.start()
    try:
        assert watcher.wait_synced(10)
        (raw,) = watcher.snapshot().values()
        owners = OwnerResolver(lean, lean)
        assert owners.resolve("shop", raw["metadata"]["ownerReferences"]) == ("Deployment", "web")
    finally:
        watcher.stop()
