"""CgroupReader across many scrapes with containers coming and going.

The reader keeps each container's cgroup files open between reads, so these
check what users rely on: a removed container never yields a stale reading
(it is reported gone), its descriptors are closed, descriptors do not pile up
under churn, and changed files are read fresh however they were rewritten.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from exporter.cgroups import CgroupReader
from exporter.errors import CgroupGone

QOS = "kubepods.slice/kubepods-burstable.slice"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def add_container(root: Path, cpu_usec: int) -> tuple[tuple[str, str], Path]:
    """A burstable pod with one container of a given CPU time; its key and directory."""
    uid, cid = str(uuid.uuid4()), uuid.uuid4().hex * 2
    d = (root / QOS / f"kubepods-burstable-pod{uid.replace('-', '_')}.slice"
         / f"cri-containerd-{cid}.scope")
    d.mkdir(parents=True)
    (d / "cpu.stat").write_text(f"usage_usec {cpu_usec}\nnr_periods 0\nnr_throttled 0\n"
                                "throttled_usec 0\n")
    (d / "memory.current").write_text("1000\n")
    (d / "memory.stat").write_text("anon 600\ninactive_file 100\n")
    return (uid, cid), d


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    (tmp_path / QOS).mkdir(parents=True)
    return tmp_path


def test_churn_closes_descriptors_and_never_reads_a_removed_container(root):
    reader = CgroupReader(root)
    live = dict(add_container(root, cpu_usec=(i + 1) * 1_000_000) for i in range(8))
    base = open_fds()
    for round_ in range(40):
        found = reader.scan()
        assert set(found) == set(live)
        for cg in found.values():
            u = reader.read(cg)
            assert u.errors == 0 and u.memory_working_set_bytes == 900.0  # 1000 - 100
        assert len(reader.files) == 3 * len(live) and open_fds() == base + 3 * len(live)
        # a container exits between scrapes, another starts
        gone_key = next(iter(live))
        shutil.rmtree(live.pop(gone_key).parent)
        with pytest.raises(CgroupGone):  # its kept descriptors must not answer for it
            reader.read(found[gone_key])
        assert len(reader.files) == 3 * len(live)
        key, d = add_container(root, cpu_usec=round_)
        live[key] = d
    reader.scan()  # the newest container was never read: nothing kept for it
    assert open_fds() == base + len(reader.files) == base + 3 * (len(live) - 1)
    reader.close()
    assert open_fds() == base


def test_scan_closes_descriptors_of_containers_gone_from_the_tree(root):
    reader = CgroupReader(root)
    key, d = add_container(root, cpu_usec=1)
    reader.read(reader.scan()[key])
    assert len(reader.files) == 3
    shutil.rmtree(d.parent)
    assert reader.scan() == {}
    assert len(reader.files) == 0


def test_scan_closes_descriptors_of_containers_no_pod_owns_any_more(root):
    """A pod deleted from the API whose cgroup lingers: the collector stops reading it."""
    reader = CgroupReader(root)
    (k1, _d1), (k2, _d2) = add_container(root, cpu_usec=1), add_container(root, cpu_usec=2)
    for cg in reader.scan().values():
        reader.read(cg)
    assert len(reader.files) == 6
    assert set(reader.scan(keep_open={k2})) == {k1, k2}
    assert len(reader.files) == 3


def test_changed_files_are_read_fresh_in_place_and_by_rename(root):
    reader = CgroupReader(root)
    key, d = add_container(root, cpu_usec=1_000_000)
    cg = reader.scan()[key]
    assert reader.read(cg).cpu_usage_seconds == 1.0
    (d / "cpu.stat").write_text("usage_usec 2500000\nnr_periods 0\nnr_throttled 0\n"
                                "throttled_usec 0\n")  # truncate and rewrite the same inode
    assert reader.read(cg).cpu_usage_seconds == 2.5
    (d / "memory.current.tmp").write_text("5000\n")
    os.replace(d / "memory.current.tmp", d / "memory.current")  # a new inode, as the simulator does
    u = reader.read(cg)
    assert (u.memory_usage_bytes, u.memory_working_set_bytes, u.errors) == (5000.0, 4900.0, 0)


def test_a_file_going_bad_after_being_kept_is_an_error_not_a_stale_value(root):
    reader = CgroupReader(root)
    key, d = add_container(root, cpu_usec=1_000_000)
    cg = reader.scan()[key]
    assert reader.read(cg).errors == 0
    (d / "memory.current").unlink()
    u = reader.read(cg)
    # memory.current missing: usage and working set unknown, one error; CPU still read
    assert u.errors == 1 and u.cpu_usage_seconds == 1.0
    assert u.memory_usage_bytes != u.memory_usage_bytes  # NaN, never the kept old value
    assert len(reader.files) == 2
