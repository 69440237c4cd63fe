"""Tests of exporter.cgroups: discovery of pod container cgroups and their readings.

Fixture trees live in tests/fixtures/cgroup/<layout>/ (see README.md there); bigger
or damaged trees are built in tmp_path. Every expected number is computed by hand
from the fixture file contents, with the arithmetic in a comment.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import shutil
import uuid
from collections import Counter
from dataclasses import astuple
from pathlib import Path

import pytest

from exporter.cgroup_names import parse_proc_cgroup
from exporter.cgroups import CgroupReader, ContainerCgroup
from exporter.errors import CgroupError, CgroupGone
from exporter.model import ContainerUsage

FIX = Path(__file__).parent / "fixtures" / "cgroup"
NAN = math.nan

G, B, E = ("1c7f4e2a-5b3d-4e6f-8a9b-0c1d2e3f4a5b", "2d8a5f3b-6c4e-4f70-9bac-1d2e3f4a5b6c",
           "3e9b6a4c-7d5f-4081-acbd-2e3f4a5b6c7d")
P1, P2, P3 = ("4fa07b5d-8e60-4192-bdce-3f4a5b6c7d8e", "50b18c6e-9f71-42a3-8edf-4a5b6c7d8e9f",
              "61c29d7f-a082-43b4-9f01-5b6c7d8e9fa0")
K1, STATIC = "72d3ae80-b193-44c5-a012-6c7d8e9fa0b1", "9b2f6c1d8e4a7f3b5c0d2e6a8f1b3c5d"
GKE_UID = "74c13223-5a00-11e9-b385-42010a80018d"
GKE_ID = "34dc0b5e626f2c5c4c5170e34b10e7654ce36f0fcd532739f4445baabea03376"
DU_B, DU_G = "85e4bf91-c2a4-46d7-b234-8e9fa0b1c2d3", "96f5c0a2-d3b5-47e8-8345-9fa0b1c2d3e4"
S_B, S_E, S_G = ("a7061db3-e4c6-48f9-9456-a0b1c2d3e4f5", "b8172ec4-f5d7-490a-a567-b1c2d3e4f506",
                 "c9283fd5-06e8-4a1b-b678-c2d3e4f50617")

EXPECTED_SCAN = {
    "v2-systemd-containerd": (2, {
        (G, "a1" * 32): "guaranteed", (G, "a2" * 32): "guaranteed",  # a1: sandbox
        (B, "b1" * 32): "burstable", (B, "b2" * 32): "burstable", (E, "c1" * 32): "besteffort"}),
    "v2-systemd-crio": (2, {  # the crio-conmon-e1/e2 scopes are absent on purpose
        (P1, "e1" * 32): "burstable", (P1, "e2" * 32): "burstable",
        (P2, "f1" * 32): "besteffort", (P3, "f2" * 32): "guaranteed"}),
    "v2-kind-containerd": (2, {
        (K1, "71" * 32): "besteffort", (STATIC, "72" * 32): "burstable"}),
    "v1-cgroupfs-docker": (1, {  # /docker/9d… is no pod's and absent on purpose
        (GKE_UID, GKE_ID): "besteffort", (GKE_UID, "9a" * 32): "besteffort",
        (DU_B, "9b" * 32): "burstable", (DU_G, "9c" * 32): "guaranteed"}),
    "v1-systemd-containerd": (1, {
        (S_B, "5b" * 32): "burstable", (S_B, "5a" * 32): "burstable",
        (S_E, "5e" * 32): "besteffort", (S_G, "5c" * 32): "guaranteed"}),
}


def norm(u: ContainerUsage) -> tuple[object, ...]:
    """ContainerUsage as a tuple that compares NaN equal to NaN, for readable asserts."""
    return tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in astuple(u))


def usage(cpu: float, periods: float, throttled: float, throttled_s: float, memory: float,
          working_set: float, rss: float, errors: int = 0) -> tuple[object, ...]:
    return norm(ContainerUsage(cpu, periods, throttled, throttled_s, memory, working_set, rss,
                               errors))


def read_one(root: Path | str, key: tuple[str, str]) -> ContainerUsage:
    reader = CgroupReader(root)
    return reader.read(reader.scan()[key])


# --- discovery over the committed layouts ---------------------------------------------------

@pytest.mark.parametrize("layout", sorted(EXPECTED_SCAN))
def test_scan_fixture_layout(layout):
    version, expected = EXPECTED_SCAN[layout]
    reader = CgroupReader(FIX / layout)
    assert reader.version == version
    found = reader.scan()
    assert {key: cg.qos_class for key, cg in found.items()} == expected
    for (uid, cid), cg in found.items():
        assert (cg.pod_uid, cg.container_id) == (uid, cid)
        assert cg.memory_dir.endswith(cg.path) and os.path.isdir(cg.memory_dir)


def test_scan_path_matches_proc_cgroup_capture():
    cg = CgroupReader(FIX / "v1-cgroupfs-docker").scan()[(GKE_UID, GKE_ID)]
    capture = (Path(__file__).parent / "fixtures" / "proc" / "4242" / "cgroup").read_text()
    assert cg.path == parse_proc_cgroup(capture)
    assert cg.cpu_dir == cg.cpuacct_dir == str(FIX / "v1-cgroupfs-docker" / "cpu,cpuacct") + cg.path


# --- values, cgroup v2 ----------------------------------------------------------------------

def test_read_v2_telegraf_realworld_files():
    got = read_one(FIX / "v2-systemd-containerd", (B, "b1" * 32))
    assert norm(got) == usage(
        98701.325189,  # cpu.stat usage_usec 98701325189 / 1e6
        3936904,  # nr_periods
        6004,  # nr_throttled
        19175.137007,  # throttled_usec 19175137007 / 1e6
        13071106048,  # memory.current
        10135646208,  # memory.current 13071106048 - memory.stat inactive_file 2935459840
        2471755776,  # memory.stat anon
    )


def test_read_v2_guaranteed_app_and_sandbox():
    root = FIX / "v2-systemd-containerd"
    # usage_usec 2500000/1e6 = 2.5; throttled_usec 250000/1e6 = 0.25;
    # working set 52428800 - inactive_file 10485760 = 41943040; anon 31457280
    assert norm(read_one(root, (G, "a2" * 32))) == usage(
        2.5, 1000, 10, 0.25, 52428800, 41943040, 31457280)
    # sandbox: 40000/1e6 = 0.04 s; 204800 - inactive_file 0 = 204800; anon 40960
    assert norm(read_one(root, (G, "a1" * 32))) == usage(0.04, 0, 0, 0.0, 204800, 204800, 40960)


def test_read_v2_working_set_floors_at_zero():
    # memory.current 100000000 - inactive_file 150000000 = -50000000 -> 0
    # usage_usec 1234567/1e6 = 1.234567; anon 20000000
    got = read_one(FIX / "v2-systemd-containerd", (E, "c1" * 32))
    assert norm(got) == usage(1.234567, 0, 0, 0.0, 100000000, 0.0, 20000000)


def test_read_v2_memory_stat_missing():
    # no memory.stat: working set and rss NaN (never memory.current alone), 1 error;
    # cpu.stat usage_usec 7000000/1e6 = 7.0 and memory.current 1048576 still read
    got = read_one(FIX / "v2-systemd-containerd", (B, "b2" * 32))
    assert norm(got) == usage(7.0, 0, 0, 0.0, 1048576, NAN, NAN, errors=1)


def test_read_v2_crio_and_kind():
    # crio-e1: 3000000/1e6 = 3.0 s; 100000/1e6 = 0.1 s; 8388608 - 2097152 = 6291456; anon 4194304
    assert norm(read_one(FIX / "v2-systemd-crio", (P1, "e1" * 32))) == usage(
        3.0, 500, 5, 0.1, 8388608, 6291456, 4194304)
    # static pod: 200000/1e6 = 0.2 s; 6291456 - 1048576 = 5242880; anon 2097152
    assert norm(read_one(FIX / "v2-kind-containerd", (STATIC, "72" * 32))) == usage(
        0.2, 0, 0, 0.0, 6291456, 5242880, 2097152)


# --- values, cgroup v1 ----------------------------------------------------------------------

def test_read_v1_cgroupfs_docker_gke_container():
    # cpuacct.usage 5000000000/1e9 = 5.0 s; memory.usage_in_bytes 73400320
    # working set 73400320 - total_inactive_file 20971520 = 52428800 (not inactive_file 20971521)
    # total_rss 41943040 (not rss 41943041)
    got = read_one(FIX / "v1-cgroupfs-docker", (GKE_UID, GKE_ID))
    assert norm(got) == usage(5.0, 0, 0, 0.0, 73400320, 52428800, 41943040)


def test_read_v1_cgroupfs_docker_throttled():
    # 123456789012/1e9 = 123.456789012 s; throttled_time 7500000000/1e9 = 7.5 s
    # 268435456 - 67108864 = 201326592; total_rss 134217728
    got = read_one(FIX / "v1-cgroupfs-docker", (DU_B, "9b" * 32))
    assert norm(got) == usage(123.456789012, 2000, 150, 7.5, 268435456, 201326592, 134217728)


def test_read_v1_systemd_separate_cpu_and_cpuacct_mounts():
    root = FIX / "v1-systemd-containerd"
    # 2000000000/1e9 = 2.0 s; 30000000/1e9 = 0.03 s; 10485760 - 1048576 = 9437184; rss 8388608
    assert norm(read_one(root, (S_B, "5b" * 32))) == usage(
        2.0, 100, 3, 0.03, 10485760, 9437184, 8388608)
    # 3000000000/1e9 = 3.0 s; 1200000000/1e9 = 1.2 s; 20971520 - 4194304 = 16777216; 12582912
    assert norm(read_one(root, (S_G, "5c" * 32))) == usage(
        3.0, 600, 60, 1.2, 20971520, 16777216, 12582912)


def test_every_fixture_container_reads_cleanly_but_the_broken_one():
    for layout in EXPECTED_SCAN:
        reader = CgroupReader(FIX / layout)
        for key, cg in reader.scan().items():
            errors = reader.read(cg).errors
            assert errors == (1 if key == (B, "b2" * 32) else 0), (layout, key)


# --- vanished, unreadable and garbage files -------------------------------------------------

@pytest.fixture
def v2_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIX / "v2-systemd-containerd", tmp_path / "cg"))


@pytest.fixture
def v1_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIX / "v1-systemd-containerd", tmp_path / "cg"))


def test_vanished_v2_container_raises_gone(v2_copy):
    reader = CgroupReader(v2_copy)
    cg = reader.scan()[(G, "a2" * 32)]
    shutil.rmtree(cg.memory_dir)
    with pytest.raises(CgroupGone):
        reader.read(cg)
    assert (G, "a2" * 32) not in reader.scan()


def test_vanished_v1_controller_dir_raises_gone(v1_copy):
    reader = CgroupReader(v1_copy)
    cg = reader.scan()[(S_B, "5b" * 32)]
    shutil.rmtree(cg.memory_dir)  # cpu and cpuacct still there: the container is exiting
    with pytest.raises(CgroupGone):
        reader.read(cg)


def test_garbage_and_unreadable_files_v2(v2_copy):
    reader = CgroupReader(v2_copy)
    cg = reader.scan()[(G, "a2" * 32)]
    d = Path(cg.memory_dir)
    (d / "memory.current").write_text("garbage\n")
    # cpu as in test_read_v2_guaranteed_app_and_sandbox; memory and working set lost
    assert norm(reader.read(cg)) == usage(2.5, 1000, 10, 0.25, NAN, NAN, 31457280, errors=1)
    (d / "memory.current").unlink()
    (d / "memory.current").mkdir()  # exists but cannot be read as a file
    (d / "memory.stat").write_text("anon lots\n")
    (d / "cpu.stat").write_text("usage_usec 5000000\n")  # keys missing: 1 error for the file
    # 5000000/1e6 = 5.0; three bad files
    assert norm(reader.read(cg)) == usage(5.0, NAN, NAN, NAN, NAN, NAN, NAN, errors=3)


def test_garbage_and_missing_files_v1(v1_copy):
    reader = CgroupReader(v1_copy)
    cg = reader.scan()[(S_B, "5b" * 32)]
    Path(cg.cpuacct_dir, "cpuacct.usage").write_text("\n")
    Path(cg.cpu_dir, "cpu.stat").unlink()
    # memory as in test_read_v1_systemd_separate_cpu_and_cpuacct_mounts
    assert norm(reader.read(cg)) == usage(NAN, NAN, NAN, NAN, 10485760, 9437184, 8388608,
                                          errors=2)


def test_v1_host_without_memory_mount(v1_copy):
    shutil.rmtree(v1_copy / "memory")
    reader = CgroupReader(v1_copy)
    cg = reader.scan()[(S_B, "5b" * 32)]
    assert cg.memory_dir == ""
    # CPU as before; memory.usage_in_bytes and memory.stat both count as failed
    assert norm(reader.read(cg)) == usage(2.0, 100, 3, 0.03, NAN, NAN, NAN, errors=2)


def test_scan_without_cgroup_mount_raises(tmp_path):
    with pytest.raises(CgroupError):
        CgroupReader(tmp_path / "missing").scan()
    with pytest.raises(CgroupError):
        CgroupReader(tmp_path).scan()  # empty dir: neither v2 root nor v1 mounts


def test_kubepods_root_found_later_and_after_moving(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    reader = CgroupReader(tmp_path)
    assert reader.scan() == {}  # kubelet not started yet
    make_container(tmp_path, 2, layout_rel("systemd", "containerd", "burstable", B, "b1" * 32))
    assert set(reader.scan()) == {(B, "b1" * 32)}
    # kubelet restarted with a cgroup root: the cached kubepods root vanished
    (tmp_path / "kubelet.slice").mkdir()
    (tmp_path / "kubepods.slice").rename(tmp_path / "kubelet.slice" / "kubelet-kubepods.slice")
    found = reader.scan()
    assert set(found) == {(B, "b1" * 32)}
    assert found[(B, "b1" * 32)].path.startswith("/kubelet.slice/kubelet-kubepods.slice/")


def test_unchanged_records_are_reused_between_scans():
    reader = CgroupReader(FIX / "v2-systemd-crio")
    first, second = reader.scan(), reader.scan()
    assert all(second[key] is cg for key, cg in first.items())


# --- generated trees: every layout, and a full node -----------------------------------------

GEN_V2_CPU = ("usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\nnr_periods 40\n"
              "nr_throttled 4\nthrottled_usec 800000\nnr_bursts 0\nburst_usec 0\n")
GEN_V2_MEMSTAT = (FIX / "v2-systemd-containerd" / "kubepods.slice" / "kubepods-burstable.slice"
                  / f"kubepods-burstable-pod{B.replace('-', '_')}.slice"
                  / f"cri-containerd-{'b1' * 32}.scope" / "memory.stat").read_bytes()
GEN_V1_MEMSTAT = (FIX / "v1-cgroupfs-docker" / "memory" / "kubepods" / "besteffort"
                  / f"pod{GKE_UID}" / GKE_ID / "memory.stat").read_bytes()
# v2: 2000000/1e6 = 2.0 s; 800000/1e6 = 0.8 s; memory.current 4000000000;
#     working set 4000000000 - telegraf inactive_file 2935459840 = 1064540160; anon 2471755776
GEN_V2_USAGE = usage(2.0, 40, 4, 0.8, 4000000000, 1064540160, 2471755776)
# v1: 2000000000/1e9 = 2.0 s; 800000000/1e9 = 0.8 s; memory.usage_in_bytes 4000000000;
#     working set 4000000000 - GKE total_inactive_file 20971520 = 3979028480; total_rss 41943040
GEN_V1_USAGE = usage(2.0, 40, 4, 0.8, 4000000000, 3979028480, 41943040)


def layout_rel(driver: str, runtime: str, qos: str, uid: str, cid: str,
               cgroup_root: str = "", conmon: bool = False) -> str:
    """Relative cgroup path of a container as kubelet and runtime lay it out."""
    if driver == "systemd":
        pre = f"{cgroup_root}-" if cgroup_root else ""
        parts = ([f"{cgroup_root}.slice"] if cgroup_root else []) + [f"{pre}kubepods.slice"]
        us = uid.replace("-", "_")
        parts += ([f"{pre}kubepods-pod{us}.slice"] if qos == "guaranteed"
                  else [f"{pre}kubepods-{qos}.slice", f"{pre}kubepods-{qos}-pod{us}.slice"])
        scope = {"containerd": "cri-containerd", "crio": "crio", "docker": "docker"}[runtime]
        parts.append(f"{'crio-conmon' if conmon else scope}-{cid}.scope")
    else:
        parts = ([cgroup_root] if cgroup_root else []) + ["kubepods"]
        parts += [] if qos == "guaranteed" else [qos]
        name = f"crio-conmon-{cid}" if conmon else f"crio-{cid}" if runtime == "crio" else cid
        parts += [f"pod{uid}", name]
    return "/" + "/".join(parts)


def make_container(root: Path, version: int, rel: str, split_cpu: bool = False) -> None:
    """Write one container cgroup with the GEN_* contents (v1: under each controller)."""
    if version == 2:
        (root / "cgroup.controllers").write_text("cpu memory\n")
        d = root / rel.lstrip("/")
        d.mkdir(parents=True, exist_ok=True)
        (d / "cpu.stat").write_text(GEN_V2_CPU)
        (d / "memory.current").write_text("4000000000\n")
        (d / "memory.stat").write_bytes(GEN_V2_MEMSTAT)
        return
    mounts = ("cpu", "cpuacct") if split_cpu else ("cpu,cpuacct",)
    for mount in (*mounts, "memory"):
        (root / mount / rel.lstrip("/")).mkdir(parents=True, exist_ok=True)
    cpu, acct = (root / mounts[0] / rel.lstrip("/")), (root / mounts[-1] / rel.lstrip("/"))
    (acct / "cpuacct.usage").write_text("2000000000\n")
    (cpu / "cpu.stat").write_text("nr_periods 40\nnr_throttled 4\nthrottled_time 800000000\n")
    mem = root / "memory" / rel.lstrip("/")
    (mem / "memory.usage_in_bytes").write_text("4000000000\n")
    (mem / "memory.stat").write_bytes(GEN_V1_MEMSTAT)


@pytest.mark.parametrize(
    ("driver", "runtime", "qos", "version", "cgroup_root"),
    list(itertools.product(["systemd", "cgroupfs"], ["containerd", "crio", "docker"],
                           ["guaranteed", "burstable", "besteffort"], [1, 2], ["", "kubelet"])),
)
def test_every_layout_scans_and_reads(tmp_path, driver, runtime, qos, version, cgroup_root):
    uid, cid = str(uuid.uuid4()), uuid.uuid4().hex * 2
    make_container(tmp_path, version, layout_rel(driver, runtime, qos, uid, cid, cgroup_root),
                   split_cpu=driver == "systemd")
    if runtime == "crio":  # the conmon sibling must not show up
        make_container(tmp_path, version,
                       layout_rel(driver, runtime, qos, uid, cid, cgroup_root, conmon=True),
                       split_cpu=driver == "systemd")
    reader = CgroupReader(tmp_path)
    assert reader.version == version
    found = reader.scan()
    assert list(found) == [(uid, cid)]
    assert found[(uid, cid)].qos_class == qos
    assert norm(reader.read(found[(uid, cid)])) == (GEN_V2_USAGE if version == 2 else GEN_V1_USAGE)


def make_node(root: Path, version: int, driver: str, runtime: str) -> set[tuple[str, str]]:
    """A full node: 110 pods (30 guaranteed, 50 burstable, 30 besteffort), 250 containers.

    Every pod has a sandbox; 30 pods have two app containers and 80 have one:
    110 + 30 * 2 + 80 = 250.
    """
    keys: set[tuple[str, str]] = set()
    for n in range(110):
        qos = "guaranteed" if n < 30 else "burstable" if n < 80 else "besteffort"
        uid = str(uuid.UUID(int=n + 1))
        for c in range(3 if n % 11 < 3 else 2):  # n % 11 < 3 for 30 of 110 pods
            cid = f"{n:032x}{c:032x}"
            make_container(root, version, layout_rel(driver, runtime, qos, uid, cid),
                           split_cpu=driver == "systemd")
            keys.add((uid, cid))
    return keys


@pytest.mark.parametrize(
    ("version", "driver", "runtime"),
    [(2, "systemd", "containerd"), (2, "cgroupfs", "crio"), (1, "cgroupfs", "docker"),
     (1, "systemd", "containerd")],
)
def test_full_node_tree(tmp_path, version, driver, runtime):
    keys = make_node(tmp_path, version, driver, runtime)
    assert len(keys) == 250
    reader = CgroupReader(tmp_path)
    found = reader.scan()
    assert set(found) == keys
    expected = GEN_V2_USAGE if version == 2 else GEN_V1_USAGE
    assert all(norm(reader.read(cg)) == expected for cg in found.values())
    # pods 0..29 guaranteed, 30..79 burstable, 80..109 besteffort; 2 containers each, plus one
    # where n % 11 < 3: n = 0,1,2,11,12,13,22,23,24 -> 30*2 + 9 = 69;
    # 33-35,44-46,55-57,66-68,77-79 -> 50*2 + 15 = 115; 88-90,99-101 -> 30*2 + 6 = 66
    assert Counter(cg.qos_class for cg in found.values()) == {
        "guaranteed": 69, "burstable": 115, "besteffort": 66}


# --- this machine ---------------------------------------------------------------------------

def _mount_fstype(mountpoint: str) -> str | None:
    fstype = None
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[1] == mountpoint:
                fstype = fields[2]  # the last mount on a point is the visible one
    return fstype


def test_this_machine_cgroups():
    fstype = _mount_fstype("/sys/fs/cgroup")
    assert fstype is not None, "/sys/fs/cgroup is not mounted: the exporter reads it"
    reader = CgroupReader("/sys/fs/cgroup")
    # cgroup2 mounted on /sys/fs/cgroup = unified; a tmpfs of v1 mounts (+ "unified") = 1
    assert reader.version == (2 if fstype == "cgroup2" else 1)
    found = reader.scan()
    assert all(isinstance(cg, ContainerCgroup) for cg in found.values())
    for cg in found.values():
        with contextlib.suppress(CgroupGone):  # a container may exit while the test runs
            assert isinstance(reader.read(cg), ContainerUsage)
