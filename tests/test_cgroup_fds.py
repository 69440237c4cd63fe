"""Tests of exporter.cgroup_fds: descriptors kept across scrapes must read like a fresh open.

Regular files stand in for cgroupfs in most tests (pread works on both); the
behaviour only kernel-generated files have (fresh content at offset 0 through a kept
descriptor, failure once the object is gone) runs against procfs, which every Linux
machine mounts: a cgroup mount may be missing or read-only where the tests run.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Iterator

import pytest

from exporter.cgroup_fds import OpenFiles, cgroup_devices, default_limit


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def files() -> Iterator[OpenFiles]:
    table = OpenFiles()
    yield table
    table.close()


def test_reads_content_and_keeps_the_descriptor(tmp_path, files):
    (tmp_path / "memory.current").write_text("13071106048\n")
    before = open_fds()
    assert files.read(str(tmp_path), "memory.current") == b"13071106048\n"
    assert len(files) == 1 and open_fds() == before + 1
    assert files.read(str(tmp_path), "memory.current") == b"13071106048\n"
    assert len(files) == 1 and open_fds() == before + 1  # the same descriptor, read again


def test_content_written_in_place_is_read_fresh(tmp_path, files):
    f = tmp_path / "cpu.stat"
    f.write_text("usage_usec 1000\n")
    assert files.read(str(tmp_path), "cpu.stat") == b"usage_usec 1000\n"
    f.write_text("usage_usec 2000000\nnr_periods 4\n")  # longer
    assert files.read(str(tmp_path), "cpu.stat") == b"usage_usec 2000000\nnr_periods 4\n"
    f.write_text("usage_usec 5\n")  # shorter: nothing of the old content may remain
    assert files.read(str(tmp_path), "cpu.stat") == b"usage_usec 5\n"


def test_file_replaced_by_rename_is_reopened(tmp_path, files):
    """The simulated node replaces files atomically: a kept descriptor holds the old inode."""
    f = tmp_path / "memory.current"
    f.write_text("1\n")
    assert files.read(str(tmp_path), "memory.current") == b"1\n"
    for value in range(2, 6):
        (tmp_path / "tmp").write_text(f"{value}\n")
        os.replace(tmp_path / "tmp", f)
        assert files.read(str(tmp_path), "memory.current") == f"{value}\n".encode()
    assert len(files) == 1


def test_removed_or_replaced_file_fails_like_a_fresh_open(tmp_path, files):
    f = tmp_path / "memory.current"
    f.write_text("1\n")
    before = open_fds()
    files.read(str(tmp_path), "memory.current")
    f.unlink()
    with pytest.raises(FileNotFoundError):
        files.read(str(tmp_path), "memory.current")
    assert len(files) == 0 and open_fds() == before  # the stale descriptor was closed
    f.mkdir()
    with pytest.raises(IsADirectoryError):
        files.read(str(tmp_path), "memory.current")
    assert len(files) == 0 and open_fds() == before


def test_large_and_empty_files(tmp_path, files):
    payload = b"x" * 200_000  # more than one read: read whole, not kept
    (tmp_path / "big").write_bytes(payload)
    (tmp_path / "empty").write_bytes(b"")
    assert files.read(str(tmp_path), "big") == payload
    assert files.read(str(tmp_path), "empty") == b""
    assert files.read(str(tmp_path), "empty") == b""
    assert len(files) == 1


def test_limit_bounds_kept_descriptors(tmp_path):
    files = OpenFiles(limit=2)
    for i in range(5):
        (tmp_path / f"f{i}").write_text(f"{i}\n")
    before = open_fds()
    for _ in range(3):
        assert [files.read(str(tmp_path), f"f{i}") for i in range(5)] == [
            f"{i}\n".encode() for i in range(5)]
    assert len(files) == 2 and open_fds() == before + 2
    files.close()
    assert len(files) == 0 and open_fds() == before
    assert 0 < default_limit() <= 4096


def test_drop_retain_and_garbage_collection_close_descriptors(tmp_path):
    dirs = []
    for name in ("a", "b", "c"):
        d = tmp_path / name
        d.mkdir()
        (d / "cpu.stat").write_text("usage_usec 1\n")
        (d / "memory.current").write_text("1\n")
        dirs.append(str(d))
    before = open_fds()
    files = OpenFiles()
    for d in dirs:
        files.read(d, "cpu.stat")
        files.read(d, "memory.current")
    assert len(files) == 6 and open_fds() == before + 6
    files.drop([dirs[0], str(tmp_path / "never-read")])
    assert len(files) == 4 and open_fds() == before + 4
    files.retain([dirs[2]])
    assert len(files) == 2 and open_fds() == before + 2
    del files  # a dropped reader must not leak its descriptors
    assert open_fds() == before


def test_cgroup_devices_parses_mountinfo(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
        "garbage line\n")
    assert cgroup_devices(str(info)) == {os.makedev(0, 29), os.makedev(0, 38)}
    assert cgroup_devices(str(tmp_path / "missing")) == frozenset()


def _procfs() -> frozenset[int]:
    """procfs as the kernel-generated filesystem: like cgroupfs, it regenerates a file on
    each read from offset 0 and fails a kept descriptor once its object is gone, and
    unlike a cgroup mount it is on every Linux machine, writable or not."""
    return frozenset({os.stat("/proc").st_dev})


def test_a_kept_kernel_file_whose_object_is_gone_fails_like_a_fresh_open():
    """A removed cgroup gives ENODEV on its kept descriptor; a reaped process, ESRCH."""
    child = subprocess.Popen(["sleep", "60"])
    directory = f"/proc/{child.pid}"
    files = OpenFiles(kernfs_devices=_procfs())
    try:
        assert files.read(directory, "stat").startswith(f"{child.pid} (sleep)".encode())
        assert len(files) == 1
        before = open_fds()
        child.kill()
        child.wait()
        with pytest.raises(FileNotFoundError):  # ESRCH on the kept fd, ENOENT on reopen
            files.read(directory, "stat")
        assert len(files) == 0 and open_fds() == before - 1
    finally:
        files.close()
        child.kill()
        child.wait()


def test_a_kept_kernel_file_reread_through_pread_is_fresh():
    """The kernel regenerates content at offset 0: the kept descriptor sees new values."""
    files = OpenFiles(kernfs_devices=_procfs())
    try:
        seen = {files.read("/proc", "stat")}
        for _ in range(200):  # CPU time and context switches grow while this test runs
            seen.add(files.read("/proc", "stat"))
            sum(range(10_000))
        assert len(seen) > 1 and len(files) == 1
    finally:
        files.close()


def test_exporter_raises_its_soft_descriptor_limit_to_the_hard_one():
    """With a container's usual soft limit of 1,024 only 512 files could stay open."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)
    code = ("import resource; from exporter.cgroup_fds import default_limit, "
            "raise_nofile_limit; print(default_limit(), raise_nofile_limit(), "
            "resource.getrlimit(resource.RLIMIT_NOFILE)[0], default_limit())")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard)))
    before, returned, soft, after = (int(x) for x in out.stdout.split())
    assert before == low // 2
    assert returned == soft == hard
    assert after == (4096 if hard == resource.RLIM_INFINITY else min(4096, hard // 2))
