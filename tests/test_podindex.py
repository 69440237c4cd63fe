"""The pod index converts each pod version once and matches static pods by config hash."""

from __future__ import annotations

from exporter.podindex import PodIndex


class Store:
    def __init__(self):
        self.generation = 0
        self.pods = {}

    def snapshot(self):
        return dict(self.pods)

    def put(self, uid, rv, cid, annotations=None, cpu="100m"):
        self.pods[uid] = {
            "metadata": {"uid": uid, "name": uid, "namespace": "ns", "resourceVersion": rv,
                         "annotations": annotations or {}},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"containerStatuses": [{"name": "c", "containerID": f"containerd://{cid}"}]},
        }
        self.generation += 1


def test_converts_once_per_resource_version():
    calls = []
    store = Store()
    index = PodIndex(store, lambda ns, refs: calls.append(ns) or ("", ""))
    store.put("u1", "1", "c1")
    store.put("u2", "1", "c2")
    first = index.current()
    assert index.current() is first and len(calls) == 2
    store.put("u2", "2", "c2b")  # only u2 changed
    second = index.current()
    assert len(calls) == 3
    assert second.pods["u1"] is first.pods["u1"]
    assert ("u2", "c2b") in second.containers and ("u2", "c2") not in second.containers


def test_malformed_pod_is_skipped_and_reported():
    errors = []
    store = Store()
    store.put("good", "1", "g")
    store.put("bad", "1", "b", cpu="a lot")
    index = PodIndex(store, lambda ns, refs: ("", ""), on_error=errors.append)
    assert set(index.current().pods) == {"good"}
    assert len(errors) == 1 and "bad" in errors[0]


def test_static_pod_matches_its_config_hash():
    store = Store()
    config_hash = "8b3c2f9d0e1a4b5c6d7e8f9a0b1c2d3e"
    store.put("mirror-uid", "1", "abc", {"kubernetes.io/config.hash": config_hash})
    containers = PodIndex(store, lambda ns, refs: ("", "")).current().containers
    assert containers[(config_hash, "abc")][0].uid == "mirror-uid"
    assert (("mirror-uid", "abc")) in containers
