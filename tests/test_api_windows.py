"""OpenCost's window grammar: hand-written cases and properties of the arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from storefakes import ts

from api.errors import BadParameter
from api.windows import (
    UNITS,
    Window,
    format_duration,
    parse_duration,
    parse_step,
    parse_window,
    rfc3339,
    step_seconds,
)

#: Wednesday 2026-11-04 15:47:12 UTC.
NOW = ts("2026-11-04T15:47:12")
nows = st.integers(ts("1990-01-01"), ts("2200-01-01"))
durations = st.tuples(st.integers(1, 500), st.sampled_from(list(UNITS)))


@pytest.mark.parametrize(("text", "start", "end"), [
    ("today", "2026-11-04", "2026-11-05"),
    ("yesterday", "2026-11-03", "2026-11-04"),
    ("week", "2026-11-01", "2026-11-08"),  # weeks start on Sunday
    ("lastweek", "2026-10-25", "2026-11-01"),
    ("month", "2026-11-01", "2026-12-01"),
    ("lastmonth", "2026-10-01", "2026-11-01"),
    ("2026-11-01T00:00:00Z,2026-11-02T00:00:00Z", "2026-11-01", "2026-11-02"),
    ("2026-11-01T02:00:00+02:00,2026-11-02T00:00:00Z", "2026-11-01", "2026-11-02"),
])
def test_named_and_pair_windows(text, start, end):
    assert parse_window(text, NOW) == Window(ts(start), ts(end))


def test_january_lastmonth_and_sunday_week():
    assert parse_window("lastmonth", ts("2027-01-15")) == Window(ts("2026-12-01"),
                                                                 ts("2027-01-01"))
    sunday = ts("2026-11-01T10:00")
    assert parse_window("week", sunday).start == ts("2026-11-01")


def test_durations_end_now_unaligned_and_offset():
    assert parse_window("30m", NOW) == Window(NOW - 1800, NOW)
    assert parse_window("24h", NOW) == Window(NOW - 86400, NOW)
    assert parse_window("7d", NOW) == Window(NOW - 7 * 86400, NOW)
    assert parse_window("2w", NOW, offset=86400) == Window(NOW - 15 * 86400, NOW - 86400)
    assert parse_window("1700000000,1700086400", NOW) == Window(1700000000, 1700086400)


def test_steps():
    assert [parse_step(s) for s in ("hour", "day", "week", "30m", "1h", "1d")] == [
        3600, 86400, 604800, 1800, 3600, 86400]
    w = Window(0, 86400)
    assert step_seconds(w, 3600, False) == 3600
    assert step_seconds(w, 3600, True) == 86400 == step_seconds(w, None, False)
    with pytest.raises(BadParameter) as err:
        step_seconds(w, 7 * 3600, False)
    assert err.value.parameter == "step"


@pytest.mark.parametrize("text", ["", "  ", "tomorrow", "5", "5s", "-3h", "3.5h", "1y",
                                  "1,2,3", "a,b", "2026-11-01,2026-11-02",
                                  "2026-11-01T00:00:00Z,", "9999999999999,1"])
def test_bad_windows(text):
    with pytest.raises(BadParameter) as err:
        parse_window(text, NOW)
    assert err.value.parameter == "window"


@given(nows, st.sampled_from(["today", "yesterday", "week", "lastweek", "month",
                              "lastmonth"]))
def test_calendar_windows_are_whole_periods_in_order(now, name):
    w = parse_window(name, now)
    assert w.start < w.end and w.start % 86400 == 0 and w.end % 86400 == 0
    if name in ("today", "week", "month"):
        assert w.start <= now < w.end
    else:
        assert w.end <= now
    if "week" in name:
        assert w.seconds == 7 * 86400
        assert datetime.fromtimestamp(w.start, UTC).weekday() == 6  # Sunday
    if "month" in name:
        assert datetime.fromtimestamp(w.start, UTC).day == 1
        assert datetime.fromtimestamp(w.end, UTC).day == 1


@given(nows, durations)
def test_duration_windows_have_the_right_length(now, dur):
    n, unit = dur
    w = parse_window(f"{n}{unit}", now)
    assert w == Window(now - n * UNITS[unit], now)


@given(nows, st.sampled_from(["today", "lastweek", "month", "7d", "90m"]), durations)
def test_offset_shifts_exactly(now, text, dur):
    offset = parse_duration(f"{dur[0]}{dur[1]}", "offset")
    a, b = parse_window(text, now), parse_window(text, now, offset)
    assert (b.start, b.end) == (a.start - offset, a.end - offset)


@given(st.integers(0, ts("9000-01-01")), st.integers(1, 10**9))
def test_rfc3339_and_unix_pairs_round_trip(start, length):
    end = start + length
    assert parse_window(f"{rfc3339(start)},{rfc3339(end)}", NOW) == Window(start, end)
    assert parse_window(f"{start},{end}", NOW) == Window(start, end)


@given(durations)
def test_duration_text_round_trips(dur):
    seconds = dur[0] * UNITS[dur[1]]
    assert parse_duration(format_duration(seconds), "x") == seconds
