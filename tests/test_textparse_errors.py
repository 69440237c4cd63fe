"""Malformed exposition payloads: every error is a ParseError on the right line.

Each case runs cold (slow path) and warm (the good lines already cached, so the fast
path meets the bad line), and must name what was expected there.
"""

from __future__ import annotations

import contextlib
import pickle

import pytest

from aggregator.errors import AggregatorError, ParseError
from aggregator.textparse import SeriesTable, parse

OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"


# --- text format -------------------------------------------------------------------------

TEXT_ERRORS = [
    ('a 1\nb{x="1",x="2"} 1\n', 2, "duplicate label name"),
    ('a 1\n\nb{x="1} 1\n', 3, "closing '\"'"),
    ('a{x="\\t"} 1\n', 1, "valid escape"),
    ("a 1\n9abc 1\n", 2, "metric name"),
    ('a{9x="1"} 1\n', 1, "label name"),
    ('a{x-y="1"} 1\n', 1, "'=' after label name 'x'"),
    ("a{x=1} 1\n", 1, "opening the value"),
    ('a{x="1" y="2"} 1\n', 1, "',' or '}'"),
    ('a 1\na{x="1"\n', 2, "',' or '}'"),
    ("a abc\n", 1, "sample value"),
    ("a 1\na\n", 2, "value"),
    ('a{x="1"}\n', 1, "sample value after the series"),
    ("a 1 2 3\n", 1, "end of the line"),
    ("a 1 1.5\n", 1, "milliseconds"),
    ('a{x="1"} 1 # {t="1"} 1\n', 1, "timestamp"),
    ("a 1\r\n", 1, "sample value"),
    ('a 1\nb 2\n  c{x="1"}} 3\n', 3, "sample value"),
    ('a{__name__="x"} 1\n', 1, "reserved"),
    ('{__name__="a"} 1\n', 1, "metric name"),
    ("# HELP a x\n# HELP a y\n", 2, "one HELP line"),
    ("# TYPE a gauge\n# TYPE a counter\n", 2, "one TYPE line"),
    ("a 1\n# TYPE a gauge\n", 2, "TYPE for 'a' before its samples (the first is on line 1)"),
    ("# TYPE a gauge\na 1\n# HELP a late\n", 3, "HELP for 'a' before its samples"),
    ('# TYPE h histogram\nh_bucket{le="1"} 1\n# HELP h late\n', 3, "before its samples"),
    ("# TYPE a gaugee\n", 1, "metric type"),
    ("# TYPE a\n", 1, "metric type"),
    ("# HELP 1a x\n", 1, "metric name after '# HELP'"),
    ("# HELP a bad \\t escape\n", 1, "valid escape"),
    ("# HELP a ends in \\\n", 1, "valid escape"),
]


@pytest.mark.parametrize("text, line, fragment", TEXT_ERRORS)
def test_malformed_text_cold_and_warm(text, line, fragment):
    for table in (SeriesTable(), _warmed(text, line)):
        with pytest.raises(ParseError) as err:
            parse(text, table)
        assert err.value.line == line and fragment in err.value.message, str(err.value)


def _warmed(text: str, line: int) -> SeriesTable:
    """A table that has seen the payload's good lines, so the fast path meets the bad one."""
    table = SeriesTable()
    good = [ln for i, ln in enumerate(text.split("\n")[:-1], 1) if i < line]
    with contextlib.suppress(ParseError):  # a prefix that is itself bad: stay cold
        parse("\n".join(ln for ln in good if not ln.startswith("#")) + "\n", table)
    return table


def test_invalid_utf8_in_a_label_value():
    with pytest.raises(ParseError, match="UTF-8") as err:
        parse(b'a 1\nb{x="\xff"} 1\n', SeriesTable())
    assert err.value.line == 2
    with pytest.raises(ParseError, match="UTF-8") as err:
        parse('a 1\nb{x="\ud800"} 1\n', SeriesTable())
    assert err.value.line == 2


def test_the_earliest_of_several_errors_is_reported():
    text = 'a 1\nb 2x\n# TYPE a gauge\nc{x="1} 1\n'
    for table in (SeriesTable(), _warmed(text, 99)):
        with pytest.raises(ParseError) as err:
            parse(text, table)
        assert err.value.line == 2
    with pytest.raises(ParseError) as err:
        parse("a 1\n# TYPE a gauge\nb x\n", SeriesTable())
    assert err.value.line == 2


# --- OpenMetrics -------------------------------------------------------------------------

OM_ERRORS = [
    ("a 1\n", 2, "'# EOF' as the last line"),
    ("a 1\n# EOF\nb 2\n", 3, "nothing after '# EOF'"),
    ("a 1\n\n# EOF\n", 2, "blank line"),
    ("# TYPE a untyped\n# EOF\n", 1, "metric type"),
    ('a{x="1",} 1\n# EOF\n', 1, "a label name"),
    ("a  1\n# EOF\n", 1, "exactly one space"),
    ("a 1 \n# EOF\n", 1, "exactly one space"),
    ("a\t1\n# EOF\n", 1, "space after the metric name"),
    (' a{x="1"} 1\n# EOF\n', 1, "metric name"),
    ("# random comment\n# EOF\n", 1, "no other comments"),
    ("# HELP a\n# EOF\n", 1, "the HELP text"),
    ("a 1\nb 1\na 2\n# EOF\n", 3, "interleaving"),
    ("a 1\n# TYPE b gauge\na 2\n# EOF\n", 3, "interleaving"),
    ("# UNIT a_seconds bytes\n# EOF\n", 1, "unit"),
    ('a{x="1"} 1 # {trace_id="abc"}\n# EOF\n', 1, "value [timestamp]"),
    ('a{x="1"} 1 # trace\n# EOF\n', 1, "exemplar"),
    ('a{x="1"} 1 # {t="' + "x" * 130 + '"} 1\n# EOF\n', 1, "128"),
    ("a 1 NaN\n# EOF\n", 1, "seconds"),
]


@pytest.mark.parametrize("text, line, fragment", OM_ERRORS)
def test_malformed_openmetrics(text, line, fragment):
    with pytest.raises(ParseError) as err:
        parse(text, SeriesTable(), content_type=OM)
    assert err.value.line == line and fragment in err.value.message, str(err.value)


# --- values, timestamps, cached series ----------------------------------------------------

@pytest.mark.parametrize("spelled", ["1_0", "0x10", "1e", ".", "+nan", "-NaN", "1e400",
                                     "abc", "1.2.3", "١", "1,5", "--1", "Inf1", "1d5"])
def test_bad_values_are_errors_with_the_line(spelled):
    with pytest.raises(ParseError) as err:
        parse(f'ok 1\n# TYPE m gauge\nm{{a="b"}} {spelled}\n', SeriesTable())
    assert err.value.line == 3 and "value" in str(err.value)


@pytest.mark.parametrize("ts", ["9223372036854775808", "1.5", "1e3", "NaN", "+-1", "12a"])
def test_bad_text_timestamps(ts):
    with pytest.raises(ParseError, match="milliseconds") as err:
        parse(f"a 1\nb 2 {ts}\n", SeriesTable())
    assert err.value.line == 2


@pytest.mark.parametrize("ts", ["NaN", "Inf", "1e999", "x", "1_0"])
def test_bad_openmetrics_timestamps(ts):
    with pytest.raises(ParseError, match="seconds") as err:
        parse(f"a 1\nb 2 {ts}\n# EOF\n", SeriesTable())
    assert err.value.line == 2


@pytest.mark.parametrize("line, fragment", [
    ('a{x="1"} 1 junk', "timestamp"), ('a{x="1"}', "sample value"),
    ('a{x="1"}} 1', "sample value"), ('a{x="1"} 1 2 3', "end of the line"),
    ('a{x="1" 1', "',' or '}'"), ("b", "value"), ("b 1 x", "timestamp"),
    ('b{x="1" 1', "',' or '}'")])
def test_known_series_followed_by_garbage(line, fragment):
    table = SeriesTable()
    parse('a{x="1"} 1\nb 2\n', table)
    with pytest.raises(ParseError) as err:
        parse(f'a{{x="1"}} 1\n{line}\n', table)
    assert err.value.line == 2 and fragment in err.value.message


def test_parse_error_is_an_aggregator_error_that_pickles():
    err = ParseError("expected x", line=7)
    assert isinstance(err, AggregatorError) and str(err) == "line 7: expected x"
    back = pickle.loads(pickle.dumps(err))
    assert (back.line, back.message, str(back)) == (7, "expected x", str(err))
