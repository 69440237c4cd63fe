"""A stand-in for the pynvml module: configurable GPUs, MIG instances and processes.

Tests and the simulated node hand a :class:`FakeNVML` to the GPU reader where a real
node hands it ``pynvml``. It behaves like the real module at the seam the reader uses:
the same function names and arguments, the REAL pynvml exception classes (raised as
``pynvml.NVMLError(code)``, which picks the subclass) and the REAL ctypes structs, so
code proven on the fake reads fields exactly as on hardware. Driver behaviour worth
reproducing is reproduced: MIG instances answer NotSupported to utilization and power,
process utilization answers NotFound when no sample is newer than the timestamp, and a
lost GPU answers GpuIsLost to every call. Anything else of pynvml (constants, structs,
exception classes) is forwarded; its functions are not, since they would need the library.

The configuration is plain mutable dataclasses: a simulation changes ``util_pct``,
``memory_used`` or ``processes`` between scrapes and appends to ``sm_util_samples``;
the fake stamps a sample with its own clock the first time it is asked for it.
Every call holds ``lock``; a simulation doing several changes at once can hold it too.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynvml

__all__ = ["FakeGPU", "FakeMIG", "FakeNVML", "FakeProcess"]

MiB = 1024 * 1024
_NA_ULL = pynvml.NVML_VALUE_NOT_AVAILABLE_ulonglong.value
_NA_UINT = pynvml.NVML_VALUE_NOT_AVAILABLE_uint.value


@dataclass
class FakeProcess:
    """A compute process; ``used_memory`` None means NVML cannot report it.

    ``running`` False: it exited; NVML no longer lists it but still has its samples.
    """

    pid: int
    used_memory: int | None = 0
    sm_util_samples: list[int] = field(default_factory=list)  # smUtil percent, append-only
    running: bool = True
    _stamps: list[int] = field(default_factory=list, init=False, repr=False, compare=False)


@dataclass
class FakeMIG:
    """A MIG device (GPU instance); its name is "<parent name> MIG <profile>" unless given."""

    uuid: str
    profile: str
    slice_count: int
    memory_total: int
    memory_used: int = 0
    processes: list[FakeProcess] = field(default_factory=list)
    name: str | None = None
    gpu_instance_id: int = 0
    lost: bool = False
    faults: dict[str, int] = field(default_factory=dict)  # see FakeGPU.faults


@dataclass
class FakeGPU:
    """A physical GPU. ``mig`` None = MIG off; a list = MIG on, one entry per slot (None = empty).

    ``util_pct`` or ``power_mw`` None make those calls NotSupported; ``processes`` are
    ignored while MIG is on (they belong to the instances then).
    """

    uuid: str
    name: str
    memory_total: int
    memory_used: int = 0
    util_pct: int | None = 0
    power_mw: int | None = 0
    mig: list[FakeMIG | None] | None = None
    processes: list[FakeProcess] = field(default_factory=list)
    memory_reserved: int = 0  # driver-reserved; memory v1 counts it as used, v2 apart
    max_mig_devices: int = 7
    mig_capable: bool = True  # False: nvmlDeviceGetMigMode answers NotSupported
    process_util_supported: bool = True
    lost: bool = False
    #: Function name without version suffix → NVML error code it raises for this device.
    faults: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Handle:
    """Opaque device handle, as c_nvmlDevice_t is to the caller."""

    gpu: int
    slot: int | None = None


def _api(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Count the call, hold the lock and refuse to answer before nvmlInit, like NVML."""

    @functools.wraps(fn)
    def call(self: FakeNVML, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.calls[fn.__name__] += 1
            if fn.__name__ != "nvmlInit" and self._refcount == 0:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
            return fn(self, *args, **kwargs)

    return call


class FakeNVML:
    """Module-like fake of pynvml for the functions :class:`exporter.gpu.GPUReader` calls."""

    def __init__(
        self, gpus: list[FakeGPU] | None = None, *, library_present: bool = True,
        init_error: int | None = None,
    ) -> None:
        self.gpus: list[FakeGPU] = list(gpus or [])
        self.library_present = library_present  # False: nvmlInit raises LibraryNotFound
        self.init_error = init_error  # e.g. NVML_ERROR_DRIVER_NOT_LOADED
        self.lock = threading.RLock()
        self.calls: Counter[str] = Counter()
        self._refcount = 0
        self._clock = 1_700_000_000_000_000  # µs, like NVML's CPU timestamps

    def __getattr__(self, name: str) -> Any:
        value = getattr(pynvml, name)
        if inspect.isfunction(value):
            raise AttributeError(f"FakeNVML does not implement {name}")
        return value

    def _device(self, handle: _Handle, call: str) -> tuple[FakeGPU, FakeMIG | None]:
        gpu = self.gpus[handle.gpu]
        mig = None if handle.slot is None else (gpu.mig or [])[handle.slot]
        for dev in (gpu, mig):
            if dev is not None and dev.lost:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
            if dev is not None and call in dev.faults:
                raise pynvml.NVMLError(dev.faults[call])
        return gpu, mig

    def _stamped(self, proc: FakeProcess) -> list[int]:
        if len(proc._stamps) > len(proc.sm_util_samples):  # list replaced: all samples new
            proc._stamps.clear()
        while len(proc._stamps) < len(proc.sm_util_samples):
            self._clock += 1000
            proc._stamps.append(self._clock)
        return proc._stamps

    @_api
    def nvmlInit(self) -> None:
        if not self.library_present:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)
        self._refcount += 1

    @_api
    def nvmlShutdown(self) -> None:
        self._refcount -= 1

    @_api
    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    @_api
    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        if not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        handle = _Handle(index)
        self._device(handle, "nvmlDeviceGetHandleByIndex")
        return handle

    @_api
    def nvmlDeviceGetIndex(self, handle: _Handle) -> int:
        self._device(handle, "nvmlDeviceGetIndex")
        return handle.gpu

    @_api
    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        gpu, mig = self._device(handle, "nvmlDeviceGetUUID")
        return (mig or gpu).uuid

    @_api
    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        gpu, mig = self._device(handle, "nvmlDeviceGetName")
        if mig is None:
            return gpu.name
        return mig.name if mig.name is not None else f"{gpu.name} MIG {mig.profile}"

    @_api
    def nvmlDeviceGetMemoryInfo(
        self, handle: _Handle, version: int | None = None
    ) -> pynvml.c_nvmlMemory_t | pynvml.c_nvmlMemory_v2_t:
        gpu, mig = self._device(handle, "nvmlDeviceGetMemoryInfo")
        total, used = (mig.memory_total, mig.memory_used) if mig else (
            gpu.memory_total, gpu.memory_used)
        reserved = 0 if mig else gpu.memory_reserved
        free = total - reserved - used
        if not version:
            return pynvml.c_nvmlMemory_t(total=total, free=free, used=used + reserved)
        if version != pynvml.nvmlMemory_v2:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        return pynvml.c_nvmlMemory_v2_t(
            version=version, total=total, reserved=reserved, free=free, used=used)

    @_api
    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> pynvml.c_nvmlUtilization_t:
        gpu, mig = self._device(handle, "nvmlDeviceGetUtilizationRates")
        if mig is not None or gpu.mig is not None or gpu.util_pct is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)  # as MIG devices/MIG-on GPUs
        return pynvml.c_nvmlUtilization_t(gpu=gpu.util_pct, memory=0)

    @_api
    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        gpu, mig = self._device(handle, "nvmlDeviceGetPowerUsage")
        if mig is not None or gpu.power_mw is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu.power_mw

    @_api
    def nvmlDeviceGetMigMode(self, handle: _Handle) -> list[int]:
        gpu, mig = self._device(handle, "nvmlDeviceGetMigMode")
        if mig is not None or not gpu.mig_capable:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mode = pynvml.NVML_DEVICE_MIG_DISABLE if gpu.mig is None else pynvml.NVML_DEVICE_MIG_ENABLE
        return [mode, mode]

    @_api
    def nvmlDeviceGetMaxMigDeviceCount(self, handle: _Handle) -> int:
        gpu, _ = self._device(handle, "nvmlDeviceGetMaxMigDeviceCount")
        return gpu.max_mig_devices if gpu.mig_capable else 0

    @_api
    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: _Handle, index: int) -> _Handle:
        gpu, _ = self._device(handle, "nvmlDeviceGetMigDeviceHandleByIndex")
        if gpu.mig is None or not 0 <= index < gpu.max_mig_devices:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if index >= len(gpu.mig) or gpu.mig[index] is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return _Handle(handle.gpu, index)

    @_api
    def nvmlDeviceGetAttributes(self, handle: _Handle) -> pynvml.c_nvmlDeviceAttributes:
        gpu, mig = self._device(handle, "nvmlDeviceGetAttributes")
        if mig is None:
            return pynvml.c_nvmlDeviceAttributes(memorySizeMB=gpu.memory_total // MiB)
        return pynvml.c_nvmlDeviceAttributes(
            gpuInstanceSliceCount=mig.slice_count, computeInstanceSliceCount=mig.slice_count,
            memorySizeMB=mig.memory_total // MiB)

    nvmlDeviceGetAttributes_v2 = nvmlDeviceGetAttributes

    @_api
    def nvmlDeviceGetComputeRunningProcesses_v3(self, handle: _Handle) -> list[Any]:
        """Friendly objects from c_nvmlProcessInfo_v3_t, None for unknown memory, as pynvml."""
        gpu, mig = self._device(handle, "nvmlDeviceGetComputeRunningProcesses")
        if mig is not None:
            listed = [(p, mig.gpu_instance_id, 0) for p in mig.processes]
        elif gpu.mig is not None:  # the parent lists every instance's processes
            listed = [(p, m.gpu_instance_id, 0) for m in gpu.mig if m for p in m.processes]
        else:
            listed = [(p, _NA_UINT, _NA_UINT) for p in gpu.processes]
        result = []
        for proc, gi, ci in (x for x in listed if x[0].running):
            mem = _NA_ULL if proc.used_memory is None else proc.used_memory
            obj = pynvml.nvmlStructToFriendlyObject(pynvml.c_nvmlProcessInfo_v3_t(
                pid=proc.pid, usedGpuMemory=mem, gpuInstanceId=gi, computeInstanceId=ci))
            if obj.usedGpuMemory == _NA_ULL:
                obj.usedGpuMemory = None
            result.append(obj)
        return result

    nvmlDeviceGetComputeRunningProcesses_v2 = nvmlDeviceGetComputeRunningProcesses_v3
    nvmlDeviceGetComputeRunningProcesses = nvmlDeviceGetComputeRunningProcesses_v3

    @_api
    def nvmlDeviceGetProcessUtilization(
        self, handle: _Handle, timeStamp: int
    ) -> list[pynvml.c_nvmlProcessUtilizationSample_t]:
        gpu, mig = self._device(handle, "nvmlDeviceGetProcessUtilization")
        if mig is not None or gpu.mig is not None or not gpu.process_util_supported:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        samples = [
            pynvml.c_nvmlProcessUtilizationSample_t(pid=p.pid, timeStamp=ts, smUtil=sm)
            for p in gpu.processes
            for ts, sm in zip(self._stamped(p), p.sm_util_samples, strict=True)
            if ts > timeStamp
        ]
        if not samples:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return sorted(samples, key=lambda s: s.timeStamp)
