"""Tests of exporter.cgroup_names: cgroup names → (pod uid, container id)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.cgroup_names import (
    container_id_from_segment,
    container_of_pid,
    identify_path,
    parse_proc_cgroup,
    pod_uid_from_segment,
)
from exporter.errors import CgroupError

PROC = Path(__file__).parent / "fixtures" / "proc"

# The real GKE capture (tests/fixtures/proc/4242/cgroup, see PROVENANCE.md there).
GKE_UID = "74c13223-5a00-11e9-b385-42010a80018d"
GKE_ID = "34dc0b5e626f2c5c4c5170e34b10e7654ce36f0fcd532739f4445baabea03376"
UID = "2d8a5f3b-6c4e-4f70-9bac-1d2e3f4a5b6c"
UID_ = UID.replace("-", "_")
CID = "b1" * 32

DASHED_UID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}"
)
HEX64 = re.compile(r"[0-9a-f]{64}")


# --- pod segments ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "segment",
    [
        f"pod{UID}",  # cgroupfs
        f"kubepods-pod{UID_}.slice",  # systemd, guaranteed
        f"kubepods-burstable-pod{UID_}.slice",
        f"kubepods-besteffort-pod{UID_}.slice",
        f"kubelet-kubepods-besteffort-pod{UID_}.slice",  # kind: cgroup root /kubelet
        f"pod{UID.upper()}",  # lowercased on the way out
    ],
)
def test_pod_uid_from_segment_layouts(segment):
    assert pod_uid_from_segment(segment) == UID


def test_pod_uid_from_segment_static_pod_hash():
    # static pods: the kubelet's md5 config hash, 32 hex digits, kept as is
    assert pod_uid_from_segment("kubepods-burstable-pod9b2f6c1d8e4a7f3b5c0d2e6a8f1b3c5d.slice") \
        == "9b2f6c1d8e4a7f3b5c0d2e6a8f1b3c5d"


@pytest.mark.parametrize(
    "segment",
    [
        "kubepods", "kubepods.slice", "kubepods-burstable.slice", "burstable", "pod", "",
        f"kubepods-burstable-pod{UID}.slice",  # systemd never has dashes inside the uid
        f"pod{UID_}",  # cgroupfs never has underscores
        f"pod{UID}.slice", f"pod{UID}x", f"kubepods-guaranteed-pod{UID_}.slice",
        f"kubepods-burstable-pod{UID_}.scope",
    ],
)
def test_pod_uid_from_segment_rejects(segment):
    assert pod_uid_from_segment(segment) is None


# --- container segments ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "segment",
    [
        f"cri-containerd-{CID}.scope",  # containerd, systemd
        f"crio-{CID}.scope",  # CRI-O, systemd
        f"crio-{CID}",  # CRI-O, cgroupfs
        f"docker-{CID}.scope",  # Docker / cri-dockerd, systemd
        CID,  # Docker or containerd, cgroupfs
    ],
)
def test_container_id_from_segment_layouts(segment):
    assert container_id_from_segment(segment) == CID


@pytest.mark.parametrize(
    "segment",
    [
        f"crio-conmon-{CID}.scope",  # CRI-O's monitor process, not the container
        f"crio-conmon-{CID}",
        f"cri-containerd-{CID}",  # systemd scopes always end in .scope
        f"cri-containerd-{CID[:-1]}.scope",  # 63 digits
        CID + "0", CID[:-1], f"docker-{CID}.slice", "system.slice", f"pod{UID}", "",
    ],
)
def test_container_id_from_segment_rejects(segment):
    assert container_id_from_segment(segment) is None


# --- whole paths ----------------------------------------------------------------------------

def test_identify_path_examples():
    pod = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"
    assert identify_path(f"{pod}/cri-containerd-{CID}.scope") == (UID, CID)
    assert identify_path(pod) == (UID, None)
    # CRI-O puts the container's processes one level deeper when systemd runs inside it
    assert identify_path(f"{pod}/crio-{CID}.scope/container") == (UID, CID)
    assert identify_path(f"{pod}/crio-conmon-{CID}.scope") == (UID, None)
    assert identify_path("/") == (None, None)
    assert identify_path("") == (None, None)
    assert identify_path(f"/docker/{CID}") == (None, None)  # a container, but no pod's
    # seen from inside another cgroup namespace: leading ".." segments do not matter
    assert identify_path(f"/../../kubepods/pod{UID}/{CID}") == (UID, CID)


_VERSION_MOUNTS = {
    2: ["", "/sys/fs/cgroup", "/host/sys/fs/cgroup"],
    1: ["", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpuacct"],
}


def layout_path(
    driver: str, runtime: str, qos: str, mount: str, uid: str, cid: str, cgroup_root: str
) -> str:
    """The cgroup path the kubelet and runtime create for one container."""
    if driver == "systemd":
        pre = f"{cgroup_root}-" if cgroup_root else ""
        parts = [f"{cgroup_root}.slice"] if cgroup_root else []
        parts.append(f"{pre}kubepods.slice")
        us = uid.replace("-", "_")
        if qos == "guaranteed":
            parts.append(f"{pre}kubepods-pod{us}.slice")
        else:
            parts += [f"{pre}kubepods-{qos}.slice", f"{pre}kubepods-{qos}-pod{us}.slice"]
        scope = {"containerd": "cri-containerd", "crio": "crio", "docker": "docker"}[runtime]
        parts.append(f"{scope}-{cid}.scope")
    else:
        parts = [cgroup_root] if cgroup_root else []
        parts.append("kubepods")
        if qos != "guaranteed":
            parts.append(qos)
        parts += [f"pod{uid}", f"crio-{cid}" if runtime == "crio" else cid]
    return mount + "/" + "/".join(parts)


layouts = st.tuples(
    st.sampled_from(["systemd", "cgroupfs"]),
    st.sampled_from(["containerd", "crio", "docker"]),
    st.sampled_from(["guaranteed", "burstable", "besteffort"]),
    st.sampled_from([1, 2]).flatmap(lambda v: st.sampled_from(_VERSION_MOUNTS[v])),
    st.sampled_from(["", "kubelet"]),
)
uids = st.one_of(st.uuids().map(str), st.binary(min_size=16, max_size=16).map(bytes.hex))
cids = st.binary(min_size=32, max_size=32).map(bytes.hex)


@given(layout=layouts, uid=uids, cid=cids)
def test_identify_path_round_trips_every_layout(layout, uid, cid):
    driver, runtime, qos, mount, cgroup_root = layout
    path = layout_path(driver, runtime, qos, mount, uid, cid, cgroup_root)
    assert identify_path(path) == (uid, cid)
    # and the same path as a v2 /proc/<pid>/cgroup line, or a v1 memory line
    assert parse_proc_cgroup(f"0::{path}\n") == path
    assert parse_proc_cgroup(f"9:memory:{path}\n1:name=systemd:/\n0::/\n") == path


junk = st.one_of(
    st.text(),
    st.text(alphabet="0123456789abcdefABCDEF-_./:podkubesliceritnamyfx\n "),
)


@given(junk)
def test_junk_never_raises(text):
    uid = pod_uid_from_segment(text)
    assert uid is None or DASHED_UID.fullmatch(uid)
    cid = container_id_from_segment(text)
    assert cid is None or HEX64.fullmatch(cid)
    got_uid, got_cid = identify_path(text)
    assert got_uid is None or DASHED_UID.fullmatch(got_uid)
    assert got_cid is None or HEX64.fullmatch(got_cid)
    found = parse_proc_cgroup(text)
    assert found is None or None not in identify_path(found)


# --- /proc/<pid>/cgroup ---------------------------------------------------------------------

def test_parse_proc_cgroup_gke_capture():
    text = (PROC / "4242" / "cgroup").read_text()
    assert parse_proc_cgroup(text) == f"/kubepods/besteffort/pod{GKE_UID}/{GKE_ID}"


def test_parse_proc_cgroup_preference_and_misses():
    pod_path = f"/kubepods/burstable/pod{UID}/{CID}"
    other = f"/kubepods/burstable/pod{UID}/{'c' * 64}"
    # hybrid host: the unified line is "/" but the v1 memory line names the container
    assert parse_proc_cgroup(f"4:memory:{pod_path}\n0::/\n") == pod_path
    # when both name one, the unified line wins, then memory, then cpu, then name=systemd
    assert parse_proc_cgroup(f"4:memory:{other}\n0::{pod_path}\n") == pod_path
    assert parse_proc_cgroup(f"1:name=systemd:{other}\n2:cpu,cpuacct:{pod_path}\n") == pod_path
    assert parse_proc_cgroup(f"1:name=systemd:{pod_path}\n") == pod_path
    # controllers that do not matter to us are not consulted
    assert parse_proc_cgroup(f"11:devices:{pod_path}\n") is None
    assert parse_proc_cgroup("0::/init.scope\n") is None
    assert parse_proc_cgroup("") is None
    assert parse_proc_cgroup("not a cgroup file\n") is None


def test_container_of_pid_gke_capture():
    assert container_of_pid(PROC, 4242) == (GKE_UID, GKE_ID)


def test_container_of_pid_fixture_proc():
    assert container_of_pid(str(PROC), 777) == ("4fa07b5d-8e60-4192-bdce-3f4a5b6c7d8e", "e1" * 32)
    assert container_of_pid(PROC, 1) is None  # host process
    assert container_of_pid(PROC, 999999) is None  # vanished


def test_container_of_pid_unreadable_raises_cgroup_error(tmp_path):
    (tmp_path / "5" / "cgroup").mkdir(parents=True)  # a directory cannot be read as a file
    with pytest.raises(CgroupError):
        container_of_pid(tmp_path, 5)


def test_container_of_pid_this_machine():
    """Real /proc: must not raise; here (no pod) None, inside a pod a consistent answer."""
    got = container_of_pid("/proc", os.getpid())
    text = Path(f"/proc/{os.getpid()}/cgroup").read_text()
    found = parse_proc_cgroup(text)
    assert got == (None if found is None else identify_path(found))
