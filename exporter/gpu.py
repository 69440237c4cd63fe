"""GPUs, MIG instances and their processes, read through NVML (pynvml).

The reader takes the pynvml module as an argument rather than importing it, so the
same code runs on hardware and against :class:`exporter.simulate.fakenvml.FakeNVML`.
It catches only pynvml's own errors, reached through that module: NotSupported is a
property of the device (MIG instances have no utilization or power) and becomes NaN,
not an error; anything else skips the device it hit and is counted, so one lost GPU
never hides the others. What NVML answers NotSupported is remembered per device,
because it never changes and a scrape should cost as few driver calls as possible.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["GPUDevice", "GPUProcess", "GPUReader", "GPUSnapshot"]

log = logging.getLogger(__name__)

NAN = math.nan
#: "NVIDIA A100-SXM4-40GB MIG 1g.5gb" → "1g.5gb"; also "MIG 1c.3g.40gb", "MIG 1g.10gb+me".
_PROFILE_IN_NAME = re.compile(r"\bMIG\s+(\S+)\s*$")


@dataclass(frozen=True, slots=True)
class GPUDevice:
    """A physical GPU or a MIG instance; MIG instances name their parent."""

    uuid: str
    index: int  # NVML index of the physical GPU (a MIG instance carries its parent's)
    model: str
    mig_profile: str  # "" for a whole GPU
    parent_uuid: str  # "" for a whole GPU
    physical_share: float  # 1.0, or the instance's slices over the parent's MIG slots
    memory_total_bytes: float
    memory_used_bytes: float
    utilization_ratio: float  # 0-1; NaN where NVML does not support it (MIG)
    power_watts: float  # NaN where unsupported; always NaN for MIG instances


@dataclass(frozen=True, slots=True)
class GPUProcess:
    """A compute process on one device, as NVML lists it (pid → container is done elsewhere)."""

    pid: int
    gpu_uuid: str
    memory_used_bytes: float  # NaN when NVML cannot tell (e.g. WDDM, no permission)
    sm_utilization_ratio: float  # mean smUtil/100 since the previous read; NaN if unsupported


@dataclass(frozen=True, slots=True)
class GPUSnapshot:
    """One scrape's worth of GPU data; ``errors`` counts devices that had to be skipped."""

    devices: tuple[GPUDevice, ...]
    processes: tuple[GPUProcess, ...]
    errors: int


EMPTY = GPUSnapshot((), (), 0)


def _text(value: str | bytes) -> str:
    """pynvml ≥ 11.5 returns str; older releases returned bytes."""
    return value.decode() if isinstance(value, bytes) else value


class GPUReader:
    """Reads every GPU of the node once per scrape; see the module docstring for the rules."""

    def __init__(self, nvml: Any | None) -> None:
        self._nvml = nvml
        self.available = False
        self.reason = "not started"
        self._started = False
        self._warned = False
        self._logged: set[str] = set()
        #: (device uuid, call) pairs that answered NotSupported: never asked again.
        self._unsupported: set[tuple[str, str]] = set()
        #: Newest process-utilization sample seen per device uuid (µs, NVML's clock).
        self._last_seen: dict[str, int] = {}
        self._mem_version: int | None = None
        self._procs_fn: str = "nvmlDeviceGetComputeRunningProcesses"

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> bool:
        """Initialise NVML; False (and ``reason``) on a node without a usable driver."""
        nv = self._nvml
        if self._started:
            return True
        if nv is None:
            return self._unavailable("pynvml is not installed")
        try:
            nv.nvmlInit()
        except nv.NVMLError as err:
            return self._unavailable(f"NVML init failed: {err}")
        self._started = self.available = True
        self.reason = ""
        # Memory v2 reports driver-reserved memory apart from "used", as nvidia-smi does.
        self._mem_version = getattr(nv, "nvmlMemory_v2", None)
        # The unversioned name raises NVMLLibraryMismatchError (not an NVMLError) on old
        # drivers, so call the versioned one and fall back to _v2 on FunctionNotFound.
        if hasattr(nv, "nvmlDeviceGetComputeRunningProcesses_v3"):
            self._procs_fn = "nvmlDeviceGetComputeRunningProcesses_v3"
        return True

    def _unavailable(self, reason: str) -> bool:
        self.available, self.reason = False, reason
        if not self._warned:
            self._warned = True
            log.warning("GPU metrics disabled: %s", reason)
        return False

    def close(self) -> None:
        """Shut NVML down if :meth:`start` initialised it."""
        if self._started:
            self._started = self.available = False
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError as err:
                log.debug("nvmlShutdown: %s", err)

    # -- reading ----------------------------------------------------------------------------
    def read(self) -> GPUSnapshot:
        """Every device and process NVML can report now; never raises NVMLError."""
        if not self.available:
            return EMPTY
        nv = self._nvml
        devices: list[GPUDevice] = []
        processes: list[GPUProcess] = []
        errors = 0
        try:
            count = nv.nvmlDeviceGetCount()
        except nv.NVMLError as err:
            self._log_once(f"nvmlDeviceGetCount: {err}")
            return GPUSnapshot((), (), 1)
        for index in range(count):
            try:
                errors += self._read_gpu(index, devices, processes)
            except nv.NVMLError as err:
                self._log_once(f"GPU {index} skipped: {err}")
                errors += 1
        if not errors:  # forget devices that are gone (MIG reconfigured); keep them on errors
            seen = {d.uuid for d in devices}
            self._last_seen = {u: t for u, t in self._last_seen.items() if u in seen}
        return GPUSnapshot(tuple(devices), tuple(processes), errors)

    def _log_once(self, message: str) -> None:
        """A lost GPU fails every scrape: warn once per distinct failure, count every time."""
        if message not in self._logged:
            self._logged.add(message)
            log.warning("%s", message)

    def _read_gpu(self, index: int, devices: list[GPUDevice], procs: list[GPUProcess]) -> int:
        """Append GPU ``index`` (and its MIG instances); return the instances that failed."""
        nv = self._nvml
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        uuid = _text(nv.nvmlDeviceGetUUID(handle))
        model = _text(nv.nvmlDeviceGetName(handle))
        total, used = self._memory(handle)
        mode = self._optional(uuid, "nvmlDeviceGetMigMode", handle)
        mig = mode is not None and mode[0] == nv.NVML_DEVICE_MIG_ENABLE
        # Utilization is NotSupported only while MIG is on, and MIG can be switched off.
        util_key = f"{uuid}/mig" if mig else uuid
        util = self._optional(util_key, "nvmlDeviceGetUtilizationRates", handle)
        power = self._optional(uuid, "nvmlDeviceGetPowerUsage", handle)
        gpu = GPUDevice(uuid, index, model, "", "", 1.0, total, used,
                        NAN if util is None else util.gpu / 100.0,
                        NAN if power is None else power / 1000.0)
        if not mig:  # processes last: a failure before them must not consume samples
            found = self._processes(handle, uuid)
            devices.append(gpu)
            procs.extend(found)
            return 0
        slots = nv.nvmlDeviceGetMaxMigDeviceCount(handle)
        children: list[GPUDevice] = []
        child_procs: list[GPUProcess] = []
        failed = 0
        for slot in range(slots):
            try:
                mig_handle = nv.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except nv.NVMLError_NotFound:
                continue  # empty slot
            try:
                children.append(self._read_mig(mig_handle, gpu, slots, child_procs))
            except nv.NVMLError as err:
                self._log_once(f"MIG device {index}/{slot} skipped: {err}")
                failed += 1
        devices.append(gpu)
        devices.extend(children)
        procs.extend(child_procs)
        return failed

    def _read_mig(
        self, handle: Any, parent: GPUDevice, slots: int, procs: list[GPUProcess]
    ) -> GPUDevice:
        nv = self._nvml
        uuid = _text(nv.nvmlDeviceGetUUID(handle))
        name = _text(nv.nvmlDeviceGetName(handle))
        total, used = self._memory(handle)
        attrs = nv.nvmlDeviceGetAttributes(handle)
        match = _PROFILE_IN_NAME.search(name)
        # NVIDIA names profiles by slices and memory rounded up to whole GiB (4864 MiB → 5gb).
        profile = match.group(1) if match else (
            f"{attrs.gpuInstanceSliceCount}g.{math.ceil(attrs.memorySizeMB / 1024)}gb")
        util = self._optional(uuid, "nvmlDeviceGetUtilizationRates", handle)
        procs.extend(self._processes(handle, uuid))
        return GPUDevice(uuid, parent.index, parent.model, profile, parent.uuid,
                         attrs.gpuInstanceSliceCount / slots if slots else NAN, total, used,
                         NAN if util is None else util.gpu / 100.0, NAN)

    def _optional(self, uuid: str, call: str, handle: Any) -> Any | None:
        """``nvml.<call>(handle)``, or None when the device does not support it (asked once)."""
        key = (uuid, call)
        if key in self._unsupported:
            return None
        try:
            return getattr(self._nvml, call)(handle)
        except self._nvml.NVMLError_NotSupported:
            self._unsupported.add(key)
            return None

    def _memory(self, handle: Any) -> tuple[float, float]:
        nv = self._nvml
        if self._mem_version is not None:
            try:
                mem = nv.nvmlDeviceGetMemoryInfo(handle, version=self._mem_version)
                return float(mem.total), float(mem.used)
            except (nv.NVMLError_FunctionNotFound, nv.NVMLError_NotSupported):
                self._mem_version = None  # driver older than v2: "used" includes reserved
        mem = nv.nvmlDeviceGetMemoryInfo(handle)
        return float(mem.total), float(mem.used)

    def _processes(self, handle: Any, uuid: str) -> list[GPUProcess]:
        """Compute processes of one device with their SM share since the previous read."""
        nv = self._nvml
        try:
            running = getattr(nv, self._procs_fn)(handle)
        except nv.NVMLError_FunctionNotFound:
            self._procs_fn = "nvmlDeviceGetComputeRunningProcesses_v2"
            running = nv.nvmlDeviceGetComputeRunningProcesses_v2(handle)
        memory: dict[int, float] = {}
        for info in running:  # a pid may appear once per compute instance: add them up
            raw = info.usedGpuMemory
            unknown = raw is None or raw == nv.NVML_VALUE_NOT_AVAILABLE_ulonglong.value
            memory[info.pid] = memory.get(info.pid, 0.0) + (NAN if unknown else float(raw))
        sm = self._sm_ratios(handle, uuid)
        # A pid with samples but no longer listed exited since; it held no memory now.
        return [GPUProcess(pid, uuid, memory.get(pid, 0.0),
                           NAN if sm is None else sm.get(pid, 0.0))
                for pid in sorted(memory.keys() | (sm or {}).keys())]

    def _sm_ratios(self, handle: Any, uuid: str) -> dict[int, float] | None:
        """pid → mean smUtil/100 of samples newer than the last read; None if unsupported."""
        nv = self._nvml
        key = (uuid, "nvmlDeviceGetProcessUtilization")
        if key in self._unsupported:
            return None
        last = self._last_seen.get(uuid, 0)
        try:
            samples = nv.nvmlDeviceGetProcessUtilization(handle, last)
        except nv.NVMLError_NotFound:
            return {}  # no sample since `last`: every process was idle
        except nv.NVMLError_NotSupported:
            self._unsupported.add(key)
            return None
        sums: dict[int, list[int]] = {}
        newest = last
        for s in samples:
            if s.timeStamp <= last:  # zeroed padding or already counted
                continue
            newest = max(newest, s.timeStamp)
            acc = sums.setdefault(s.pid, [0, 0])
            acc[0] += s.smUtil
            acc[1] += 1
        self._last_seen[uuid] = newest
        return {pid: total / n / 100.0 for pid, (total, n) in sums.items()}
