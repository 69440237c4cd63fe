"""The simulated node's GPUs: a :class:`FakeNVML` kept in step with the pods using it.

Each GPU container gets one process per device it uses, with a pid whose
``/proc/<pid>/cgroup`` points at the container, so the exporter's real
pid → container mapping attributes it. Training runs hot and steady,
inference follows the daily rhythm; time-sliced GPUs carry several pods.
"""

from __future__ import annotations

import itertools
import random

from exporter.simulate.cgroupwriter import CgroupTree
from exporter.simulate.dynamics import diurnal
from exporter.simulate.fakenvml import FakeGPU, FakeMIG, FakeNVML, FakeProcess
from exporter.simulate.workload import SimContainer, SimNode, SimPod

__all__ = ["GPUFleet"]

GiB = 1024**3
_A100_MEMORY = 40 * GiB
_IDLE_MW, _BUSY_MW = 55_000, 400_000


class GPUFleet:
    """Owns the fake NVML of a simulated node (None on a CPU node)."""

    def __init__(self, node: SimNode, tree: CgroupTree, rng: random.Random) -> None:
        self._tree, self._rng = tree, rng
        self._pids = itertools.count(41_000)
        self._devices: dict[str, FakeGPU | FakeMIG] = {}
        self._procs: dict[int, tuple[str, float, bool]] = {}  # pid → (uuid, SM base %, steady)
        self.nvml: FakeNVML | None = None
        if not node.gpus:
            return
        name = "NVIDIA A100-SXM4-40GB"
        gpus = []
        for g in node.gpus:
            mig = None
            if g.mode == "mig":
                mig = [FakeMIG(uuid=u, profile=p, slice_count=s, memory_total=s * 5 * GiB,
                               gpu_instance_id=i + 1) for i, (u, p, s) in enumerate(g.mig)]
                self._devices.update({m.uuid: m for m in mig})
            gpu = FakeGPU(uuid=g.uuid, name=name, memory_total=_A100_MEMORY,
                          memory_used=0, util_pct=0, power_mw=_IDLE_MW, mig=mig)
            self._devices[g.uuid] = gpu
            gpus.append(gpu)
        self.nvml = FakeNVML(gpus)

    def start_processes(self, pod: SimPod, c: SimContainer) -> None:
        """Start one process per device the container uses, with its /proc entry."""
        if self.nvml is None or not c.gpus:
            return
        steady = pod.namespace == "ml-training"
        with self.nvml.lock:
            for uuid, base in c.gpus:
                pid = next(self._pids)
                device = self._devices[uuid]
                share = 0.6 if steady else 0.15
                device.processes.append(FakeProcess(
                    pid=pid, used_memory=int(device.memory_total * share), sm_util_samples=[]))
                self._tree.write_process(pid, pod, c.container_id)
                self._procs[pid] = (uuid, base, steady)
                c.pids.append(pid)

    def stop_processes(self, c: SimContainer) -> None:
        """The container restarted: its processes are gone."""
        if self.nvml is None:
            return
        with self.nvml.lock:
            for pid in c.pids:
                uuid, _base, _steady = self._procs.pop(pid)
                device = self._devices[uuid]
                device.processes = [p for p in device.processes if p.pid != pid]
                self._tree.remove_process(pid)
            c.pids.clear()

    def advance(self, t: float) -> None:
        """Add one utilisation sample per process; update device utilisation, memory, power."""
        if self.nvml is None:
            return
        with self.nvml.lock:
            busy: dict[str, float] = {}
            for uuid, device in self._devices.items():
                total = 0
                for proc in device.processes:
                    _uuid, base, steady = self._procs[proc.pid]
                    level = base if steady else base * diurnal(t)
                    sample = max(0, min(100, round(level + self._rng.gauss(0, 3))))
                    proc.sm_util_samples.append(sample)
                    total += sample
                busy[uuid] = min(100, total)
                device.memory_used = sum(p.used_memory or 0 for p in device.processes)
            for device in self.nvml.gpus:
                if device.mig is not None:  # the parent sums its instances, by slice
                    slices = [m for m in device.mig if m is not None]
                    device.memory_used = sum(m.memory_used for m in slices)
                    level = sum(busy[m.uuid] * m.slice_count for m in slices) / 7
                else:
                    level = busy[device.uuid]
                    device.util_pct = round(level)
                device.power_mw = round(_IDLE_MW + (_BUSY_MW - _IDLE_MW) * level / 100)
