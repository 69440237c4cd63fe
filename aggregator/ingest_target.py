"""One exporter target's state across intervals: what each series feeds, and last counters.

Series are *learned* once, when the parser first sees them (a Python loop over new
series only); every later interval maps the scrape's ``(index, value)`` arrays
through per-series ``role`` / ``entity`` / ``aux`` arrays with numpy. Names come
from :mod:`exporter.contract`, the single source of truth both sides import.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aggregator.textparse import Scrape, SeriesTable
from exporter import contract as c

__all__ = ["TargetPart", "TargetState"]

(IGNORE, CPU_USAGE, MEM_WS, CPU_REQ, MEM_REQ, GPU_REQ, C_GPU_SM, POD_LABELS, NODE_INFO,
 NODE_CPU, NODE_MEM, GPU_INFO, GPU_SHARE, NODE_GPU_CAP) = range(14)
_CONTAINER_ROLES = (CPU_USAGE, MEM_WS, CPU_REQ, MEM_REQ, GPU_REQ, C_GPU_SM)
_ROLE_OF = {c.CONTAINER_CPU_USAGE.name: CPU_USAGE, c.CONTAINER_MEMORY_WORKING_SET.name: MEM_WS,
            c.CONTAINER_CPU_REQUEST.name: CPU_REQ, c.CONTAINER_MEMORY_REQUEST.name: MEM_REQ,
            c.CONTAINER_GPU_REQUEST.name: GPU_REQ, c.CONTAINER_GPU_SM_UTILIZATION.name: C_GPU_SM,
            c.POD_LABELS_INFO.name: POD_LABELS, c.NODE_INFO.name: NODE_INFO,
            c.NODE_CPU_CAPACITY.name: NODE_CPU, c.NODE_MEMORY_CAPACITY.name: NODE_MEM,
            c.GPU_INFO.name: GPU_INFO, c.GPU_PHYSICAL_SHARE.name: GPU_SHARE,
            c.NODE_GPU_CAPACITY.name: NODE_GPU_CAP}
#: GPU request classes (aux of GPU_REQ series).
WHOLE, SHARED, MIG = 1, 2, 3
_SHARING = ("time-slicing", "mps")
_IDENTITY = ("node", "namespace", "controller_kind", "controller", "pod", "container", "uid")


def _gpu_class(resource: str) -> int:
    if resource == "nvidia.com/gpu":
        return WHOLE
    if resource.startswith("nvidia.com/mig-"):
        return MIG
    return SHARED if resource.startswith("nvidia.com/gpu.") else 0


@dataclass
class TargetPart:
    """What one target contributes to an interval (arrays over its present containers)."""

    node_identity: dict[str, str]
    node_cpu: float
    node_ram: float
    node_gpus: float
    c_identity: dict[str, np.ndarray]
    c_labels: dict[str, np.ndarray]
    c_node: np.ndarray
    c_cpu: np.ndarray
    c_cpu_req: np.ndarray
    c_ram: np.ndarray
    c_ram_req: np.ndarray
    c_gpu: np.ndarray
    c_mig: np.ndarray
    d_uuid: np.ndarray
    d_share: np.ndarray
    d_shared: np.ndarray
    u_container: np.ndarray
    u_device: np.ndarray
    u_sm: np.ndarray


@dataclass
class TargetState:
    """Series table, learned series roles, registries and previous counter values."""

    table: SeriesTable = field(default_factory=SeriesTable)
    role: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    entity: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    aux: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    prev: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    prev_time: float = float("nan")
    _containers: dict[tuple[str, str], int] = field(default_factory=dict)
    _c_cols: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in _IDENTITY})
    _c_pod: list[int] = field(default_factory=list)
    _pods: dict[str, int] = field(default_factory=dict)
    _labelsets: list[dict[str, str]] = field(default_factory=list)
    _devices: dict[str, int] = field(default_factory=dict)
    _d_uuid: list[str] = field(default_factory=list)
    _d_parent: list[str] = field(default_factory=list)
    _d_profile: list[str] = field(default_factory=list)
    _nodes: list[dict[str, str]] = field(default_factory=list)
    _profiles: dict[str, int] = field(default_factory=dict)
    _cache: dict[str, np.ndarray] = field(default_factory=dict)

    # --- learning new series -------------------------------------------------------------
    def _container(self, labels: dict[str, str]) -> int:
        key = (labels.get("uid", ""), labels.get("container", ""))
        cid = self._containers.get(key)
        if cid is None:
            cid = self._containers[key] = len(self._c_pod)
            for col in _IDENTITY:
                self._c_cols[col].append(labels.get(col, ""))
            self._c_pod.append(self._pod(key[0]))
            self._cache.clear()
        return cid

    def _pod(self, uid: str) -> int:
        return self._pods.setdefault(uid, len(self._pods))

    def _device(self, uuid: str) -> int:
        did = self._devices.get(uuid)
        if did is None:
            did = self._devices[uuid] = len(self._d_uuid)
            self._d_uuid.append(uuid)
            self._d_parent.append("")
            self._d_profile.append("")
        return did

    def _learn(self) -> None:
        start, end = len(self.role), len(self.table)
        if start == end:
            return
        role, entity, aux = (np.zeros(end - start, np.int8), np.zeros(end - start, np.int32),
                             np.zeros(end - start, np.int32))
        for j, i in enumerate(range(start, end)):
            r = _ROLE_OF.get(self.table.name(i), IGNORE)
            labels = self.table.labels(i)
            role[j] = r
            if r in _CONTAINER_ROLES:
                entity[j] = self._container(labels)
                if r == GPU_REQ:
                    resource = labels.get("resource", "")
                    aux[j] = _gpu_class(resource)
                    if aux[j] == MIG:
                        profile = resource.removeprefix("nvidia.com/mig-")
                        aux[j] = MIG + self._profiles.setdefault(profile, len(self._profiles))
                elif r == C_GPU_SM:
                    aux[j] = self._device(labels.get("gpu_uuid", ""))
            elif r == POD_LABELS:
                entity[j] = self._pod(labels.get("uid", ""))
                aux[j] = len(self._labelsets)
                self._labelsets.append({k: v for k, v in labels.items()
                                        if k.startswith(c.POD_LABEL_PREFIX)})
                self._cache.clear()
            elif r == NODE_INFO:
                entity[j] = len(self._nodes)
                self._nodes.append(labels)
            elif r in (GPU_INFO, GPU_SHARE):
                entity[j] = self._device(labels.get("gpu_uuid", ""))
                if r == GPU_INFO:
                    self._d_parent[entity[j]] = labels.get("parent_uuid", "")
                    self._d_profile[entity[j]] = labels.get("mig_profile", "")
            elif r == NODE_GPU_CAP:
                aux[j] = _gpu_class(labels.get("resource", ""))
        self.role = np.concatenate([self.role, role])
        self.entity = np.concatenate([self.entity, entity])
        self.aux = np.concatenate([self.aux, aux])
        self.prev = np.concatenate([self.prev, np.full(end - start, np.nan)])

    def _columns(self) -> dict[str, np.ndarray]:
        if "pod_id" not in self._cache:
            for col, values in self._c_cols.items():
                self._cache[col] = np.array(values, dtype=object)
            self._cache["pod_id"] = np.array(self._c_pod, dtype=np.int64)
        return self._cache

    # --- one interval ----------------------------------------------------------------------
    def ingest(self, scrape: Scrape, t: float) -> TargetPart | None:
        """This target's share of the interval; None if it reported no node."""
        self._learn()
        idx, v = scrape.index, scrape.value
        role, ent, aux = self.role[idx], self.entity[idx], self.aux[idx]
        dt, self.prev_time = t - self.prev_time, t
        nodes = np.flatnonzero(role == NODE_INFO)
        if len(nodes) == 0:
            return None
        node_labels = self._nodes[ent[nodes[-1]]]
        nc = len(self._c_pod)
        present = np.zeros(nc, bool)
        present[ent[np.isin(role, _CONTAINER_ROLES)]] = True
        rows = np.flatnonzero(present)
        row_of = np.full(nc, -1, np.int64)
        row_of[rows] = np.arange(len(rows))

        def column(r: int, fill: float) -> np.ndarray:
            out = np.full(len(rows), fill)
            m = role == r
            out[row_of[ent[m]]] = v[m]
            return out

        m = role == CPU_USAGE
        prev = self.prev[idx[m]]
        cur = v[m]
        delta = np.where(cur >= prev, cur - prev, cur)  # a drop is a restart from 0
        cpu = np.full(len(rows), np.nan)
        if dt > 0:
            cpu[row_of[ent[m]]] = np.where(np.isnan(prev), np.nan, delta / dt)
        self.prev[idx[m]] = cur
        part = self._gpu(role, ent, aux, v, rows, row_of, node_labels)
        cols = self._columns()
        pod_ids = cols["pod_id"][rows]
        return TargetPart(
            node_identity={k: node_labels.get(k, "") for k in
                           ("node", "provider", "region", "zone", "instance_type",
                            "capacity_type", "gpu_model")},
            node_cpu=float(np.nansum(v[role == NODE_CPU])) if (role == NODE_CPU).any()
            else np.nan,
            node_ram=float(np.nansum(v[role == NODE_MEM])) if (role == NODE_MEM).any()
            else np.nan,
            node_gpus=part["node_gpus"],
            c_identity={k: cols[k][rows] for k in _IDENTITY},
            c_labels=self._labels(role, ent, aux, pod_ids),
            c_node=np.zeros(len(rows), np.int32),
            c_cpu=cpu, c_cpu_req=column(CPU_REQ, 0.0), c_ram=column(MEM_WS, np.nan),
            c_ram_req=column(MEM_REQ, 0.0), c_gpu=part["whole"], c_mig=part["mig"],
            d_uuid=part["d_uuid"], d_share=part["d_share"], d_shared=part["d_shared"],
            u_container=part["u_container"], u_device=part["u_device"], u_sm=part["u_sm"])

    def _labels(self, role: np.ndarray, ent: np.ndarray, aux: np.ndarray,
                pod_ids: np.ndarray) -> dict[str, np.ndarray]:
        m = role == POD_LABELS
        if not m.any():
            return {}
        current = np.full(len(self._pods), -1, np.int64)
        current[ent[m]] = aux[m]
        keys = sorted({k for s in aux[m] for k in self._labelsets[s]})
        sets = current[pod_ids]
        out = {}
        for key in keys:
            table = self._cache.get("label:" + key)
            if table is None:  # rebuilt only when a new label set was learned
                table = np.array([s.get(key, "") for s in self._labelsets] + [""], dtype=object)
                self._cache["label:" + key] = table
            out[key] = table[sets]  # -1 picks the trailing ""
        return out

    def _gpu(self, role: np.ndarray, ent: np.ndarray, aux: np.ndarray, v: np.ndarray,
             rows: np.ndarray, row_of: np.ndarray, node: dict[str, str]) -> dict:
        n = len(rows)
        whole, mig = np.zeros(n), np.zeros(n)
        shared_user = np.zeros(n, bool)
        info = np.flatnonzero(role == GPU_INFO)
        devs = ent[info]
        d_row = np.full(len(self._d_uuid), -1, np.int64)
        d_row[devs] = np.arange(len(devs))
        share = np.ones(len(devs))
        gs = np.flatnonzero(role == GPU_SHARE)
        gs = gs[d_row[ent[gs]] >= 0]
        share[d_row[ent[gs]]] = v[gs]
        parents = np.array([self._d_parent[d] for d in devs], dtype=object)
        profiles = {self._d_profile[d]: share[i] for i, d in enumerate(devs) if self._d_profile[d]}
        renamed = bool(((role == NODE_GPU_CAP) & (aux == SHARED)).any())
        whole_is_shared = node.get("gpu_sharing", "") in _SHARING and not renamed
        req = role == GPU_REQ
        r_rows, r_cls, r_val = row_of[ent[req]], aux[req], v[req]
        if whole_is_shared:
            shared_user[r_rows[r_cls == WHOLE]] = True
        else:
            np.add.at(whole, r_rows[r_cls == WHOLE], r_val[r_cls == WHOLE])
        shared_user[r_rows[r_cls == SHARED]] = True
        by_id = {i: p for p, i in self._profiles.items()}
        for code in np.unique(r_cls[r_cls >= MIG]):
            pick = r_cls == code
            np.add.at(mig, r_rows[pick], r_val[pick] * profiles.get(by_id[code - MIG], np.nan))
        use = np.flatnonzero(role == C_GPU_SM)
        use = use[d_row[aux[use]] >= 0]
        u_container, u_device = row_of[ent[use]], d_row[aux[use]]
        d_shared = np.zeros(len(devs), bool)
        d_shared[u_device[shared_user[u_container]]] = True
        d_shared &= parents == ""
        return {"whole": whole, "mig": mig, "node_gpus": float((parents == "").sum()),
                "d_uuid": np.array([self._d_uuid[d] for d in devs], dtype=object),
                "d_share": share, "d_shared": d_shared,
                "u_container": u_container.astype(np.int32),
                "u_device": u_device.astype(np.int32), "u_sm": v[use]}
