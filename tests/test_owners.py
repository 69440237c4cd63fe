"""OwnerResolver against FakeKubeAPI with the real AppsV1Api and BatchV1Api."""

from __future__ import annotations

import pytest
from kubefakes import clients, make_owner, make_pod, owner_ref

from exporter.owners import OwnerResolver, controller_ref
from exporter.simulate.apiserver import FakeKubeAPI


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def server():
    with FakeKubeAPI() as api:
        api.create(make_owner("ReplicaSet", "web-5d9c7b6f4", parent=("Deployment", "web")))
        api.create(make_owner("Deployment", "web"))
        api.create(make_owner("Job", "nightly-28712345", parent=("CronJob", "nightly")))
        api.create(make_owner("Job", "migrate-once"))
        yield api


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def resolver(server, clock):
    _, apps, batch = clients(server.url)
    return OwnerResolver(apps, batch, ttl_seconds=600, clock=clock)


def refs(kind, name):
    return make_pod("p", owner=(kind, name))["metadata"]["ownerReferences"]


def lookups(server):
    return [p for _, p in server.requests if "/apis/" in p]


def test_replicaset_resolves_to_its_deployment(resolver):
    assert resolver.resolve("shop", refs("ReplicaSet", "web-5d9c7b6f4")) == ("Deployment", "web")


def test_job_resolves_to_its_cronjob_and_a_bare_job_to_itself(resolver):
    assert resolver.resolve("shop", refs("Job", "nightly-28712345")) == ("CronJob", "nightly")
    assert resolver.resolve("shop", refs("Job", "migrate-once")) == ("Job", "migrate-once")
    assert resolver.errors == 0


def test_kinds_without_a_hop_are_returned_as_they_are(resolver, server):
    assert resolver.resolve("shop", None) == ("", "")
    assert resolver.resolve("shop", []) == ("", "")
    assert resolver.resolve("db", refs("StatefulSet", "postgres")) == ("StatefulSet", "postgres")
    assert resolver.resolve("kube-system", refs("Node", "node-a")) == ("Node", "node-a")
    assert resolver.resolve("ml", refs("RayCluster", "train")) == ("RayCluster", "train")
    assert lookups(server) == []


def test_the_controller_reference_wins_over_the_first(resolver):
    first = {**owner_ref("ConfigMap", "holder"), "controller": False}
    assert resolver.resolve("shop", [first, owner_ref("DaemonSet", "agent")]) == \
        ("DaemonSet", "agent")
    assert controller_ref([{**first}]) == first


def test_results_are_cached_until_the_ttl(resolver, server, clock):
    pod_refs = refs("ReplicaSet", "web-5d9c7b6f4")
    assert resolver.resolve("shop", pod_refs) == ("Deployment", "web")
    assert len(lookups(server)) == 1
    clock.now += 599
    assert resolver.resolve("shop", pod_refs) == ("Deployment", "web")
    assert len(lookups(server)) == 1
    clock.now += 2
    assert resolver.resolve("shop", pod_refs) == ("Deployment", "web")
    assert lookups(server) == ["/apis/apps/v1/namespaces/shop/replicasets/web-5d9c7b6f4"] * 2


def test_missing_replicaset_falls_back_to_the_direct_owner_briefly(resolver, server, clock):
    pod_refs = refs("ReplicaSet", "gone-7f8b9")
    assert resolver.resolve("shop", pod_refs) == ("ReplicaSet", "gone-7f8b9")
    assert resolver.errors == 1
    assert resolver.resolve("shop", pod_refs) == ("ReplicaSet", "gone-7f8b9")
    assert len(lookups(server)) == 1  # the failure is cached too, for 30 s
    server.create(make_owner("ReplicaSet", "gone-7f8b9", parent=("Deployment", "gone")))
    clock.now += 31
    assert resolver.resolve("shop", pod_refs) == ("Deployment", "gone")
    assert resolver.errors == 1


def test_forbidden_and_unreachable_api_fall_back(server, clock):
    _, apps, batch = clients(server.url)
    resolver = OwnerResolver(apps, batch, clock=clock)
    server.fail_next(1, status=403)
    assert resolver.resolve("shop", refs("Job", "nightly-28712345")) == \
        ("Job", "nightly-28712345")
    _, apps, batch = clients("http://127.0.0.1:9")  # discard port: connection refused
    offline = OwnerResolver(apps, batch, clock=clock, request_timeout=2.0)
    assert offline.resolve("shop", refs("ReplicaSet", "web-5d9c7b6f4")) == \
        ("ReplicaSet", "web-5d9c7b6f4")
    assert resolver.errors == 1 and offline.errors == 1
