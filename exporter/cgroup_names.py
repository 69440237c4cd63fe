"""Which pod and container a cgroup belongs to, from its name alone.

The kubelet and the container runtimes encode identity in cgroup directory
names, and the encoding differs by cgroup driver and runtime:

* cgroupfs driver: ``kubepods/burstable/pod<uid>/<id>`` (Docker, containerd) or
  ``.../pod<uid>/crio-<id>`` (CRI-O);
* systemd driver: ``kubepods.slice/kubepods-burstable.slice/
  kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope``
  (also ``crio-<id>.scope`` and ``docker-<id>.scope``); systemd escapes the pod
  uid's dashes as underscores because ``-`` separates slice levels, and a custom
  cgroup root (kind: ``/kubelet``) prefixes every slice name (``kubelet-kubepods-...``).

Static pods carry the kubelet's config hash as uid: 32 hex digits, no dashes.
That is what the cgroup name holds, so it is returned as is (lowercased); the
API's mirror pod has its own uid, and only the container ids match it.

Everything here is pure string work, kept apart from the filesystem walk so the
GPU collector can map ``/proc/<pid>/cgroup`` with the very same rules.
"""

from __future__ import annotations

import os
import re

from exporter.errors import CgroupError

__all__ = [
    "container_id_from_segment",
    "container_of_pid",
    "identify_path",
    "parse_proc_cgroup",
    "pod_uid_from_segment",
]

_H = "[0-9a-fA-F]"
_UID_DASH = rf"{_H}{{8}}-{_H}{{4}}-{_H}{{4}}-{_H}{{4}}-{_H}{{12}}"
_UID_UNDERSCORE = rf"{_H}{{8}}_{_H}{{4}}_{_H}{{4}}_{_H}{{4}}_{_H}{{12}}"
_UID_STATIC = rf"{_H}{{32}}"

_POD_RE = re.compile(
    rf"(?:pod(?P<dash>{_UID_DASH}|{_UID_STATIC})"
    rf"|(?:.*-)?kubepods-(?:burstable-|besteffort-)?pod(?P<us>{_UID_UNDERSCORE}|{_UID_STATIC})"
    r"\.slice)",
    re.ASCII,
)
# crio-conmon-<id> never matches: "conmon-" is not part of a 64-hex id.
_CONTAINER_RE = re.compile(
    r"(?:(?:cri-containerd|crio|docker)-(?P<scope>[0-9a-f]{64})\.scope"
    r"|crio-(?P<crio>[0-9a-f]{64})"
    r"|(?P<bare>[0-9a-f]{64}))",
    re.ASCII,
)
_CPU_CONTROLLERS = frozenset(("cpu", "cpuacct"))


def pod_uid_from_segment(segment: str) -> str | None:
    """The pod uid a pod-level cgroup directory name encodes, dashed and lowercase."""
    m = _POD_RE.fullmatch(segment)
    if m is None:
        return None
    uid = m.group("dash") or m.group("us")
    return uid.replace("_", "-").lower()


def container_id_from_segment(segment: str) -> str | None:
    """The 64-hex runtime container id of a container cgroup name, else None.

    CRI-O's ``crio-conmon-<id>`` scope holds the monitor process, not the
    container, and deliberately yields None.
    """
    m = _CONTAINER_RE.fullmatch(segment)
    if m is None:
        return None
    return m.group("scope") or m.group("crio") or m.group("bare")


def identify_path(path: str) -> tuple[str | None, str | None]:
    """(pod uid, container id) of a cgroup path, absolute or as /proc shows it.

    The innermost pod segment wins (a cluster nested in a pod has two), and the
    container must be its direct child: deeper directories (CRI-O's
    ``container`` sub-cgroup) still belong to that container.
    """
    segments = path.split("/")
    for i in range(len(segments) - 1, -1, -1):
        uid = pod_uid_from_segment(segments[i])
        if uid is not None:
            cid = container_id_from_segment(segments[i + 1]) if i + 1 < len(segments) else None
            return uid, cid
    return None, None


def parse_proc_cgroup(text: str) -> str | None:
    """The cgroup path of /proc/<pid>/cgroup that names a pod container, else None.

    Preference: the unified ``0::`` line (pure v2), then the v1 memory, cpu /
    cpuacct and name=systemd hierarchies, which the kubelet always places the
    container in. On hybrid hosts the ``0::`` line may be just ``/``, so a
    line only counts when its path identifies both pod and container.
    """
    ranked: list[tuple[int, str]] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        names = set(controllers.split(","))
        if controllers == "":
            rank = 0
        elif "memory" in names:
            rank = 1
        elif names & _CPU_CONTROLLERS:
            rank = 2
        elif "name=systemd" in names:
            rank = 3
        else:
            continue
        ranked.append((rank, path))
    ranked.sort(key=lambda item: item[0])
    for _, path in ranked:
        uid, cid = identify_path(path)
        if uid is not None and cid is not None:
            return path
    return None


def container_of_pid(proc_root: str | os.PathLike[str], pid: int) -> tuple[str, str] | None:
    """(pod uid, container id) of a process, or None if it exited or is no pod's.

    NVML lists GPU processes by host pid; this attributes them to containers.
    A process can exit between NVML's answer and this read, which is normal
    and yields None. Any other OSError becomes :class:`CgroupError`: the
    exporter cannot see /proc (no hostPID, permissions) and the collector
    wrapper must count it rather than crash.
    """
    path = os.path.join(os.fspath(proc_root), str(pid), "cgroup")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError as exc:
        raise CgroupError(f"cannot read {path}: {exc}") from exc
    found = parse_proc_cgroup(text)
    if found is None:
        return None
    uid, cid = identify_path(found)
    if uid is None or cid is None:
        return None
    return uid, cid
