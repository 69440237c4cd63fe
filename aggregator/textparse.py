"""Fast parser for the Prometheus text format 0.0.4 and OpenMetrics 1.0 text.

The aggregator scrapes every node's exporter each minute, and from one minute to the
next a node serves the same series with new values.  So a :class:`SeriesTable` (one per
scrape target) remembers each series as a dense int index, and :func:`parse` turns a
payload into numpy arrays (index, value, timestamp) while spending, per sample line,
one ``rpartition``, one dict lookup and a share of a bulk numpy conversion.

The fast path, and why it is exact.  A sample line is ``series rest`` where *series* is
``name`` or ``name{labels}`` and *rest* is `` value [timestamp]``.  For every line the
fast path takes ``head, "}", rest = line.rpartition(b"}")`` and looks ``head`` up in
a dict of *validated spellings*: raw bytes ``s[:-1]`` for every labelled series text
``s`` that the slow path has fully parsed (per format, since OpenMetrics is stricter).

* A hit is the right decomposition.  The series grammar is deterministic and
  prefix-free: parsing left to right, the ``}`` that closes a label set ends the
  series, and a ``}`` inside a quoted value never looks like one (quotes and escapes
  are part of the validated text).  So if ``head + "}"`` is a validated series and a
  prefix of the line, it *is* the line's series; the line is valid iff ``rest`` is
  valid, and ``rest`` gets the same full check as on the slow path (bulk, below).
  Label values may contain spaces, ``}``, ``#`` or ``" # "``: they sit inside the
  cached prefix and are compared byte for byte by the dict.
* Cutting at the *last* ``}`` finds that prefix on valid lines, because values and
  timestamps never contain ``}``.  Where ``rest`` would hold one (an OpenMetrics
  exemplar) the lookup simply misses.  A miss is always safe: the line goes to the
  slow path, which validates everything and registers the spelling it saw.
* Unlabelled series use a second dict of validated metric names, consulted only for
  lines without ``{``: such a line has no label set, so its series is the name, which
  ends at the first blank; the bytes before the first space are that name or miss.
* Two spellings of one series (label order, a trailing comma, blanks) are two keys
  mapping to the one index chosen by the canonical identity (name, sorted labels).

Values and timestamps are converted for the whole scrape at once by
:mod:`aggregator._textnum`; metadata (HELP/TYPE/UNIT) order is checked at the end over
runs of same-named samples, not per line.  When a payload has several errors, the
one on the earliest line is reported, as a streaming parser would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from sys import intern as _intern

import numpy as np
from numpy.typing import NDArray

from aggregator._textfamily import check_families
from aggregator._textline import parse_comment, parse_series, split_exemplar
from aggregator._textnum import SampleError, convert
from aggregator.errors import ParseError

__all__ = ["ParseError", "Scrape", "SeriesTable", "parse"]

OPENMETRICS_TYPE = "application/openmetrics-text"
#: A series' identity: its metric name, then its (label, value) pairs sorted by label.
_Identity = tuple[str | tuple[str, str], ...]
_head, _rest = itemgetter(0), itemgetter(2)


class SeriesTable:
    """The series cache of one scrape target: series identity → dense int index.

    Indices are assigned in order of first appearance and never change, so arrays
    indexed by them (last values, rates, costs) stay aligned across scrapes.  Not
    thread-safe: parse one target's payloads one at a time.
    """

    def __init__(self) -> None:
        self._canon: dict[_Identity, int] = {}
        self._names: list[str] = []
        self._keys: list[_Identity] = []
        self._name_ids: dict[str, int] = {}
        self._series_name_id: list[int] = []
        self._name_id_array: NDArray[np.int64] = np.empty(0, np.int64)
        #: One tuple per distinct (label, value) pair, shared by every series that has it.
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}
        #: Validated raw spellings, per format (text, OpenMetrics): ``s[:-1]`` → index.
        self._spellings: tuple[dict[bytes, int], dict[bytes, int]] = ({}, {})
        #: Validated bare metric names (series without labels) → index.
        self._bare: dict[bytes, int] = {}
        #: Parsed metadata lines; exporters repeat the same ones every scrape.
        self._comments: dict[tuple[bool, bytes], tuple[str, str, str] | None] = {}

    def __len__(self) -> int:
        return len(self._names)

    def name(self, i: int) -> str:
        """Metric name of series ``i``."""
        return self._names[i]

    def labels(self, i: int) -> dict[str, str]:
        """Labels of series ``i`` (a fresh dict, sorted by label name)."""
        return dict(self._keys[i][1:])  # type: ignore[arg-type]

    def index_of(self, name: str, labels: Mapping[str, str] | None = None) -> int | None:
        """Index of a series if it has been seen, else None."""
        return self._canon.get((name, *sorted((labels or {}).items())))

    def intern(self, name: str, labels: Mapping[str, str] | Iterable[tuple[str, str]]) -> int:
        """Index of a series, adding it if new (callers must pass valid names)."""
        # Interned, strings and pairs, and one flat tuple per series: a container's
        # identity repeats across its ~9 series, and a table lives as long as its target
        # (a 110-pod node's table: 4 MB with nothing shared, 2.2 MB with label strings
        # interned, 1.0 MB now).
        shared = self._pairs
        name = _intern(name)
        pairs = []
        for kv in (labels.items() if isinstance(labels, Mapping) else labels):
            pair = shared.get(kv)  # a repeat (most pairs): no string interned again
            if pair is None:
                pair = (_intern(kv[0]), _intern(kv[1]))
                shared[pair] = pair
            pairs.append(pair)
        pairs.sort()
        key: _Identity = (name, *pairs)
        i = self._canon.get(key)
        if i is None:
            i = self._canon[key] = len(self._names)
            self._names.append(name)
            self._keys.append(key)
            self._series_name_id.append(self._name_ids.setdefault(name, len(self._name_ids)))
        return i

    def name_ids(self) -> NDArray[np.int64]:
        """Per series index, a small int naming its metric name (used to find runs)."""
        if len(self._name_id_array) != len(self._names):
            self._name_id_array = np.array(self._series_name_id, dtype=np.int64)
        return self._name_id_array

    def metric_names(self) -> list[str]:
        """Metric names by the ids of :meth:`name_ids`."""
        return list(self._name_ids)

    def _learn(self, line: bytes, lineno: int, om: bool) -> tuple[int, bytes]:
        """Slow path for a sample line: validate, intern, remember the spelling."""
        name, pairs, end = parse_series(line, lineno, om)
        rest = split_exemplar(line, end, lineno) if om else line[end:]
        i = self.intern(name, pairs)
        if line[end - 1:end] == b"}":
            self._spellings[om][line[:end - 1]] = i
        elif end == len(name):  # no leading blanks: the key the bare lookup uses
            self._bare[line[:end]] = i
        return i, rest

    def _comment(self, line: bytes, lineno: int, om: bool) -> tuple[str, str, str] | None:
        key = (om, line)
        if key in self._comments:
            return self._comments[key]
        parsed = parse_comment(line, lineno, om)
        if len(self._comments) > 8192:  # a target that varies its comments: stay bounded
            self._comments.clear()
        self._comments[key] = parsed
        return parsed


@dataclass(frozen=True, slots=True, eq=False)
class Scrape:
    """One parsed payload: parallel arrays over its samples, in payload order."""

    #: Series index into the SeriesTable, int64.
    index: NDArray[np.int64]
    #: Sample values, float64 (NaN and ±Inf as written).
    value: NDArray[np.float64]
    #: Sample timestamps in float seconds; NaN where the line has none.
    timestamp: NDArray[np.float64]
    #: Family → type, for families with a TYPE line.
    types: dict[str, str] = field(default_factory=dict)
    #: Family → help text (unescaped), for families with a HELP line.
    helps: dict[str, str] = field(default_factory=dict)
    #: Family → unit, for OpenMetrics families with a UNIT line.
    units: dict[str, str] = field(default_factory=dict)
    openmetrics: bool = False

    def __len__(self) -> int:
        return len(self.index)


def parse(payload: bytes | str, table: SeriesTable, *,
          content_type: str | None = None) -> Scrape:
    """Parse one exposition payload, adding its new series to ``table``.

    OpenMetrics is chosen by ``content_type`` (``application/openmetrics-text``) or,
    when no content type says otherwise, by a final ``# EOF`` line.  Raises
    :class:`ParseError` (with the 1-based line) on any deviation from the format; the
    series met before the error stay in ``table`` (they are valid, indices are stable).
    Repeated samples of one series are kept, in order, as the payload has them.
    """
    data = _as_bytes(payload)
    om = _is_openmetrics(data, content_type)
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    errors: list[ParseError] = []
    if om:
        if lines and lines[-1] == b"# EOF":
            lines.pop()
        else:
            errors.append(ParseError("expected '# EOF' as the last line of an OpenMetrics "
                                     "payload", line=len(lines) + 1))
    split = [line.rpartition(b"}") for line in lines]
    rests = list(map(_rest, split))
    index = np.fromiter(map(table._spellings[om].get, map(_head, split), repeat(-1)),
                        np.int64, len(lines))
    meta, skipped, stop = _resolve_misses(lines, index, rests, table, om, errors)
    positions = np.flatnonzero(index[:stop] >= 0)
    index = index[positions]
    sample_rests: list[bytes] = []
    start = 0
    for end in [*skipped, stop]:  # the few comment/blank lines cut runs of sample rests
        sample_rests += rests[start:end]
        start = end + 1
    values = stamps = np.empty(0)
    try:
        values, stamps = convert(sample_rests, om)
    except SampleError as e:
        p = int(positions[e.k])
        errors.append(_sample_error(e, lines[p], sample_rests[e.k], p + 1))
    family_error, types, helps, units = check_families(meta, index, positions, table, om)
    if family_error is not None:
        errors.append(family_error)
    if errors:
        raise min(errors, key=lambda e: e.line)
    return Scrape(index, values, stamps, types, helps, units, om)


def _resolve_misses(lines: list[bytes], index: NDArray[np.int64], rests: list[bytes],
                    table: SeriesTable, om: bool, errors: list[ParseError]
                    ) -> tuple[list[tuple[int, str, str, str]], list[int], int]:
    """Handle the lines the fast path missed, in order, filling ``index`` and ``rests``.

    Returns the metadata lines as (position, kind, family, text), the positions of
    lines that are no sample (comments, blanks), and how many lines were accepted: on
    the first error it is recorded and the rest of the payload is ignored, so later
    phases only report errors that come earlier.
    """
    meta: list[tuple[int, str, str, str]] = []
    skipped: list[int] = []
    bare = table._bare
    for p in np.flatnonzero(index < 0).tolist():
        line = lines[p]
        try:
            text = line.lstrip(b" \t") if not om else line
            if not text:
                if om:
                    raise ParseError("expected a sample or metadata, found a blank line "
                                     "(OpenMetrics allows none)", line=p + 1)
                skipped.append(p)
                continue
            if text[0] == 0x23:  # '#'
                parsed = table._comment(line, p + 1, om)
                if parsed is not None and parsed[0] == "EOF":
                    raise ParseError("expected nothing after '# EOF'", line=p + 2)
                if parsed is not None:
                    meta.append((p, *parsed))
                skipped.append(p)
                continue
            if b"{" not in line and not (om and b" # " in line):  # exemplars: slow path
                name = line.partition(b" ")[0]
                i = bare.get(name, -1)
                if i >= 0:
                    index[p], rests[p] = i, line[len(name):]
                    continue
            index[p], rests[p] = table._learn(line, p + 1, om)
        except ParseError as e:
            errors.append(e)
            return meta, skipped, p
    return meta, skipped, len(lines)


def _sample_error(e: SampleError, line: bytes, rest: bytes, lineno: int) -> ParseError:
    start = len(line) - len(rest) if line.endswith(rest) else max(line.find(rest), 0)
    at = start + e.offset
    near = line[max(0, at - 40):at + 24].decode("utf-8", "replace")
    found = repr(line[at:at + 24].decode("utf-8", "replace")) if at < len(line) else "end of line"
    return ParseError(f"expected {e.expected} at column {at + 1}, found {found} (in {near!r})",
                      line=lineno)


def _as_bytes(payload: bytes | str) -> bytes:
    if isinstance(payload, bytes):
        return payload
    try:
        return payload.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ParseError(f"expected text encodable as UTF-8, found {payload[e.start]!r}",
                         line=payload.count("\n", 0, e.start) + 1) from None


def _is_openmetrics(data: bytes, content_type: str | None) -> bool:
    """By content type if it names a format, else by a final ``# EOF`` line.

    Sniffing looks at the end only: a ``# EOF`` line elsewhere in a payload without a
    content type is what the text format makes of it, an ordinary comment.
    """
    if content_type is not None:
        media = content_type.partition(";")[0].strip().lower()
        if media == OPENMETRICS_TYPE:
            return True
        if media == "text/plain":
            return False
    tail = data[-7:]
    return tail.endswith((b"\n# EOF", b"\n# EOF\n")) or data in (b"# EOF", b"# EOF\n")
