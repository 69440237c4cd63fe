"""Realistic Kubernetes JSON for the kube tests, and a polling helper.

Shapes follow what the API server returns for a Deployment's pod on containerd, including
the managedFields the watcher must drop.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s

from exporter.kube import api_client_from


def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def owner_ref(kind: str, name: str) -> dict[str, Any]:
    api = {"ReplicaSet": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
           "Deployment": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1", "Node": "v1"}
    return {"apiVersion": api.get(kind, "example.com/v1"), "kind": kind, "name": name,
            "uid": f"{_hex(kind + name, 8)}-0000-4000-8000-{_hex(name, 12)}",
            "controller": True, "blockOwnerDeletion": True}


def make_pod(name: str, namespace: str = "shop", node: str = "node-a",
             owner: tuple[str, str] | None = ("ReplicaSet", "web-5d9c7b6f4"),
             labels: dict[str, str] | None = None, cpu: str = "250m",
             memory: str = "256Mi") -> dict[str, Any]:
    """A Running Burstable pod with one app container, as `kubectl get -o json` shows it."""
    meta: dict[str, Any] = {
        "name": name, "namespace": namespace, "generateName": name.rsplit("-", 1)[0] + "-",
        "labels": {"app": "web", "pod-template-hash": "5d9c7b6f4"} if labels is None else labels,
        "annotations": {"kubectl.kubernetes.io/restartedAt": "2024-05-01T10:00:00Z"},
        "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                           "apiVersion": "v1", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}],
    }
    if owner:
        meta["ownerReferences"] = [owner_ref(*owner)]
    return {
        "kind": "Pod", "apiVersion": "v1", "metadata": meta,
        "spec": {
            "nodeName": node, "restartPolicy": "Always", "schedulerName": "default-scheduler",
            "containers": [{"name": "app", "image": "registry.example.com/web:1.4.2",
                            "resources": {"requests": {"cpu": cpu, "memory": memory},
                                          "limits": {"memory": memory}}}],
        },
        "status": {
            "phase": "Running", "qosClass": "Burstable", "podIP": "10.0.3.17",
            "startTime": "2024-05-01T10:00:02Z",
            "containerStatuses": [{
                "name": "app", "ready": True, "started": True, "restartCount": 0,
                "image": "registry.example.com/web:1.4.2",
                "imageID": "registry.example.com/web@sha256:" + _hex("img", 64),
                "containerID": "containerd://" + _hex(namespace + name, 64),
                "state": {"running": {"startedAt": "2024-05-01T10:00:03Z"}}}],
        },
    }


def make_node(name: str = "node-a") -> dict[str, Any]:
    return {"kind": "Node", "apiVersion": "v1",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name,
                "node.kubernetes.io/instance-type": "m6i.2xlarge",
                "topology.kubernetes.io/zone": "eu-west-1a"}},
            "spec": {"providerID": f"aws:///eu-west-1a/i-0{_hex(name, 16)}"},
            "status": {"capacity": {"cpu": "8", "memory": "32329812Ki", "pods": "110"},
                       "allocatable": {"cpu": "7910m", "memory": "31312980Ki", "pods": "110"}}}


def make_owner(kind: str, name: str, namespace: str = "shop",
               parent: tuple[str, str] | None = None) -> dict[str, Any]:
    """A ReplicaSet, Deployment, StatefulSet, Job or CronJob with a minimal valid spec."""
    api = owner_ref(kind, name)["apiVersion"]
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"app": "web"}}
    if parent:
        meta["ownerReferences"] = [owner_ref(*parent)]
    template = {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "registry.example.com/web:1"}],
                         "restartPolicy": "Never" if kind in ("Job", "CronJob") else "Always"}}
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "web"}}, "template": template}
    if kind == "Job":
        spec = {"template": template, "backoffLimit": 6}
    elif kind == "CronJob":
        spec = {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}}
    return {"kind": kind, "apiVersion": api, "metadata": meta, "spec": spec}


def clients(url: str) -> tuple[k8s.CoreV1Api, k8s.AppsV1Api, k8s.BatchV1Api]:
    api = api_client_from(host=url)
    return k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.BatchV1Api(api)


def wait_until(cond: Callable[[], object], deadline: float = 10.0, what: str = "") -> None:
    """Poll ``cond`` until truthy; fail with ``what`` after a generous deadline."""
    end = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what or cond}")
        time.sleep(0.01)
