"""A running simulated node: API server, cgroup tree, /proc and NVML, moving in time.

The exporter is pointed at it exactly as at a real node: a cgroup root, a proc
root, an API server URL and a pynvml module. Only the sources are simulated;
every byte the exporter reads goes through its real readers and the real
``kubernetes`` client.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

from exporter.simulate.apiserver import FakeKubeAPI
from exporter.simulate.cgroupwriter import CgroupTree
from exporter.simulate.dynamics import restart, step
from exporter.simulate.gpufleet import GPUFleet
from exporter.simulate.objects import node_object, pod_object
from exporter.simulate.workload import (
    SimContainer,
    SimNode,
    SimPod,
    generate_node,
    new_container_id,
)

__all__ = ["SimulatedNode"]


class SimulatedNode:
    """One simulated node; use as a context manager, then ``advance`` or run in background."""

    def __init__(self, workdir: str, *, seed: int = 1, pods: int = 40, gpu: bool = True,
                 start: float | None = None) -> None:
        self.model: SimNode = generate_node(seed, pods, gpu)
        self._rng = random.Random(seed ^ 0x5EED)
        self.cgroup_root = os.path.join(workdir, "sys-fs-cgroup")
        self.proc_root = os.path.join(workdir, "proc")
        self.tree = CgroupTree(self.cgroup_root, self.proc_root)
        self.api = FakeKubeAPI()
        self.gpus = GPUFleet(self.model, self.tree, self._rng)
        self.now = time.time() if start is None else start
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- identity --------------------------------------------------------------------------
    @property
    def node_name(self) -> str:
        """The simulated node's name."""
        return self.model.name

    @property
    def instance_type(self) -> str:
        """Its cloud instance type."""
        return self.model.instance.name

    @property
    def pods(self) -> list[SimPod]:
        """Its pods."""
        return self.model.pods

    @property
    def api_url(self) -> str:
        """URL of the local API server."""
        return self.api.url

    @property
    def nvml(self) -> Any:
        """The fake pynvml module to hand the exporter (None on a CPU node)."""
        return self.gpus.nvml

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> SimulatedNode:
        self.api.start()
        self.api.create(node_object(self.model))
        for owner in self.model.owners:
            self.api.create(owner)
        for pod in self.model.pods:
            self._start_pod(pod)
            self.api.create(pod_object(pod, self.model.name, self.now))
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the background ticker and the API server."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.api.close()

    def _start_pod(self, pod: SimPod) -> None:
        self.tree.write_sandbox(pod, new_container_id(self._rng))
        for c in pod.containers:
            if c.init:
                c.container_id = c.container_id or new_container_id(self._rng)
                continue  # ran to completion before the app started; its cgroup is gone
            c.container_id = c.container_id or new_container_id(self._rng)
            c.started_at = self.now
            c.working_set = c.mem_base
            self.tree.write_container(pod, c)
            self.gpus.start_processes(pod, c)

    # --- time ------------------------------------------------------------------------------
    def advance(self, t: float) -> int:
        """Move every container to time ``t``; returns how many restarted."""
        with self._lock:
            dt = t - self.now
            if dt <= 0:
                return 0
            restarts = 0
            for pod in self.model.pods:
                changed = False
                for c in pod.containers:
                    if c.init:
                        continue
                    old_id = c.container_id
                    if step(c, t, dt, self._rng):
                        restarts += 1
                        changed = True
                        self._replaced(pod, c, old_id)
                    self.tree.write_container(pod, c)
                if changed:
                    self.api.update(pod_object(pod, self.model.name, self.now))
            self.gpus.advance(t)
            self.now = t
            return restarts

    def restart_container(self, pod: SimPod, name: str) -> str:
        """Restart one container now (as a crash would); returns its new container ID."""
        with self._lock:
            c = next(c for c in pod.containers if c.name == name and not c.init)
            old_id = c.container_id
            restart(c, self.now, self._rng)
            self._replaced(pod, c, old_id)
            self.tree.write_container(pod, c)
            self.api.update(pod_object(pod, self.model.name, self.now))
            return c.container_id

    def _replaced(self, pod: SimPod, c: SimContainer, old_id: str) -> None:
        self.tree.remove_container(pod, old_id)
        self.gpus.stop_processes(c)
        self.gpus.start_processes(pod, c)

    def run_in_background(self, tick: float) -> None:
        """Advance to the wall clock every ``tick`` seconds until closed."""
        def loop() -> None:
            while not self._stop.wait(tick):
                self.advance(time.time())
        self._thread = threading.Thread(target=loop, name="sim-node", daemon=True)
        self._thread.start()
