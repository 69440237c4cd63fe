"""GPUReader against FakeNVML, configured by hand and from real nvidia-smi captures."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pynvml
import pytest

from exporter.gpu import GPUReader, GPUSnapshot
from exporter.simulate.fakenvml import FakeGPU, FakeMIG, FakeNVML, FakeProcess

FIXTURES = Path(__file__).parent / "fixtures" / "gpu"
MiB = 1024 * 1024
GiB = 1024 * MiB


def started(*gpus: FakeGPU) -> tuple[GPUReader, FakeNVML]:
    fake = FakeNVML(list(gpus))
    reader = GPUReader(fake)
    assert reader.start() and reader.available
    return reader, fake


def sm(snap: GPUSnapshot) -> dict[int, float]:
    return {p.pid: p.sm_utilization_ratio for p in snap.processes}


def test_several_whole_gpus():
    reader, _ = started(
        FakeGPU("GPU-a", "NVIDIA L4", 24 * GiB, 3 * GiB, util_pct=37, power_mw=72_500),
        FakeGPU("GPU-b", "NVIDIA L4", 24 * GiB, 0, util_pct=100, power_mw=300_000))
    snap = reader.read()
    a, b = snap.devices
    assert snap.errors == 0 and snap.processes == ()
    assert (a.uuid, a.index, a.model, a.mig_profile, a.parent_uuid) == (
        "GPU-a", 0, "NVIDIA L4", "", "")
    assert a.physical_share == 1.0
    assert a.memory_total_bytes == 25_769_803_776  # 24 * 1024**3
    assert a.memory_used_bytes == 3_221_225_472  # 3 * 1024**3
    assert a.utilization_ratio == 0.37  # 37 % / 100
    assert a.power_watts == 72.5  # 72 500 mW / 1000
    assert (b.index, b.utilization_ratio, b.power_watts) == (1, 1.0, 300.0)  # 100/100, 300000/1000


def test_whole_gpu_with_two_containers_processes():
    reader, _ = started(FakeGPU("GPU-a", "NVIDIA L4", 24 * GiB, processes=[
        FakeProcess(1001, 2 * GiB, [40, 60]),  # container A: computing
        FakeProcess(2002, 512 * MiB, []),  # container B: holds memory, no samples
    ]))
    p = {x.pid: x for x in reader.read().processes}
    assert p[1001].gpu_uuid == p[2002].gpu_uuid == "GPU-a"
    assert p[1001].memory_used_bytes == 2_147_483_648  # 2 * 1024**3
    assert p[1001].sm_utilization_ratio == 0.5  # (40 + 60) / 2 / 100
    assert p[2002].memory_used_bytes == 536_870_912  # 512 * 1024**2
    assert p[2002].sm_utilization_ratio == 0.0  # listed, no samples: idle


def test_time_sliced_gpu_shared_by_three_processes():
    reader, _ = started(FakeGPU("GPU-ts", "NVIDIA A10G", 24 * GiB, processes=[
        FakeProcess(11, GiB, [10, 20, 30]), FakeProcess(12, GiB, [50, 50]),
        FakeProcess(13, GiB, [5, 10, 15, 20])]))
    assert sm(reader.read()) == pytest.approx({
        11: 0.2,  # (10 + 20 + 30) / 3 = 20 → 0.20
        12: 0.5,  # (50 + 50) / 2 = 50 → 0.50
        13: 0.125,  # (5 + 10 + 15 + 20) / 4 = 12.5 → 0.125
    })


def test_h100_mig_from_nvidia_smi_L():
    text = (FIXTURES / "nvidia-cloud-native-docs-h100-mig-single-nvidia-smi-L.txt").read_text()
    name, gpu_uuid = re.search(r"^GPU 0: (.+) \(UUID: (GPU-[0-9a-f-]+)\)$", text, re.M).groups()
    migs = [FakeMIG(uuid, profile, int(profile.split("g.")[0]), 10 * GiB)  # "1g" → 1 slice
            for profile, uuid in re.findall(r"MIG (\S+)\s+Device\s+\d+: \(UUID: (MIG-\S+)\)", text)]
    migs[3].processes.append(FakeProcess(4242, 3 * GiB, [90]))
    reader, _ = started(FakeGPU(gpu_uuid, name, 80 * GiB, util_pct=None, power_mw=115_000,
                                mig=list(migs)))
    snap = reader.read()
    parent, *children = snap.devices
    assert snap.errors == 0 and len(children) == 7  # 7 "MIG 1g.10gb" lines, + the parent
    assert (parent.uuid, parent.physical_share, parent.mig_profile) == (
        "GPU-b4895dbf-9350-2524-a89b-98161ddd9fe4", 1.0, "")
    assert parent.power_watts == 115.0  # 115 000 mW / 1000
    assert math.isnan(parent.utilization_ratio)  # NotSupported while MIG is on
    assert children[0].uuid == "MIG-3f6f389f-b0cc-5e5c-8e32-eaa8fd067902"
    assert children[6].uuid == "MIG-981c86e9-3607-57d7-9426-295347e4b925"
    for child in children:
        assert (child.mig_profile, child.parent_uuid, child.index) == ("1g.10gb", parent.uuid, 0)
        assert child.model == "NVIDIA H100 80GB HBM3"
        assert child.physical_share == pytest.approx(0.142857, abs=1e-6)  # 1 slice / 7 slots
        assert math.isnan(child.utilization_ratio) and math.isnan(child.power_watts)
    (proc,) = snap.processes  # on MIG device 3; per-process SM is NotSupported on MIG
    assert (proc.pid, proc.gpu_uuid) == (4242, "MIG-0f709664-740c-52b0-ae79-3e4c9ede6d3b")
    assert proc.memory_used_bytes == 3_221_225_472  # 3 * 1024**3
    assert math.isnan(proc.sm_utilization_ratio)


def test_a100_mig_from_nvidia_smi_xml():
    gpu = ET.parse(FIXTURES / "telegraf-a100-sxm4-v12.xml").getroot().find("gpu")

    def mib(node: ET.Element, path: str) -> int:
        return int(node.findtext(path).removesuffix(" MiB")) * MiB

    util = gpu.findtext("utilization/gpu_util")
    migs = [FakeMIG(f"MIG-xml-gi{m.findtext('gpu_instance_id')}",
                    # Profile not in the v12 XML: 14 SMs (98/7) and 19968 MiB on an
                    # A100-80GB is NVIDIA's "1g.20gb" (1 compute slice, 2/8 of memory).
                    "1g.20gb", 1, mib(m, "fb_memory_usage/total"), mib(m, "fb_memory_usage/used"),
                    gpu_instance_id=int(m.findtext("gpu_instance_id")))
            for m in gpu.iter("mig_device")]
    reader, _ = started(FakeGPU(
        gpu.findtext("uuid"), gpu.findtext("product_name"), mib(gpu, "fb_memory_usage/total"),
        mib(gpu, "fb_memory_usage/used"), memory_reserved=mib(gpu, "fb_memory_usage/reserved"),
        util_pct=None if util == "N/A" else int(util.split()[0]),
        power_mw=round(float(gpu.findtext("gpu_power_readings/power_draw")[:-2]) * 1000),
        mig=list(migs)))
    snap = reader.read()
    parent, *children = snap.devices
    assert snap.errors == 0
    assert (parent.uuid, parent.model) == (
        "GPU-513536b6-7d19-9063-b049-1e69664bb298", "NVIDIA A100-SXM4-80GB")
    assert parent.memory_total_bytes == 85_899_345_920  # 81920 MiB * 1048576
    assert parent.memory_used_bytes == 52_428_800  # 50 MiB * 1048576 (869 MiB reserved apart)
    assert parent.power_watts == pytest.approx(67.03)  # <power_draw>67.03 W
    assert math.isnan(parent.utilization_ratio)  # <gpu_util>N/A
    assert [c.uuid for c in children] == [f"MIG-xml-gi{gi}" for gi in (3, 4, 5, 6)]
    for child in children:
        assert child.memory_total_bytes == 20_937_965_568  # 19968 MiB * 1048576
        assert child.memory_used_bytes == 12_582_912  # 12 MiB * 1048576
        assert (child.mig_profile, child.physical_share) == ("1g.20gb", pytest.approx(1 / 7))


def test_mig_profile_from_name_or_attributes_and_empty_slots():
    reader, _ = started(FakeGPU("GPU-40", "NVIDIA A100-SXM4-40GB", 40 * GiB, mig=[
        FakeMIG("MIG-0", "1g.5gb", 1, 4864 * MiB),  # name "NVIDIA A100-SXM4-40GB MIG 1g.5gb"
        None,  # slot 1 empty: NotFound, not an error
        FakeMIG("MIG-2", "", 2, 9856 * MiB, name="NVIDIA A100-SXM4-40GB MIG"),
    ]))
    snap = reader.read()
    assert snap.errors == 0
    assert [(d.uuid, d.mig_profile) for d in snap.devices[1:]] == [
        ("MIG-0", "1g.5gb"),  # parsed from the name
        ("MIG-2", "2g.10gb"),  # fallback: 2 slices, ceil(9856 / 1024 = 9.625) = 10 GB
    ]
    assert snap.devices[2].physical_share == pytest.approx(2 / 7)  # 2 slices / 7 slots


def test_vanished_pid_and_unknown_memory_are_reported():
    reader, _ = started(FakeGPU("GPU-a", "NVIDIA T4", 16 * GiB, processes=[
        FakeProcess(4_000_000, GiB, [30]),  # pid above pid_max: gone from /proc, NVML lists it
        FakeProcess(77, None, [10]),  # usedGpuMemory None (e.g. WDDM): unknown
        FakeProcess(78, pynvml.NVML_VALUE_NOT_AVAILABLE_ulonglong.value, []),
        FakeProcess(79, GiB, [50, 70], running=False)]))  # exited: sampled, no longer listed
    p = {x.pid: x for x in reader.read().processes}
    assert (p[79].memory_used_bytes, p[79].sm_utilization_ratio) == (0.0, 0.6)  # 120 / 2 / 100
    assert p[4_000_000].memory_used_bytes == 1_073_741_824  # 1024**3
    assert p[4_000_000].sm_utilization_ratio == 0.3  # 30 / 100
    assert math.isnan(p[77].memory_used_bytes) and p[77].sm_utilization_ratio == 0.1  # 10/100
    assert math.isnan(p[78].memory_used_bytes)


def test_not_supported_power_and_utilization_are_nan_not_errors():
    reader, fake = started(FakeGPU("GPU-g", "NVIDIA GeForce RTX 3090", 24 * GiB, util_pct=None,
                                   power_mw=None, mig_capable=False))
    for _ in range(2):
        snap = reader.read()
        (dev,) = snap.devices
        assert snap.errors == 0 and dev.memory_total_bytes == 25_769_803_776  # 24 * 1024**3
        assert math.isnan(dev.utilization_ratio) and math.isnan(dev.power_watts)
    # NotSupported is a property of the device: asked on the first read only.
    assert fake.calls["nvmlDeviceGetPowerUsage"] == fake.calls["nvmlDeviceGetMigMode"] == 1
    assert fake.calls["nvmlDeviceGetUtilizationRates"] == 1


def test_process_utilization_not_found_means_idle():
    reader, fake = started(FakeGPU("GPU-a", "NVIDIA L4", 24 * GiB,
                                   processes=[FakeProcess(5, GiB, [])]))
    with pytest.raises(pynvml.NVMLError_NotFound):  # what the reader meets underneath
        fake.nvmlDeviceGetProcessUtilization(fake.nvmlDeviceGetHandleByIndex(0), 0)
    snap = reader.read()
    assert snap.errors == 0 and sm(snap) == {5: 0.0}


def test_lost_gpu_is_skipped_and_counted():
    reader, _ = started(FakeGPU("GPU-0", "NVIDIA L4", 24 * GiB, power_mw=30_000),
                        FakeGPU("GPU-1", "NVIDIA L4", 24 * GiB, lost=True),
                        FakeGPU("GPU-2", "NVIDIA L4", 24 * GiB, power_mw=40_000))
    snap = reader.read()
    assert snap.errors == 1
    assert [(d.uuid, d.index, d.power_watts) for d in snap.devices] == [
        ("GPU-0", 0, 30.0), ("GPU-2", 2, 40.0)]  # 30000 mW, 40000 mW / 1000


def test_lost_mig_instance_keeps_its_siblings():
    reader, _ = started(FakeGPU("GPU-m", "NVIDIA H100 80GB HBM3", 80 * GiB, mig=[
        FakeMIG("MIG-a", "3g.40gb", 3, 40 * GiB), FakeMIG("MIG-b", "3g.40gb", 3, 40 * GiB,
                                                            lost=True)]))
    snap = reader.read()
    assert snap.errors == 1 and [d.uuid for d in snap.devices] == ["GPU-m", "MIG-a"]


@pytest.mark.parametrize(("nvml", "reason"), [
    (None, "pynvml is not installed"),
    (FakeNVML(library_present=False), "NVML Shared Library Not Found"),
    (FakeNVML(init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED), "Driver Not Loaded"),
])
def test_no_nvml_means_unavailable_and_empty(nvml, reason):
    reader = GPUReader(nvml)
    assert reader.start() is False and not reader.available and reason in reader.reason
    assert reader.read() == GPUSnapshot((), (), 0)
    reader.close()  # nothing to shut down


def test_second_read_counts_only_new_samples():
    proc = FakeProcess(9, GiB, [20, 40])
    reader, _ = started(FakeGPU("GPU-a", "NVIDIA L4", 24 * GiB, processes=[proc]))
    assert sm(reader.read()) == {9: 0.3}  # (20 + 40) / 2 / 100
    proc.sm_util_samples.append(80)  # the simulation moves on between scrapes
    assert sm(reader.read()) == {9: 0.8}  # only the new sample: 80 / 100
    assert sm(reader.read()) == {9: 0.0}  # nothing new: NotFound → idle


def test_fake_answers_with_real_pynvml_types_and_errors():
    fake = FakeNVML([FakeGPU("GPU-a", "NVIDIA L4", 24 * GiB, processes=[FakeProcess(1, 0, [1])])])
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        fake.nvmlDeviceGetCount()
    fake.nvmlInit()
    h = fake.nvmlDeviceGetHandleByIndex(0)
    assert isinstance(fake.nvmlDeviceGetMemoryInfo(h), pynvml.c_nvmlMemory_t)
    assert isinstance(fake.nvmlDeviceGetUtilizationRates(h), pynvml.c_nvmlUtilization_t)
    (sample,) = fake.nvmlDeviceGetProcessUtilization(h, 0)
    assert isinstance(sample, pynvml.c_nvmlProcessUtilizationSample_t)
    assert fake.NVMLError is pynvml.NVMLError and fake.NVML_DEVICE_MIG_ENABLE == 1
    assert not hasattr(fake, "nvmlDeviceGetFanSpeed")  # real functions are not forwarded
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        fake.nvmlDeviceGetHandleByIndex(1)


def test_mig_switched_off_brings_utilization_back():
    reader, fake = started(FakeGPU("GPU-m", "NVIDIA A30", 24 * GiB, util_pct=64, max_mig_devices=4,
                                   mig=[FakeMIG("MIG-a", "4g.24gb", 4, 24 * GiB)]))
    assert math.isnan(reader.read().devices[0].utilization_ratio)  # NotSupported while MIG on
    fake.gpus[0].mig = None  # mig-parted disables MIG; the exporter keeps running
    (dev,) = reader.read().devices
    assert dev.utilization_ratio == 0.64  # 64 % / 100


def test_close_shuts_nvml_down():
    reader, fake = started(FakeGPU("GPU-a", "NVIDIA L4", 24 * GiB))
    assert reader.start()  # a second start does not initialise NVML twice
    assert fake.calls["nvmlInit"] == 1
    reader.close()
    assert fake.calls["nvmlShutdown"] == 1 and not reader.available
    assert reader.read() == GPUSnapshot((), (), 0)
