"""Tests of exporter.cgroup_files: reading and parsing cgroup interface files."""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.cgroup_files import (
    parse_flat_keyed,
    parse_int,
    parse_int_or_max,
    pick_flat_keyed,
    read_file,
)

V2 = Path(__file__).parent / "fixtures" / "cgroup" / "v2-systemd-containerd"
TELEGRAF = next(V2.rglob("cri-containerd-" + "b1" * 32 + ".scope"))


def test_read_file_matches_content():
    path = TELEGRAF / "memory.current"
    assert read_file(str(path)) == b"13071106048\n"


def test_read_file_large_and_empty(tmp_path):
    big = tmp_path / "big"
    payload = b"x" * 200_000  # more than one 64 KiB read
    big.write_bytes(payload)
    assert read_file(str(big)) == payload
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert read_file(str(empty)) == b""


def test_read_file_missing_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_file(str(tmp_path / "nope"))
    with pytest.raises(IsADirectoryError):
        read_file(str(tmp_path))


def test_parse_flat_keyed_telegraf_cpu_stat():
    table = parse_flat_keyed(read_file(str(TELEGRAF / "cpu.stat")))
    # read off cgroup/v2-telegraf/cpu.stat, line by line
    assert table == {
        "usage_usec": 98701325189,
        "user_usec": 61355716211,
        "system_usec": 37345608977,
        "core_sched.force_idle_usec": 0,
        "nr_periods": 3936904,
        "nr_throttled": 6004,
        "throttled_usec": 19175137007,
        "nr_bursts": 0,
        "burst_usec": 0,
    }


def test_parse_flat_keyed_telegraf_memory_stat():
    table = parse_flat_keyed((TELEGRAF / "memory.stat").read_bytes())
    assert table["anon"] == 2471755776
    assert table["inactive_file"] == 2935459840
    assert table["file"] == 8532865024
    assert all(isinstance(v, int) for v in table.values())


def test_parse_flat_keyed_accepts_str_and_blank_lines():
    assert parse_flat_keyed("a 1\n\nb  -2\n") == {"a": 1, "b": -2}
    assert parse_flat_keyed(b"") == {}


@pytest.mark.parametrize(
    "content",
    [
        b"usage_usec\n",  # no value
        b"usage_usec 1 2\n",  # too many fields
        b"usage_usec one\n",  # not an integer
        b"usage_usec 1.5\n",
        b"a 1\na 2\n",  # repeated key
        b"\xff\xfe 1\n",  # not ASCII
        b"some avg10=0.00 avg60=0.08 avg300=0.06 total=293391454\n",  # a nested keyed file
    ],
)
def test_parse_flat_keyed_rejects_garbage(content):
    with pytest.raises(ValueError):
        parse_flat_keyed(content)


def test_pick_flat_keyed_whole_keys_only():
    data = (TELEGRAF / "memory.stat").read_bytes()
    # "file" must not hit "file_mapped" or "inactive_file", "anon" not "anon_thp";
    # "anon" is the first line (no newline before it); "missing" is absent
    assert pick_flat_keyed(data, ("file", "anon", "inactive_file", "anon_thp", "missing")) == [
        8532865024, 2471755776, 2935459840, 2097152, None]
    assert pick_flat_keyed(b"a 1\nb 2", ("b",)) == [2]  # last line without newline
    with pytest.raises(ValueError):
        pick_flat_keyed(b"anon lots\n", ("anon",))
    with pytest.raises(ValueError):
        pick_flat_keyed(b"anon 1 2\n", ("anon",))


def test_parse_int():
    assert parse_int(b"13071106048\n") == 13071106048
    assert parse_int("0") == 0
    for bad in (b"", b"\n", b"1 2\n", b"max\n", b"12abc", b"\xff"):
        with pytest.raises(ValueError):
            parse_int(bad)


def test_parse_int_or_max():
    assert parse_int_or_max(b"max\n") == math.inf
    # the content of realworld cgroup/v2-telegraf/memory.max
    assert parse_int_or_max(b"103079215104\n") == 103079215104.0
    with pytest.raises(ValueError):
        parse_int_or_max(b"maximum\n")


keys = st.from_regex(r"[a-z][a-z0-9_.]{0,30}", fullmatch=True)
values = st.integers(min_value=-(2**63), max_value=2**64 - 1)


@given(st.dictionaries(keys, values, max_size=60))
def test_parse_flat_keyed_round_trips(table):
    content = "".join(f"{k} {v}\n" for k, v in table.items())
    assert parse_flat_keyed(content.encode()) == table
    assert parse_flat_keyed(content) == table


@given(st.dictionaries(keys, values, max_size=60), st.lists(keys, max_size=6))
def test_pick_flat_keyed_agrees_with_full_parse(table, extra):
    content = "".join(f"{k} {v}\n" for k, v in table.items()).encode()
    wanted = tuple(list(table)[:4] + extra)
    assert pick_flat_keyed(content, wanted) == [table.get(k) for k in wanted]


@given(st.binary(max_size=300))
def test_parsers_on_arbitrary_bytes_raise_only_value_error(data):
    try:
        table = parse_flat_keyed(data)
    except ValueError:
        pass
    else:
        assert all(isinstance(k, str) and isinstance(v, int) for k, v in table.items())
    try:
        picked = pick_flat_keyed(data, ("anon", "inactive_file"))
    except ValueError:
        pass
    else:
        assert all(v is None or isinstance(v, int) for v in picked)
    with contextlib.suppress(ValueError):
        assert isinstance(parse_int(data), int)


def _first_existing(*paths: str) -> str:
    for path in paths:
        if os.path.isfile(path):
            return path
    raise AssertionError(f"none of {paths} on this machine: is /sys/fs/cgroup mounted?")


def test_parse_real_flat_keyed_file_of_this_machine():
    # v1 (this build machine, hybrid): memory controller; v2: the root's cpu.stat
    path = _first_existing("/sys/fs/cgroup/memory/memory.stat", "/sys/fs/cgroup/cpu.stat")
    table = parse_flat_keyed(read_file(path))
    assert table
    assert all(isinstance(v, int) for v in table.values())
    expected_key = "total_rss" if path.endswith("memory.stat") else "usage_usec"
    assert expected_key in table


def test_parse_real_single_int_file_of_this_machine():
    path = _first_existing(
        "/sys/fs/cgroup/cpuacct/cpuacct.usage",
        "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage",
        "/sys/fs/cgroup/memory/memory.usage_in_bytes",
    )
    assert parse_int(read_file(path)) >= 0
