"""Tests of exporter.cgroup_fds: descriptors kept across scrapes must read like a fresh open.

Regular files stand in for cgroupfs in most tests (pread works on both); the
kernfs-only behaviour (ENODEV once a cgroup is removed) runs against this
machine's cgroup v1 or v2 mount when the test may create a cgroup there.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

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


def _new_cgroup() -> tuple[str, str]:
    """A fresh cgroup with a CPU accounting file on this machine, or skip."""
    for parent, name in (("/sys/fs/cgroup", "cpu.stat"),
                         ("/sys/fs/cgroup/cpuacct", "cpuacct.usage"),
                         ("/sys/fs/cgroup/cpu,cpuacct", "cpuacct.usage")):
        if os.path.exists(os.path.join(parent, name)):
            path = os.path.join(parent, f"kubetally-test-{uuid.uuid4().hex[:8]}")
            try:
                os.mkdir(path)
            except OSError as exc:
                pytest.skip(f"cannot create a cgroup under {parent}: {exc}")
            return path, name
    pytest.skip("no writable cgroup cpu accounting mount on this machine")


def test_removed_real_cgroup_is_not_read_stale_and_its_descriptor_closes():
    path, name = _new_cgroup()
    files = OpenFiles()
    try:
        assert int(files.read(path, name).split()[-1]) >= 0
        assert len(files) == 1
        assert files._dirs[path].kernfs  # on cgroupfs: no inode check per read
        before = open_fds()
        os.rmdir(path)
        with pytest.raises(FileNotFoundError):  # ENODEV on the kept fd, ENOENT on reopen
            files.read(path, name)
        assert len(files) == 0 and open_fds() == before - 1
    finally:
        files.close()
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(path)


def test_real_cgroup_file_reread_through_pread_is_fresh():
    """cgroupfs regenerates content at offset 0: the kept descriptor sees new values."""
    root = Path("/sys/fs/cgroup")
    path = root / "cpu.stat" if (root / "cpu.stat").exists() else next(
        (p for p in root.glob("*/cpuacct.usage")), None)
    if path is None:
        pytest.skip("no cgroup cpu accounting file on this machine")
    files = OpenFiles()
    try:
        first = files.read(str(path.parent), path.name)
        seen = {first}
        for _ in range(200):  # the root cgroup's CPU time grows while this test runs
            seen.add(files.read(str(path.parent), path.name))
            sum(range(10_000))
        assert len(seen) > 1 and len(files) == 1
    finally:
        files.close()


def test_exporter_raises_its_soft_descriptor_limit_to_the_hard_one():
    """With a container's usual soft limit of 1,024 only 512 files could stay open."""
    import resource
    import subprocess
    import sys

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
