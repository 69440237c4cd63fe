"""The validated slow path of :mod:`aggregator.textparse`: one line at a time.

Only lines the fast path cannot resolve reach this module: the first sighting of a
series spelling, metadata comments, lines with exemplars, and everything malformed.
It implements the whole line grammar (Prometheus text format 0.0.4 as the Go parser
reads it, and OpenMetrics 1.0 text) and raises :class:`ParseError` with the line
number, the expected token and an excerpt of what was found instead.

Text-format leniency follows the Go parser: blanks (space, tab) may lead a line and
surround ``{``, ``=``, ``,`` and ``}``.  OpenMetrics is strict: no blanks inside a
series, single spaces between fields, no trailing comma, no other comments.
"""

from __future__ import annotations

import re

from aggregator.errors import ParseError

__all__ = ["METRIC_NAME", "fail", "parse_comment", "parse_series", "split_exemplar"]

METRIC_NAME = re.compile(rb"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(rb"[a-zA-Z_][a-zA-Z0-9_]*")
# Label values are written unrolled ([^"\\]* runs between escapes): sre then scans a
# value in one tight loop instead of trying an alternation per character.
_PAIR = rb'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*(?:\\[\\"n][^"\\]*)*"'
#: A labelled series spelled without blanks: what exporters write, matched in C.
_QUICK = {
    om: re.compile(rb"([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:" + _PAIR + rb"(?:," + _PAIR + rb")*"
                   + (b"" if om else b",?") + rb")?)\}")
    for om in (False, True)
}
_PAIRS = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"\\]*(?:\\.[^"\\]*)*)"')
_VALUE_BODY = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*')
_ESCAPE = re.compile(rb"\\(.?)")
_STR_ESCAPE = re.compile(r"\\(.)")
_LABEL_ESCAPES = {b"\\": b"\\", b'"': b'"', b"n": b"\n"}
_STR_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_HELP_ESCAPES = {False: {b"\\": b"\\", b"n": b"\n"}, True: _LABEL_ESCAPES}
_EX_NUMBER = re.compile(
    rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?i:inf|infinity)|(?i:nan)")
_EX_TS = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
TEXT_TYPES = frozenset({"counter", "gauge", "histogram", "summary", "untyped"})
OM_TYPES = frozenset({"counter", "gauge", "histogram", "gaugehistogram", "stateset", "info",
                      "summary", "unknown"})
Pairs = list[tuple[str, str]]


def fail(expected: str, line: bytes, pos: int, lineno: int) -> ParseError:
    """A ParseError saying what was expected at byte ``pos`` of ``line`` and what is there."""
    found = "end of line" if pos >= len(line) else repr(_text(line[pos:pos + 24]))
    near = _text(line[max(0, pos - 40):pos + 24])
    return ParseError(f"expected {expected} at column {pos + 1}, found {found} (in {near!r})",
                      line=lineno)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _skip(line: bytes, pos: int, om: bool) -> int:
    if om:
        return pos
    while pos < len(line) and line[pos] in b" \t":
        pos += 1
    return pos


def _unescape(raw: bytes, table: dict[bytes, bytes], line: bytes, at: int, lineno: int) -> str:
    if b"\\" in raw:
        for m in _ESCAPE.finditer(raw):
            if m.group(1) not in table:
                valid = ", ".join("\\" + k.decode() for k in table)
                raise fail(f"a valid escape ({valid})", line, at + m.start(), lineno)
        raw = _ESCAPE.sub(lambda m: table[m.group(1)], raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise fail("UTF-8 text", line, at + e.start, lineno) from None


def parse_series(line: bytes, lineno: int, om: bool) -> tuple[str, Pairs, int]:
    """Parse the series at the start of ``line``: (name, label pairs as spelled, end offset).

    Labelled series spelled without blanks go through one C regex; anything else (or a
    regex match with duplicate names, bad UTF-8...) goes through the tokenizer, which
    either accepts the line or pinpoints the problem.
    """
    m = _QUICK[om].match(line)
    if m is not None:
        try:
            body = m.group(2).decode("utf-8")
        except UnicodeDecodeError:
            body = None  # the tokenizer reports where
        if body is not None:
            pairs = _PAIRS.findall(body)
            if "\\" in body:
                pairs = [(k, _STR_ESCAPE.sub(lambda e: _STR_ESCAPES[e.group(1)], v))
                         for k, v in pairs]
            names = {k for k, _ in pairs}
            if len(names) == len(pairs) and "__name__" not in names:
                return m.group(1).decode("ascii"), pairs, m.end()
    return _tokenize(line, lineno, om)


def _tokenize(line: bytes, lineno: int, om: bool) -> tuple[str, Pairs, int]:
    pos = _skip(line, 0, om)
    m = METRIC_NAME.match(line, pos)
    if m is None:
        raise fail("a metric name", line, pos, lineno)
    name, pos = m.group().decode("ascii"), m.end()
    after = _skip(line, pos, om)
    if after < len(line) and line[after:after + 1] == b"{":
        pairs, end = parse_labels(line, after, lineno, om)
        return name, pairs, end
    if pos >= len(line):
        raise fail("a value after the metric name", line, pos, lineno)
    if line[pos] not in (b" " if om else b" \t"):
        raise fail("'{' or a space after the metric name", line, pos, lineno)
    return name, [], pos


def parse_labels(line: bytes, pos: int, lineno: int, om: bool) -> tuple[Pairs, int]:
    """Parse the label set whose ``{`` is at ``pos``: (pairs, offset after its ``}``)."""
    pairs: Pairs = []
    seen: set[str] = set()
    pos += 1
    while True:
        pos = _skip(line, pos, om)
        if line[pos:pos + 1] == b"}" and not (om and pairs):
            return pairs, pos + 1
        m = LABEL_NAME.match(line, pos)
        if m is None:
            raise fail("a label name" if om and pairs else "a label name or '}'",
                       line, pos, lineno)
        label, start = m.group().decode("ascii"), pos
        pos = _skip(line, m.end(), om)
        if line[pos:pos + 1] != b"=":
            raise fail(f"'=' after label name {label!r}", line, pos, lineno)
        pos = _skip(line, pos + 1, om)
        if line[pos:pos + 1] != b'"':
            raise fail(f"'\"' opening the value of label {label!r}", line, pos, lineno)
        body = _VALUE_BODY.match(line, pos + 1)
        assert body is not None  # the pattern matches the empty string
        if line[body.end():body.end() + 1] != b'"':
            raise fail(f"the closing '\"' of the value of label {label!r} (unterminated)",
                       line, body.end(), lineno)
        value = _unescape(body.group(), _LABEL_ESCAPES, line, pos + 1, lineno)
        if label == "__name__":
            raise fail("a label name other than the reserved '__name__'", line, start, lineno)
        if label in seen:
            raise fail(f"no second label named {label!r} (duplicate label name)",
                       line, start, lineno)
        seen.add(label)
        pairs.append((label, value))
        pos = _skip(line, body.end() + 1, om)
        if line[pos:pos + 1] == b",":
            pos += 1
        elif line[pos:pos + 1] == b"}":
            return pairs, pos + 1
        else:
            raise fail(f"',' or '}}' after the value of label {label!r}", line, pos, lineno)


def split_exemplar(line: bytes, start: int, lineno: int) -> bytes:
    """The value part of an OpenMetrics sample (from ``start``) without its exemplar.

    The exemplar (`` # {labels} value [timestamp]``) is validated and dropped: kubetally
    keeps no traces.  Values and timestamps never contain ``#``, so the first `` # ``
    after the series is where an exemplar begins.
    """
    cut = line.find(b" # ", start)
    if cut < 0:
        return line[start:]
    pos = cut + 3
    if line[pos:pos + 1] != b"{":
        raise fail("'{' opening the exemplar's labels", line, pos, lineno)
    pairs, pos = parse_labels(line, pos, lineno, True)
    if sum(len(k) + len(v) for k, v in pairs) > 128:
        raise fail("exemplar labels of at most 128 characters", line, cut + 3, lineno)
    fields = line[pos:].split(b" ")
    if len(fields) not in (2, 3) or fields[0] or not _EX_NUMBER.fullmatch(fields[1]) or (
            len(fields) == 3 and not _EX_TS.fullmatch(fields[2])):
        raise fail("' value [timestamp]' after the exemplar's labels", line, pos, lineno)
    return line[start:cut]


def parse_comment(line: bytes, lineno: int, om: bool) -> tuple[str, str, str] | None:
    """A ``#`` line as (kind, family, text) for HELP/TYPE/UNIT/EOF; None for a comment.

    Text format (like the Go parser): ``#``, blanks, a keyword; a keyword other than
    HELP or TYPE makes the line a plain comment.  OpenMetrics allows only
    ``# HELP|TYPE|UNIT name text`` and ``# EOF``.
    """
    if om:
        if line == b"# EOF":
            return "EOF", "", ""
        kind, sep, rest = line[2:].partition(b" ")
        if line[:2] != b"# " or not sep or kind not in (b"HELP", b"TYPE", b"UNIT"):
            raise fail("'# HELP', '# TYPE', '# UNIT' or '# EOF' (OpenMetrics has no other "
                       "comments)", line, 0, lineno)
        name, sep, text = rest.partition(b" ")
        name_at = len(kind) + 3
    else:
        pos = _skip(line, line.index(b"#") + 1, False)
        end = pos
        while end < len(line) and line[end] not in b" \t":
            end += 1
        kind = line[pos:end]
        if kind not in (b"HELP", b"TYPE"):
            return None
        name_at = _skip(line, end, False)
        end = name_at
        while end < len(line) and line[end] not in b" \t":
            end += 1
        name, sep, text = line[name_at:end], b" ", line[_skip(line, end, False):]
    kind_s = kind.decode("ascii")
    if not METRIC_NAME.fullmatch(name):
        raise fail(f"a metric name after '# {kind_s}'", line, name_at, lineno)
    family, at = name.decode("ascii"), name_at + len(name) + 1
    if not sep:
        raise fail(f"a space and the {kind_s} text after the metric name", line, at - 1, lineno)
    if kind == b"HELP":
        return "HELP", family, _unescape(text, _HELP_ESCAPES[om], line, at, lineno)
    if kind == b"UNIT":
        unit = text.decode("ascii", "replace")
        if unit and not (METRIC_NAME.fullmatch(text) and family.endswith("_" + unit)):
            raise fail(f"a unit that ends the metric name {family!r}", line, at, lineno)
        return "UNIT", family, unit
    typ = text.decode("ascii", "replace")
    typ = typ if om else typ.rstrip(" \t").lower()
    if typ not in (OM_TYPES if om else TEXT_TYPES):
        allowed = ", ".join(sorted(OM_TYPES if om else TEXT_TYPES))
        raise fail(f"a metric type ({allowed})", line, at, lineno)
    return "TYPE", family, typ
