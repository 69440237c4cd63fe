"""Discover every pod container's cgroup on the node and read its CPU and memory.

This is the exporter's hot path: :meth:`CgroupReader.scan` and
:meth:`CgroupReader.read` run for every container on every Prometheus scrape
(about 110 pods / 250 containers on a full node). Hence ``os.scandir`` with
``d_type`` (no ``stat`` per entry), string concatenation instead of pathlib,
one ``pread`` per file on descriptors kept open across scrapes
(:mod:`exporter.cgroup_fds`), a cached location of the kubepods root(s) and
reuse of unchanged :class:`ContainerCgroup` records between scans.

Both cgroup versions are supported. On v2 a container is one directory; on v1
the same relative path repeats under each controller mount (``cpu,cpuacct``
or separate ``cpu`` and ``cpuacct``, and ``memory``), so the walk happens in
one mount and the others are derived. Hybrid hosts (v1 controllers plus a
``unified`` v2 mount that holds no controllers) are read as v1, like the
kubelet does.

Values follow cAdvisor, so they agree with what the kubelet reports and
evicts on: working set is usage minus inactive file cache, floored at zero.
A file that is missing, unreadable, unparsable or lacks a key we need turns
its fields into NaN and adds one to ``ContainerUsage.errors``; a NaN field
therefore always comes with ``errors > 0`` and never with a silent fallback.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Container
from dataclasses import dataclass

from exporter.cgroup_fds import OpenFiles
from exporter.cgroup_files import parse_int, pick_flat_keyed
from exporter.cgroup_names import container_id_from_segment, pod_uid_from_segment
from exporter.errors import CgroupError, CgroupGone
from exporter.model import ContainerUsage

__all__ = ["CgroupReader", "ContainerCgroup"]

_NAN = math.nan
#: kubepods root names: cgroupfs ``kubepods``, systemd ``kubepods.slice``, and
#: ``<cgroup-root>-kubepods.slice`` when the kubelet has a cgroup root (kind).
_KUBEPODS_RE = re.compile(r"(?:.*-)?kubepods(?:\.slice)?", re.ASCII)
_QOS_RE = re.compile(
    r"(?:.*-)?kubepods-(?P<slice>burstable|besteffort)\.slice|(?P<dir>burstable|besteffort)",
    re.ASCII,
)
_ROOT_SEARCH_DEPTH = 3

_V2_CPU_KEYS = ("usage_usec", "nr_periods", "nr_throttled", "throttled_usec")
_V2_MEMORY_KEYS = ("inactive_file", "anon")
_V1_CPU_KEYS = ("nr_periods", "nr_throttled", "throttled_time")
_V1_MEMORY_KEYS = ("total_inactive_file", "total_rss")


@dataclass(frozen=True, slots=True)
class ContainerCgroup:
    """Where one pod container's cgroup lives; found by scan(), consumed by read().

    On v2 the three directories are the same; on v1 they are the container's
    directory under each controller mount, "" when the host lacks that mount.
    """

    pod_uid: str
    container_id: str
    qos_class: str  # "guaranteed" | "burstable" | "besteffort"
    #: Path relative to the hierarchy root, as the host's /proc/<pid>/cgroup shows it.
    path: str
    cpu_dir: str
    cpuacct_dir: str
    memory_dir: str


def _subdirs(path: str) -> list[os.DirEntry[str]]:
    """Child directories of a cgroup; [] if it vanished (a pod exiting mid-scan)."""
    try:
        with os.scandir(path) as it:
            return [entry for entry in it if entry.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise CgroupError(f"cannot list {path}: {exc}") from exc


def _first_dir(root: str, *names: str) -> str:
    """The first of several possible v1 controller mount names present under root."""
    for name in names:
        path = os.path.join(root, name)
        if os.path.isdir(path):
            return path
    return ""


def _load(files: OpenFiles, directory: str, name: str) -> bytes | None:
    """A file's bytes, None when it cannot be read; CgroupGone if its cgroup vanished."""
    if not directory:
        return None
    try:
        return files.read(directory, name)
    except OSError as exc:
        if not os.path.isdir(directory):
            raise CgroupGone(f"{directory} vanished") from exc
        return None


def _flat(
    files: OpenFiles, directory: str, name: str, keys: tuple[str, ...]
) -> tuple[list[float], int]:
    """The wanted keys of a flat keyed file as floats, and 1 if the file failed."""
    data = _load(files, directory, name)
    if data is not None:
        try:
            picked = pick_flat_keyed(data, keys)
        except ValueError:
            pass
        else:
            values = [_NAN if v is None else float(v) for v in picked]
            return values, int(None in picked)
    return [_NAN] * len(keys), 1


def _single(files: OpenFiles, directory: str, name: str) -> tuple[float, int]:
    """A single-integer file as a float, and 1 if the file failed."""
    data = _load(files, directory, name)
    if data is not None:
        try:
            return float(parse_int(data)), 0
        except ValueError:
            pass
    return _NAN, 1


def _usage(
    cpu_s: float, periods: float, throttled: float, throttled_s: float,
    memory: float, inactive_file: float, rss: float, errors: int,
) -> ContainerUsage:
    """Assemble a reading; the working set stays NaN when either input is NaN."""
    working_set = memory - inactive_file
    if working_set < 0.0:  # False for NaN, which is kept
        working_set = 0.0
    return ContainerUsage(
        cpu_usage_seconds=cpu_s, cpu_periods=periods, cpu_throttled_periods=throttled,
        cpu_throttled_seconds=throttled_s, memory_usage_bytes=memory,
        memory_working_set_bytes=working_set, memory_rss_bytes=rss, errors=errors,
    )


class CgroupReader:
    """Finds pod container cgroups below a cgroup mount and reads their usage."""

    def __init__(self, root: str | os.PathLike[str] = "/sys/fs/cgroup",
                 files: OpenFiles | None = None) -> None:
        self.root = os.fspath(root)
        #: Descriptors of the files read, kept for the next scrape.
        self.files = OpenFiles() if files is None else files
        #: 2 on a unified hierarchy; a hybrid host (v1 controllers + "unified") counts as 1.
        self.version = 2 if os.path.exists(os.path.join(self.root, "cgroup.controllers")) else 1
        if self.version == 2:
            self._cpu = self._cpuacct = self._memory = self.root
        else:
            self._cpu = _first_dir(self.root, "cpu,cpuacct", "cpuacct,cpu", "cpu")
            self._cpuacct = _first_dir(self.root, "cpu,cpuacct", "cpuacct,cpu", "cpuacct")
            self._memory = _first_dir(self.root, "memory")
        #: The hierarchy that is walked; the other controllers repeat its paths.
        self._walk_root = self._cpuacct or self._memory or self._cpu
        self._kubepods: list[str] = []  # relative paths, found once, kept while they exist
        self._known: dict[tuple[str, str], ContainerCgroup] = {}

    def scan(
        self, keep_open: Container[tuple[str, str]] | None = None
    ) -> dict[tuple[str, str], ContainerCgroup]:
        """Every pod container cgroup on the node, keyed by (pod uid, container id).

        Pod sandbox (pause) containers are included; the caller ignores ids it
        does not know. Pods and containers that vanish mid-scan are skipped.
        Kept file descriptors of containers not found, or not in ``keep_open``
        when given (the pod cache's containers: the others are not read), close.
        Raises CgroupError when the root is no cgroup mount or a kubepods
        directory cannot be listed (permissions: the exporter sees nothing).
        """
        if not self._walk_root or not os.path.isdir(self._walk_root):
            raise CgroupError(f"{self.root}: neither a cgroup v2 root nor v1 cpuacct/memory")
        if not self._kubepods or not all(
            os.path.isdir(self._walk_root + rel) for rel in self._kubepods
        ):
            self._kubepods = self._find_kubepods()
        found: dict[tuple[str, str], ContainerCgroup] = {}
        for rel in self._kubepods:
            for entry in _subdirs(self._walk_root + rel):
                uid = pod_uid_from_segment(entry.name)
                if uid is not None:
                    self._scan_pod(f"{rel}/{entry.name}", uid, "guaranteed", found)
                    continue
                m = _QOS_RE.fullmatch(entry.name)
                if m is None:
                    continue
                qos = m.group("slice") or m.group("dir")
                qos_rel = f"{rel}/{entry.name}"
                for pod in _subdirs(self._walk_root + qos_rel):
                    uid = pod_uid_from_segment(pod.name)
                    if uid is not None:
                        self._scan_pod(f"{qos_rel}/{pod.name}", uid, qos, found)
        self._known = found
        self.files.retain(d for key, cg in found.items() if keep_open is None or key in keep_open
                          for d in (cg.cpu_dir, cg.cpuacct_dir, cg.memory_dir))
        return dict(found)

    def close(self) -> None:
        """Close every kept descriptor (the reader stays usable)."""
        self.files.close()

    def _find_kubepods(self) -> list[str]:
        """Relative paths of the kubepods root(s), up to three levels down (kind nests it)."""
        roots: list[str] = []
        level = [""]
        for _ in range(_ROOT_SEARCH_DEPTH):
            deeper: list[str] = []
            for rel in level:
                try:
                    children = _subdirs(self._walk_root + rel)
                except CgroupError:
                    continue  # an unreadable system cgroup cannot hold kubepods we could read
                for entry in children:
                    child = f"{rel}/{entry.name}"
                    (roots if _KUBEPODS_RE.fullmatch(entry.name) else deeper).append(child)
            level = deeper
        return sorted(roots)

    def _scan_pod(
        self, rel: str, uid: str, qos: str, found: dict[tuple[str, str], ContainerCgroup]
    ) -> None:
        """Add the container cgroups of one pod directory, reusing unchanged records."""
        for entry in _subdirs(self._walk_root + rel):
            cid = container_id_from_segment(entry.name)
            if cid is None:
                continue
            path = f"{rel}/{entry.name}"
            key = (uid, cid)
            cg = self._known.get(key)
            if cg is None or cg.path != path or cg.qos_class != qos:
                cg = ContainerCgroup(
                    pod_uid=uid, container_id=cid, qos_class=qos, path=path,
                    cpu_dir=self._cpu + path if self._cpu else "",
                    cpuacct_dir=self._cpuacct + path if self._cpuacct else "",
                    memory_dir=self._memory + path if self._memory else "",
                )
            found[key] = cg

    def read(self, cg: ContainerCgroup) -> ContainerUsage:
        """One reading of a container; raises CgroupGone if its cgroup vanished.

        A vanished cgroup's kept descriptors are closed before CgroupGone propagates.
        """
        try:
            return self._read(cg)
        except CgroupGone:
            self.files.drop((cg.cpu_dir, cg.cpuacct_dir, cg.memory_dir))
            raise

    def _read(self, cg: ContainerCgroup) -> ContainerUsage:
        """The reading itself: v2 has three files in one directory, v1 four over three mounts."""
        f = self.files
        if self.version == 2:
            d = cg.memory_dir
            (usage, periods, throttled, throttled_us), e_cpu = _flat(f, d, "cpu.stat",
                                                                     _V2_CPU_KEYS)
            memory, e_mem = _single(f, d, "memory.current")
            (inactive, anon), e_stat = _flat(f, d, "memory.stat", _V2_MEMORY_KEYS)
            return _usage(usage / 1e6, periods, throttled, throttled_us / 1e6,
                          memory, inactive, anon, e_cpu + e_mem + e_stat)
        usage_ns, e_acct = _single(f, cg.cpuacct_dir, "cpuacct.usage")
        (periods, throttled, throttled_ns), e_cpu = _flat(f, cg.cpu_dir, "cpu.stat",
                                                          _V1_CPU_KEYS)
        memory, e_mem = _single(f, cg.memory_dir, "memory.usage_in_bytes")
        (inactive, rss), e_stat = _flat(f, cg.memory_dir, "memory.stat", _V1_MEMORY_KEYS)
        return _usage(usage_ns / 1e9, periods, throttled, throttled_ns / 1e9,
                      memory, inactive, rss, e_acct + e_cpu + e_mem + e_stat)
