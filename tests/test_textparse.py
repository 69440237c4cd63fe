"""kubetally's exposition parser against prometheus_client's, the format, and itself.

Property tests render random payloads (names, escaped label values with quotes,
backslashes, newlines, braces, ``#`` and unicode, every float spelling, timestamps,
HELP/TYPE, shuffled label order) and require sample-by-sample agreement with
prometheus_client's parser, identical warm (fast path) and cold results, and one index
per series whatever its label order.  Hand-written tests pin each error to its line.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from aggregator._textnum import SampleError, convert, convert_slow
from aggregator.errors import ParseError
from aggregator.textparse import Scrape, SeriesTable, parse

SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"

METRIC_NAMES = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,16}", fullmatch=True)
# prometheus_client rejects every "__" label name (Go only "__name__"): stay comparable.
LABEL_NAMES = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,10}|_[a-zA-Z0-9][a-zA-Z0-9_]{0,8}",
                            fullmatch=True)
LABEL_VALUES = st.text(st.one_of(st.sampled_from('"\\\n {}#,=\t} # é€𝄞'),
                                 st.characters(blacklist_categories=("Cs",))), max_size=16)
SPECIALS = ["NaN", "nan", "+Inf", "-Inf", "Inf", "inf", "+inf", "-Infinity", "infinity"]
FORMATS = ["{!r}", "{:.17g}", "{:e}", "{:E}", "{:+.3e}", "{:.6f}", "{:g}"]


@st.composite
def spelled_values(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.sampled_from(SPECIALS))
    if kind == 1:
        return str(draw(st.integers(-(10**25), 10**25)))
    number = draw(st.floats(allow_nan=False, allow_infinity=False))
    spelled = draw(st.sampled_from(FORMATS)).format(number)
    # Rounding 1.797e308 up overflows: Go (and kubetally) reject such a literal, while
    # prometheus_client reads +Inf; that divergence is pinned in test_bad_values_*.
    return spelled if math.isfinite(float(spelled)) else repr(number)


def escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@st.composite
def payloads(draw: st.DrawFn) -> dict:
    """A random text-format payload and what it must parse to."""
    lines: list[str] = []
    samples: list[tuple[str, dict[str, str], str, int | None]] = []
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    renders: list[tuple[str, list[tuple[str, str]], bool, str]] = []
    for f in range(draw(st.integers(0, 5))):
        typ = draw(st.sampled_from([None, "gauge", "counter", "untyped", "summary", "histogram"]))
        family = draw(METRIC_NAMES) + f"_f{f}" + ("_total" if typ == "counter" else "")
        suffixes = {"summary": ["", "_sum", "_count"],
                    "histogram": ["_bucket", "_sum", "_count"]}.get(typ or "", [""])
        meta = []
        if draw(st.booleans()):
            help_ = draw(st.text(st.characters(blacklist_categories=("Cs",)), max_size=20))
            helps[family] = help_.lstrip(" \t")
            meta.append(f"# HELP {family} {escape_help(help_)}")
        if typ:
            types[family] = typ
            meta.append(f"# TYPE {family} {typ}")
        lines += draw(st.permutations(meta))
        names = draw(st.lists(LABEL_NAMES, unique=True, max_size=4))
        for _ in range(draw(st.integers(0, 4))):
            name = family + draw(st.sampled_from(suffixes))
            labels = {k: draw(LABEL_VALUES) for k in names}
            value = draw(spelled_values())
            ts = draw(st.none() | st.integers(-(2**63), 2**63 - 1))
            order = draw(st.permutations(list(labels.items())))
            comma = draw(st.booleans())
            renders.append((name, order, comma, value + ("" if ts is None else f" {ts}")))
            lines.append(render_sample(name, order, comma, renders[-1][3]))
            samples.append((name, labels, value, ts))
        if draw(st.booleans()):
            lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(
                ["", "# note: a comment {with} \"quotes\"", "#", "  # TYPE-less comment"])))
    text = "".join(line + "\n" for line in lines)
    return {"text": text, "samples": samples, "helps": helps, "types": types,
            "renders": renders}


def render_sample(name: str, pairs: list[tuple[str, str]], comma: bool, rest: str) -> str:
    body = ",".join(f'{k}="{escape(v)}"' for k, v in pairs) + ("," if comma and pairs else "")
    return f"{name}{{{body}}} {rest}" if pairs or comma else f"{name} {rest}"


def same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def flat(scrape: Scrape, table: SeriesTable) -> list[tuple[str, dict[str, str], float, float]]:
    return [(table.name(i), table.labels(i), v, t) for i, v, t in
            zip(scrape.index.tolist(), scrape.value.tolist(), scrape.timestamp.tolist(),
                strict=True)]


def assert_same_scrape(a: Scrape, b: Scrape) -> None:
    assert a.index.dtype == np.int64 and a.value.dtype == np.float64
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_array_equal(a.value, b.value)  # NaN == NaN here
    np.testing.assert_array_equal(a.timestamp, b.timestamp)
    assert (a.types, a.helps, a.units) == (b.types, b.helps, b.units)


# --- property tests ----------------------------------------------------------------------

@SETTINGS
@given(payloads())
def test_agrees_with_prometheus_client_sample_by_sample(p):
    table = SeriesTable()
    got = flat(parse(p["text"], table), table)
    ref = [s for fam in text_string_to_metric_families(p["text"]) for s in fam.samples]
    assert len(got) == len(ref) == len(p["samples"])
    for (name, labels, value, ts), r, (_, _, spelled, ms) in zip(got, ref, p["samples"],
                                                                  strict=True):
        assert (name, labels) == (r.name, r.labels)
        assert same_float(value, float(r.value)) and same_float(value, float(spelled))
        assert same_float(ts, math.nan if r.timestamp is None else float(r.timestamp))
        assert same_float(ts, math.nan if ms is None else ms / 1000)


@SETTINGS
@given(payloads())
def test_model_metadata_and_bytes_or_str_agree(p):
    scrape = parse(p["text"].encode(), SeriesTable())
    assert scrape.types == p["types"] and scrape.helps == p["helps"]
    assert_same_scrape(scrape, parse(p["text"], SeriesTable()))


@SETTINGS
@given(payloads())
def test_warm_table_steady_state_is_identical_to_cold(p):
    table = SeriesTable()
    cold = parse(p["text"], table)
    size = len(table)
    for _ in range(2):
        assert_same_scrape(parse(p["text"], table), cold)
    assert len(table) == size
    assert_same_scrape(parse(p["text"], SeriesTable()), cold)


@SETTINGS
@given(payloads(), st.randoms(use_true_random=False))
def test_reordered_labels_resolve_to_the_same_index(p, rnd):
    table = SeriesTable()
    first = parse(p["text"], table)
    lines = []
    for name, pairs, comma, rest in p["renders"]:
        pairs = list(pairs)
        rnd.shuffle(pairs)
        lines.append(render_sample(name, pairs, not comma, rest) + "\n")
    again = parse("".join(lines), table)
    np.testing.assert_array_equal(again.index, first.index)
    for i, (name, labels, _, _) in zip(first.index.tolist(), p["samples"], strict=True):
        assert table.index_of(name, labels) == i


BAD_LINES = [
    ('zz_bad{a="1"', "',' or '}'"), ('zz_bad{a="1} 1', "closing"),
    ('zz_bad{a="1",a="2"} 1', "duplicate"), ('zz_bad{a="\\q"} 1', "escape"),
    ("zz_bad 1 2 3", "end of the line"), ("zz_bad one", "sample value"),
    ("1zz 1", "metric name"), ('zz_bad{1a="x"} 1', "label name"),
    ('zz_bad{__name__="x"} 1', "reserved"), ("zz_bad 1 1.5", "milliseconds"),
    ("# TYPE zz_bad nonsense", "metric type"), ('zz_bad{a="1"} 1 # {t="1"} 1', "timestamp"),
    ("zz_bad 0x1p3", "sample value"), ("zz_bad 1_000", "sample value"), ("zz_bad", "value"),
]


@SETTINGS
@given(payloads(), st.sampled_from(BAD_LINES), st.data())
def test_a_bad_line_is_reported_at_its_line(p, bad, data):
    lines = [line + "\n" for line in p["text"].split("\n")[:-1]]
    at = data.draw(st.integers(0, len(lines)))
    text = "".join([*lines[:at], bad[0] + "\n", *lines[at:]])
    table = SeriesTable()
    if data.draw(st.booleans()):
        parse(p["text"], table)  # warm: the fast path must catch it too
    with pytest.raises(ParseError) as err:
        parse(text, table)
    assert err.value.line == at + 1
    assert bad[1] in str(err.value)


GRAMMAR_SOUP = st.lists(st.sampled_from([
    *'{}"=,\\# \t\nab_:09.+-eEInNf}é', "# HELP a ", "# TYPE a gauge", "# EOF", 'a{b="c"}',
    " 1", " NaN", "\\n", "\n", "\r"]), max_size=40).map("".join)


@SETTINGS
@given(GRAMMAR_SOUP, st.sampled_from([None, OM, "text/plain"]))
def test_any_input_parses_or_raises_parse_error_and_warm_agrees_with_cold(text, ctype):
    outcomes = []
    table = SeriesTable()
    for _ in range(2):  # the second run meets the spellings the first one learned
        try:
            outcomes.append(parse(text, table, content_type=ctype))
        except ParseError as e:
            outcomes.append(e.line)
    if isinstance(outcomes[0], int):
        assert outcomes[1] == outcomes[0]
    else:
        assert_same_scrape(outcomes[1], outcomes[0])


REST_TOKENS = st.sampled_from(["1", "-2.5", "NaN", "+Inf", "-inf", "1e5", ".5", "5.", "nan",
                               "+nan", "1e999", "1_0", "x", "", "1700000000000", "-12",
                               "1.5", "9223372036854775808", "١", "1,2", "1e-400"])


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["", " ", "  ", "\t", " \t"]), REST_TOKENS,
                          st.sampled_from(["", " ", "\t", "\r"]), st.none() | REST_TOKENS),
                max_size=8), st.booleans())
def test_bulk_conversion_is_exactly_the_reference(parts, om):
    rests = [(lead + value + (f"{mid}{ts}" if ts is not None else "")).encode()
             for lead, value, mid, ts in parts]
    try:
        expected = convert_slow(rests, om)
    except SampleError as e:
        with pytest.raises(SampleError) as got:
            convert(rests, om)
        assert got.value.k == e.k
    else:
        for a, b in zip(convert(rests, om), expected, strict=True):
            np.testing.assert_array_equal(a, b)


# --- values, timestamps, names -----------------------------------------------------------

@pytest.mark.parametrize("spelled, value", [
    ("1.5", 1.5), ("-1.5", -1.5), ("+1.5", 1.5), ("1e3", 1e3), ("1E+03", 1e3), (".5", 0.5),
    ("5.", 5.0), ("007", 7.0), ("NaN", math.nan), ("nan", math.nan), ("+Inf", math.inf),
    ("-Inf", -math.inf), ("Inf", math.inf), ("inf", math.inf), ("Infinity", math.inf),
    ("-infinity", -math.inf), ("1e-400", 0.0), ("1.7976931348623157e308", 1.7976931348623157e308),
    ("4.9e-324", 5e-324), ("123456789012345678901234567890", 1.2345678901234568e29)])
def test_every_float_spelling(spelled, value):
    scrape = parse(f"m {spelled}\nm{{a=\"b\"}} {spelled}\n", SeriesTable())
    assert all(same_float(v, value) for v in scrape.value.tolist())


def test_timestamps_normalise_to_float_seconds():
    text = 'a 1 1700000000123\nb{x="1"} 2 -5\nc 3\nd +4 9223372036854775807\n'
    scrape = parse(text, SeriesTable())
    np.testing.assert_array_equal(
        scrape.timestamp, [1700000000.123, -0.005, math.nan, 9223372036854775.807])
    om = parse('a 1 1700000000.5\nb{x="1"} 2 1e9\nc 3\n# EOF\n', SeriesTable())
    np.testing.assert_array_equal(om.timestamp, [1700000000.5, 1e9, math.nan])


# --- OpenMetrics -------------------------------------------------------------------------

OM_PAYLOAD = """\
# TYPE kubetally_x_seconds counter
# UNIT kubetally_x_seconds seconds
# HELP kubetally_x_seconds Help with \\"quotes\\", \\\\ and \\n.
kubetally_x_seconds_total{a="1"} 3.5 1700000000.250 # {trace_id="a} # b"} 0.5 1700000000.1
kubetally_x_seconds_created{a="1"} 1.7e9 1700000000.250
# TYPE h histogram
h_bucket{le="1"} 1 # {t="x"} 0.3
h_bucket{le="+Inf"} 2
h_count 2
h_sum 1.5
# TYPE c counter
c_total 3 # {t="y"} 1
# EOF
"""


def test_openmetrics_payload_with_unit_exemplars_and_float_timestamps():
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_ref

    for content_type in (OM, None):
        table = SeriesTable()
        scrape = parse(OM_PAYLOAD, table, content_type=content_type)
        assert scrape.openmetrics
        assert scrape.types == {"kubetally_x_seconds": "counter", "h": "histogram",
                                "c": "counter"}
        assert scrape.units == {"kubetally_x_seconds": "seconds"}
        assert scrape.helps == {"kubetally_x_seconds": 'Help with "quotes", \\ and \n.'}
        ref = [s for fam in om_ref(OM_PAYLOAD) for s in fam.samples]
        for (name, labels, value, ts), r in zip(flat(scrape, table), ref, strict=True):
            assert (name, labels, value) == (r.name, r.labels, r.value)
            assert same_float(ts, math.nan if r.timestamp is None else float(r.timestamp))
        assert scrape.timestamp[0] == 1700000000.25
        warm = parse(OM_PAYLOAD.removesuffix("\n"), table, content_type=content_type)
        assert_same_scrape(warm, scrape)


def test_format_follows_the_content_type_before_the_eof_sniff():
    # As text: \" is no HELP escape there (Go rejects it too), and exemplars are no text.
    with pytest.raises(ParseError, match="valid escape") as err:
        parse(OM_PAYLOAD, SeriesTable(), content_type="text/plain; version=0.0.4")
    assert err.value.line == 3
    with pytest.raises(ParseError, match="timestamp") as err:
        parse(OM_PAYLOAD.replace('\\"', "'"), SeriesTable(), content_type="text/plain")
    assert err.value.line == 4
    scrape = parse("a 1\n# EOF\nb 2\n", SeriesTable())  # not last: a text comment
    assert not scrape.openmetrics and scrape.value.tolist() == [1.0, 2.0]
    assert parse("# EOF", SeriesTable()).openmetrics
    assert len(parse("", SeriesTable())) == 0


def test_openmetrics_spellings_are_checked_apart_from_text_ones():
    table = SeriesTable()
    parse('a {x="1"} 1\n', table)  # lenient text spelling, now a fast-path key
    with pytest.raises(ParseError, match="sample value") as err:
        parse('a {x="1"} 1\n# EOF\n', table)  # OpenMetrics: a bare "a", then garbage
    assert err.value.line == 1


# --- the fast path -----------------------------------------------------------------------

def test_fast_path_with_braces_spaces_and_hashes_in_values():
    text = 'a{x="} # {",y="a b}\\""} 1\na{x="}",y=""} 2\n'
    table = SeriesTable()
    cold = parse(text, table)
    assert table.labels(int(cold.index[0])) == {"x": "} # {", "y": 'a b}"'}
    warm = parse(text.replace("} 1\n", "} 7 1000\n"), table)
    assert warm.index.tolist() == cold.index.tolist() and len(table) == 2
    assert warm.value.tolist() == [7.0, 2.0] and warm.timestamp[0] == 1.0


def test_steady_state_never_takes_the_slow_path(monkeypatch):
    payload = _bench_module().build_payload(containers=20)
    table = SeriesTable()
    cold = parse(payload, table)

    def slow_path(*_args: object) -> None:
        raise AssertionError("a line of a steady-state scrape took the slow path")

    monkeypatch.setattr(SeriesTable, "_learn", slow_path)
    monkeypatch.setattr("aggregator.textparse.parse_comment", slow_path)
    assert_same_scrape(parse(payload, table), cold)


def test_a_bare_name_seen_before_does_not_swallow_a_label_set():
    table = SeriesTable()
    parse("foo 1\n", table)
    scrape = parse('foo 1\nfoo {a="b"} 2\n', table)
    assert [table.labels(i) for i in scrape.index.tolist()] == [{}, {"a": "b"}]


def test_text_format_leniency_of_the_go_parser():
    text = '  a  { x = "1" , }\t2\t 3 \na{x="1"}4\n\n  \n  # HELP b  spaced help\nb{} 5\n'
    table = SeriesTable()
    scrape = parse(text, table)
    assert flat(scrape, table)[0] == ("a", {"x": "1"}, 2.0, 0.003)
    assert scrape.index.tolist() == [0, 0, 1] and scrape.value.tolist() == [2.0, 4.0, 5.0]
    assert math.isnan(scrape.timestamp[1]) and scrape.helps == {"b": "spaced help"}
    assert table.index_of("b") == 1 and table.labels(1) == {}


def test_type_names_are_case_insensitive_in_text_and_histogram_suffixes_resolve():
    text = ('# TYPE h HISTOGRAM\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'
            "# HELP h_created not part of h in the text format\nh_created 1\n")
    scrape = parse(text, SeriesTable())
    assert scrape.types == {"h": "histogram"} and len(scrape) == 4


# --- the table ---------------------------------------------------------------------------

def test_series_table_api():
    table = SeriesTable()
    scrape = parse('m{b="2",a="1"} 1\nm{a="1",b="2"} 2\nn 3\n', table)
    assert scrape.index.tolist() == [0, 0, 1] and len(table) == 2
    assert table.name(0) == "m" and list(table.labels(0).items()) == [("a", "1"), ("b", "2")]
    table.labels(0)["a"] = "changed"
    assert table.labels(0)["a"] == "1"
    assert table.index_of("m", {"b": "2", "a": "1"}) == 0 and table.index_of("m") is None
    assert table.intern("n", {}) == 1 and table.intern("o", [("z", "")]) == 2


# --- an exporter scrape ------------------------------------------------------------------

def _bench_module():
    path = Path(__file__).resolve().parents[1] / "bench" / "parse_bench.py"
    spec = importlib.util.spec_from_file_location("parse_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_exporter_like_payload_matches_prometheus_client():
    from exporter import contract

    payload = _bench_module().build_payload()  # the benchmark's own payload
    table = SeriesTable()
    scrape = parse(payload, table, content_type="text/plain; version=0.0.4; charset=utf-8")
    ref = [s for fam in text_string_to_metric_families(payload.decode()) for s in fam.samples]
    assert len(ref) == len(scrape) and 4000 <= len(scrape) <= 5000
    for (name, labels, value, _), r in zip(flat(scrape, table), ref, strict=True):
        assert (name, labels, value) == (r.name, r.labels, float(r.value))
    published = {m.name: m for m in contract.ALL}
    assert set(scrape.types) <= set(published)
    for i in set(scrape.index.tolist()):
        assert set(table.labels(i)) == set(published[table.name(i)].labels)
    assert_same_scrape(parse(payload, table), scrape)


# --- real third-party payloads -------------------------------------------------------------

@pytest.mark.parametrize("capture", sorted(
    (Path(__file__).parent / "fixtures" / "dcgm").glob("*.prom")), ids=lambda p: p.stem)
def test_real_dcgm_exporter_scrapes_parse_as_prometheus_client_reads_them(capture: Path):
    text = capture.read_text()
    table = SeriesTable()
    scrape = parse(text, table, content_type="text/plain; version=0.0.4")
    ref = [s for fam in text_string_to_metric_families(text) for s in fam.samples]
    assert len(scrape) == len(ref) > 0
    for (name, labels, value, _), r in zip(flat(scrape, table), ref, strict=True):
        # prometheus_client renames a counter sample without `_total` (dcgm-exporter
        # writes several); Prometheus, like kubetally, keeps the name as written.
        renamed = scrape.types.get(name) == "counter" and not name.endswith("_total")
        assert (name + "_total" if renamed else name, labels) == (r.name, r.labels)
        assert value == float(r.value) or (math.isnan(value) and math.isnan(r.value))
    assert_same_scrape(parse(text, table), scrape)  # the warm table reads it the same
