"""The four API calls the exporter makes, through the kubernetes client's ``ApiClient``.

Why not the generated ``CoreV1Api``/``AppsV1Api``/``BatchV1Api``: since client 34 each
generated method carries a pydantic ``validate_call``, and importing those three modules
costs about 28 MB of resident memory (measured: 42.8 MB after ``import kubernetes.client``,
70.7 MB once the three classes are touched). A DaemonSet on every node cannot afford it.
These methods keep the generated methods' names and keyword arguments, so the watcher and
the owner resolver accept either, and go through the same ``ApiClient``: its configuration
(in-cluster service account, kubeconfig, TLS, bearer token refresh), its request
serialisation and its REST layer. Like the generated methods with
``_preload_content=False``, they return the raw urllib3 response and raise
``ApiException`` for a non-2xx status.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

__all__ = ["LeanKubeAPI"]

_QUERY = {"field_selector": "fieldSelector", "label_selector": "labelSelector",
          "resource_version": "resourceVersion", "allow_watch_bookmarks": "allowWatchBookmarks",
          "timeout_seconds": "timeoutSeconds", "watch": "watch", "limit": "limit"}
_ACCEPT = "application/json"


class LeanKubeAPI:
    """List/watch pods and nodes, read ReplicaSets and Jobs; raw JSON responses only."""

    def __init__(self, api_client: ApiClient) -> None:
        self.api_client = api_client

    def _get(self, path: str, path_params: dict[str, str], kwargs: dict[str, Any]) -> Any:
        if kwargs.pop("_preload_content", False):
            raise ValueError("LeanKubeAPI returns raw responses: pass _preload_content=False")
        timeout = kwargs.pop("_request_timeout", None)
        unknown = set(kwargs) - set(_QUERY)
        if unknown:
            raise TypeError(f"unsupported arguments: {sorted(unknown)}")
        query = [(_QUERY[k], v) for k, v in kwargs.items() if v is not None]
        accept = "application/json;stream=watch" if kwargs.get("watch") else _ACCEPT
        request = self.api_client.param_serialize(
            method="GET", resource_path=path, path_params=path_params, query_params=query,
            header_params={"Accept": accept}, auth_settings=["BearerToken"])
        response = self.api_client.call_api(*request, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    def list_pod_for_all_namespaces(self, **kwargs: Any) -> Any:
        """GET /api/v1/pods (list, or watch with ``watch=True``)."""
        return self._get("/api/v1/pods", {}, kwargs)

    def list_node(self, **kwargs: Any) -> Any:
        """GET /api/v1/nodes (list, or watch with ``watch=True``)."""
        return self._get("/api/v1/nodes", {}, kwargs)

    def read_namespaced_replica_set(self, name: str, namespace: str, **kwargs: Any) -> Any:
        """GET one ReplicaSet, to follow it to its Deployment."""
        return self._get("/apis/apps/v1/namespaces/{namespace}/replicasets/{name}",
                         {"namespace": namespace, "name": name}, kwargs)

    def read_namespaced_job(self, name: str, namespace: str, **kwargs: Any) -> Any:
        """GET one Job, to follow it to its CronJob."""
        return self._get("/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
                         {"namespace": namespace, "name": name}, kwargs)
