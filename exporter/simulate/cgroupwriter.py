"""Writes a simulated node's cgroup v2 tree and /proc/<pid>/cgroup files.

The layout is what a kubelet with the systemd driver and containerd makes
(``kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/
cri-containerd-<id>.scope``), with the same files and formats the kernel
writes, so the exporter's real cgroup reader reads it unchanged. Files are
replaced atomically: a concurrent scrape sees the old or the new value.
"""

from __future__ import annotations

import os
import shutil

from exporter.simulate.workload import SimContainer, SimPod

__all__ = ["CgroupTree"]

_CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma misc\n"


def _write(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


class CgroupTree:
    """A cgroup v2 root with the kubepods hierarchy, plus a fake ``/proc``."""

    def __init__(self, cgroup_root: str, proc_root: str) -> None:
        self.cgroup_root, self.proc_root = cgroup_root, proc_root
        os.makedirs(os.path.join(cgroup_root, "kubepods.slice"), exist_ok=True)
        os.makedirs(proc_root, exist_ok=True)
        _write(os.path.join(cgroup_root, "cgroup.controllers"), _CONTROLLERS)

    def pod_path(self, pod: SimPod) -> str:
        """Relative cgroup path of the pod (as in /proc/<pid>/cgroup)."""
        uid = pod.uid.replace("-", "_")
        if pod.qos == "Guaranteed":
            return f"/kubepods.slice/kubepods-pod{uid}.slice"
        qos = pod.qos.lower()
        return f"/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{uid}.slice"

    def container_path(self, pod: SimPod, container_id: str) -> str:
        """Relative cgroup path of one container."""
        return f"{self.pod_path(pod)}/cri-containerd-{container_id}.scope"

    def write_container(self, pod: SimPod, c: SimContainer) -> None:
        """Write the container's cpu.stat, memory.current and memory.stat."""
        path = self.cgroup_root + self.container_path(pod, c.container_id)
        os.makedirs(path, exist_ok=True)
        usec = round(c.cpu_seconds * 1e6)
        user = usec * 7 // 10
        _write(f"{path}/cpu.stat",
               f"usage_usec {usec}\nuser_usec {user}\nsystem_usec {usec - user}\n"
               f"nr_periods {round(c.periods)}\nnr_throttled {round(c.throttled_periods)}\n"
               f"throttled_usec {round(c.throttled_seconds * 1e6)}\n"
               "nr_bursts 0\nburst_usec 0\n")
        anon = round(c.working_set * 0.85)
        inactive_file = round(c.working_set * 0.2)
        active_file = round(c.working_set) - anon
        _write(f"{path}/memory.current", f"{round(c.working_set) + inactive_file}\n")
        _write(f"{path}/memory.stat",
               f"anon {anon}\nfile {inactive_file + active_file}\nkernel 0\nshmem 0\n"
               f"inactive_anon {anon}\nactive_anon 0\ninactive_file {inactive_file}\n"
               f"active_file {active_file}\nunevictable 0\n")

    def write_sandbox(self, pod: SimPod, sandbox_id: str) -> None:
        """The pod's pause container: a cgroup the exporter must skip."""
        path = self.cgroup_root + self.container_path(pod, sandbox_id)
        os.makedirs(path, exist_ok=True)
        _write(f"{path}/cpu.stat", "usage_usec 51234\nnr_periods 0\nnr_throttled 0\n"
                                   "throttled_usec 0\n")
        _write(f"{path}/memory.current", "385024\n")
        _write(f"{path}/memory.stat", "anon 86016\ninactive_file 0\n")

    def remove_container(self, pod: SimPod, container_id: str) -> None:
        """A container exited: its scope goes away."""
        shutil.rmtree(self.cgroup_root + self.container_path(pod, container_id),
                      ignore_errors=True)

    def write_process(self, pid: int, pod: SimPod, container_id: str) -> None:
        """``/proc/<pid>/cgroup`` of a process running in the container (cgroup v2)."""
        os.makedirs(os.path.join(self.proc_root, str(pid)), exist_ok=True)
        _write(os.path.join(self.proc_root, str(pid), "cgroup"),
               f"0::{self.container_path(pod, container_id)}\n")

    def remove_process(self, pid: int) -> None:
        """The process exited."""
        shutil.rmtree(os.path.join(self.proc_root, str(pid)), ignore_errors=True)
