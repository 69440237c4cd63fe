"""cgroup files kept open across scrapes and re-read with ``pread``.

Opening a cgroup file is the most expensive part of reading it (a path walk of
six or seven components), and a full node reads about 730 of them per scrape.
cgroupfs (kernfs) regenerates a file's content on every read from offset 0, so
an open descriptor re-read with ``os.pread(fd, size, 0)`` gives fresh values
with one syscall instead of ``open``/``read``/``close``.

What keeps this exact rather than merely fast:

* A removed cgroup makes ``pread`` fail (ENODEV, also ENOENT/ESTALE); any
  failure of a kept descriptor closes it and falls back to a fresh ``open``,
  so the caller sees the same OSError (or the same fresh bytes, e.g. after a
  controller was disabled and re-enabled) as without the cache.
* Regular files (fixture trees, the simulated node) can be replaced by a
  rename, which would leave a kept descriptor on the old inode. Outside
  cgroupfs each re-read first checks ``st_nlink`` and reopens a file whose
  inode was unlinked; on cgroupfs (recognised by device number from
  ``/proc/self/mountinfo``) names never move to another inode, so no check.
* The number of kept descriptors is bounded; past the bound files are read
  with ``open``/``read``/``close`` as before. Callers release a cgroup's
  descriptors when it disappears (:meth:`OpenFiles.drop`, :meth:`OpenFiles.retain`).
* One lock guards the table, so a descriptor is never closed (and its number
  reused) while another thread reads it.
"""

from __future__ import annotations

import os
import resource
import threading
import weakref
from collections.abc import Iterable

__all__ = ["OpenFiles", "cgroup_devices", "default_limit", "raise_nofile_limit"]

#: Bigger than any cgroup file read here (memory.stat is 1-2 KiB); a file that fills it is
#: read whole and not kept. Not 64 KiB: allocating the buffer is a third of a pread's cost.
_READ_SIZE = 16384
_O_FLAGS = os.O_RDONLY | os.O_CLOEXEC
_CGROUP_FS = ("cgroup", "cgroup2")
_MAX_KEPT = 4096


def cgroup_devices(mountinfo: str = "/proc/self/mountinfo") -> frozenset[int]:
    """``st_dev`` of every cgroup v1/v2 mount; empty if mountinfo cannot be read.

    Empty is safe: every file is then treated as a regular file and checked.
    """
    devices: set[int] = set()
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if "-" not in fields:
                    continue
                fstype = fields[fields.index("-") + 1 :][:1]
                major, _, minor = fields[2].partition(":")
                if fstype and fstype[0] in _CGROUP_FS and major.isdigit() and minor.isdigit():
                    devices.add(os.makedev(int(major), int(minor)))
    except OSError:
        return frozenset()
    return frozenset(devices)


def default_limit() -> int:
    """How many descriptors to keep: 4096, or half the soft RLIMIT_NOFILE if lower.

    Half leaves room for the HTTP server's sockets and the API watch connections.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MAX_KEPT
    return max(0, min(_MAX_KEPT, soft // 2))


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the soft limit now in force.

    A container's soft limit is often 1,024 while its hard limit is far higher; Go
    programs such as node_exporter raise it at start, and so does the exporter, so a
    110-pod node's ~730 cgroup files can all stay open (:func:`default_limit` keeps at
    most half the soft limit). Not being allowed to is no error: the old limit stays.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
    return hard


class _Dir:
    """The kept descriptors of one directory; ``kernfs`` when it is on cgroupfs."""

    __slots__ = ("fds", "kernfs")

    def __init__(self, kernfs: bool) -> None:
        self.kernfs = kernfs
        self.fds: dict[str, int] = {}


def _close_all(dirs: dict[str, _Dir]) -> None:
    """Close every kept descriptor (also run by the finalizer of a dropped table)."""
    for d in dirs.values():
        for fd in d.fds.values():
            os.close(fd)
    dirs.clear()


class OpenFiles:
    """Reads files of cgroup directories, keeping their descriptors for the next read."""

    def __init__(self, limit: int | None = None,
                 kernfs_devices: frozenset[int] | None = None) -> None:
        self.limit = default_limit() if limit is None else limit
        self._kernfs = cgroup_devices() if kernfs_devices is None else kernfs_devices
        self._dirs: dict[str, _Dir] = {}
        self._count = 0
        self._lock = threading.Lock()
        # Readers made and dropped (tests, a rebuilt exporter) must not leak descriptors.
        self._finalizer = weakref.finalize(self, _close_all, self._dirs)

    def __len__(self) -> int:
        """The number of descriptors kept open now."""
        return self._count

    def read(self, directory: str, name: str) -> bytes:
        """The whole content of ``directory/name``, as a fresh ``open`` would read it now.

        Raises OSError exactly when opening and reading the file now fails.
        """
        with self._lock:
            d = self._dirs.get(directory)
            if d is not None:
                fd = d.fds.get(name)
                if fd is not None:
                    try:
                        if d.kernfs or os.fstat(fd).st_nlink:
                            data = os.pread(fd, _READ_SIZE, 0)
                            if len(data) < _READ_SIZE:
                                return data
                    except OSError:
                        pass  # removed cgroup (ENODEV…): the fresh open below decides
                    del d.fds[name]
                    self._count -= 1
                    os.close(fd)
            return self._open_and_read(directory, name, d)

    def _open_and_read(self, directory: str, name: str, d: _Dir | None) -> bytes:
        """Read the file with a new descriptor, and keep it when it fits and is whole."""
        fd = os.open(directory + "/" + name, _O_FLAGS)
        keep = False
        try:
            data = os.read(fd, _READ_SIZE)
            if len(data) >= _READ_SIZE:  # big file: read it all, do not keep (rare)
                chunks = [data]
                while chunk := os.read(fd, _READ_SIZE):
                    chunks.append(chunk)
                return b"".join(chunks)
            if self._count < self.limit:
                if d is None:
                    d = self._dirs[directory] = _Dir(os.fstat(fd).st_dev in self._kernfs)
                d.fds[name] = fd
                self._count += 1
                keep = True
            return data
        finally:
            if not keep:
                os.close(fd)

    def drop(self, directories: Iterable[str]) -> None:
        """Close the descriptors kept for these directories (a cgroup that went away)."""
        with self._lock:
            self._drop(directories)

    def retain(self, directories: Iterable[str]) -> None:
        """Close the descriptors of every directory not listed (gone from the tree or pods)."""
        keep = set(directories)
        with self._lock:
            self._drop([directory for directory in self._dirs if directory not in keep])

    def _drop(self, directories: Iterable[str]) -> None:
        for directory in directories:
            d = self._dirs.pop(directory, None)
            if d is not None:
                self._count -= len(d.fds)
                for fd in d.fds.values():
                    os.close(fd)

    def close(self) -> None:
        """Close every kept descriptor; the table stays usable and refills on reads."""
        with self._lock:
            _close_all(self._dirs)
            self._count = 0
