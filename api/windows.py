"""OpenCost's ``window``, ``offset`` and ``step`` grammar, as Unix seconds (UTC).

Supported windows, each a half-open ``[start, end)``:

* ``today``, ``yesterday``; ``week`` / ``lastweek`` (weeks start on Sunday, as in
  OpenCost); ``month`` / ``lastmonth``. Calendar windows span their whole period
  (``today`` ends at the next midnight), so any step of an hour or a day divides them;
  the API reports no step that starts after ``now`` and clips the last one to ``now``.
* durations ``30m``, ``24h``, ``7d``, ``2w``: ending ``now``, not aligned;
* an RFC3339 pair ``2026-11-01T00:00:00Z,2026-11-02T00:00:00Z`` (an offset is required);
* a Unix-seconds pair ``1700000000,1700086400``.

``offset`` (a duration) moves any window earlier by exactly that much. ``now`` is always
passed in, so the arithmetic is a pure function the tests can drive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from api.errors import BadParameter

__all__ = ["MAX_STEPS", "UNITS", "Window", "format_duration", "parse_duration", "parse_step",
           "parse_window", "rfc3339", "step_seconds"]

#: Seconds per duration unit.
UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d{1,7})([mhdw])")
_NAMED_STEPS = {"hour": 3600, "day": 86400, "week": 7 * 86400}
_UNIX_PAIR = re.compile(r"(\d{1,12}),(\d{1,12})")
#: Latest instant accepted anywhere: 9999-12-31T23:59:59Z.
_MAX_TIME = 253402300799
#: Longest duration accepted (ten years), so no arithmetic leaves datetime's range.
_MAX_SPAN = 3653 * 86400
_DAY = 86400
#: Most steps one response may hold: bounds the memory a request can ask for.
MAX_STEPS = 10_000


@dataclass(frozen=True)
class Window:
    """``[start, end)`` in Unix seconds."""

    start: int
    end: int

    @property
    def seconds(self) -> int:
        return self.end - self.start


def parse_duration(text: str, parameter: str) -> int:
    """``"30m"`` → 1800; BadParameter(``parameter``) for anything else or zero."""
    m = _DURATION.fullmatch(text.strip())
    if not m:
        raise BadParameter(parameter, f"expected a duration like 30m, 24h, 7d or 2w, "
                                      f"got {text!r}")
    seconds = int(m[1]) * UNITS[m[2]]
    if seconds <= 0 or seconds > _MAX_SPAN:
        raise BadParameter(parameter, f"duration must be between 1m and {_MAX_SPAN // _DAY}d")
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest duration text for a positive multiple of a minute (inverse of parse)."""
    for unit in ("w", "d", "h", "m"):
        if seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    raise ValueError(f"not a whole number of minutes: {seconds}")


def parse_step(text: str) -> int:
    """A step: a duration or ``hour`` / ``day`` / ``week``, in seconds."""
    named = _NAMED_STEPS.get(text.strip().lower())
    return named if named is not None else parse_duration(text, "step")


def _midnight(now: int) -> int:
    return now - now % _DAY


def _month_start(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


def _calendar(name: str, now: int) -> tuple[int, int] | None:
    today = _midnight(now)
    if name == "today":
        return today, today + _DAY
    if name == "yesterday":
        return today - _DAY, today
    if name in ("week", "lastweek"):
        # Python's weekday(): Monday 0 … Sunday 6; OpenCost's weeks start on Sunday
        sunday = today - ((datetime.fromtimestamp(today, UTC).weekday() + 1) % 7) * _DAY
        start = sunday if name == "week" else sunday - 7 * _DAY
        return start, start + 7 * _DAY
    if name in ("month", "lastmonth"):
        d = datetime.fromtimestamp(now, UTC)
        y, m = (d.year, d.month) if name == "month" else (
            (d.year, d.month - 1) if d.month > 1 else (d.year - 1, 12))
        ny, nm = (y, m + 1) if m < 12 else (y + 1, 1)
        return _month_start(y, m), _month_start(ny, nm)
    return None


def _rfc3339(text: str) -> int:
    try:
        d = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadParameter("window", f"not an RFC3339 time: {text!r}") from None
    if d.tzinfo is None or "T" not in text.upper():
        raise BadParameter("window", f"RFC3339 time needs a date, a time and a zone "
                                     f"(e.g. 2026-11-01T00:00:00Z): {text!r}")
    return int(d.timestamp())


def rfc3339(t: int) -> str:
    """Unix seconds as ``2026-11-01T00:00:00Z``."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_window(text: str, now: int, offset: int = 0) -> Window:
    """Resolve an OpenCost window at ``now``, moved ``offset`` seconds earlier."""
    raw = text.strip()
    if not raw:
        raise BadParameter("window", "must not be empty")
    if not 0 < now <= _MAX_TIME:
        raise ValueError(f"now out of range: {now}")
    bounds = _calendar(raw.lower(), now)
    if bounds is None and _DURATION.fullmatch(raw):
        span = parse_duration(raw, "window")
        bounds = (now - span, now)
    if bounds is None and (m := _UNIX_PAIR.fullmatch(raw)):
        bounds = (int(m[1]), int(m[2]))
    if bounds is None and raw.count(",") == 1:
        a, b = raw.split(",")
        bounds = (_rfc3339(a), _rfc3339(b))
    if bounds is None:
        raise BadParameter("window", f"expected today, yesterday, week, lastweek, month, "
                                     f"lastmonth, a duration (24h, 7d), an RFC3339 pair or a "
                                     f"Unix pair, got {text!r}")
    start, end = bounds[0] - offset, bounds[1] - offset
    if start >= end:
        raise BadParameter("window", "start must be before end")
    if start < 0 or end > _MAX_TIME:
        raise BadParameter("window", "must lie between 1970 and 9999")
    return Window(start, end)


def step_seconds(window: Window, step: int | None, accumulate: bool) -> int:
    """The step to query: the whole window when accumulating or when no step is given.

    A step must divide the window, so every step is as long as the others and the store
    can answer from its coarse tiers; otherwise BadParameter("step").
    """
    if accumulate or step is None:
        return window.seconds
    if window.seconds % step:
        raise BadParameter("step", f"{format_duration(step) if step % 60 == 0 else step} does "
                                   f"not divide the window of {window.seconds} seconds")
    if window.seconds // step > MAX_STEPS:
        raise BadParameter("step", f"more than {MAX_STEPS} steps in the window")
    return step


