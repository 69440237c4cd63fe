"""The exporter's text exposition reads back identically through prometheus_client's parser."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from exporter import contract as c
from exporter.exposition import Family, Registry, format_value, label_pairs, render

label_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
values = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.integers(-(2**53), 2**53).map(float))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(label_values, label_values, values), min_size=1, max_size=8))
def test_round_trip_through_the_reference_parser(rows):
    family = Family("kubetally_test_bytes", "gauge", 'help with \\ and "quotes"\nnewline',
                    ("namespace", "pod"))
    for ns, pod, value in rows:
        family.add([ns, pod], value)
    parsed = list(text_string_to_metric_families(render([family]).decode()))
    assert len(parsed) == 1 and parsed[0].type == "gauge"
    got = [(s.labels["namespace"], s.labels["pod"], s.value) for s in parsed[0].samples]
    assert len(got) == len(rows)
    for (ns, pod, value), (g_ns, g_pod, g_value) in zip(rows, got, strict=True):
        assert (g_ns, g_pod) == (ns, pod)
        assert (math.isnan(g_value) and math.isnan(value)) or g_value == value


def test_counter_family_keeps_total_and_its_type():
    family = c.CONTAINER_CPU_USAGE.family()
    family.add_pairs(label_pairs(c.CONTAINER_LABELS, ["ns", "p", "u", "app", "n", "", ""]), 12.5)
    text = render([family]).decode()
    assert "# TYPE kubetally_container_cpu_usage_seconds_total counter\n" in text
    assert 'kubetally_container_cpu_usage_seconds_total{namespace="ns",pod="p"' in text
    (parsed,) = text_string_to_metric_families(text)
    assert parsed.type == "counter" and parsed.samples[0].value == 12.5


def test_values_in_go_spelling():
    assert [format_value(v) for v in (1, 0.25, math.inf, -math.inf, math.nan, 1e21)] == [
        "1.0", "0.25", "+Inf", "-Inf", "NaN", "1e+21"]


def test_labelless_samples_and_registry_order():
    first, second = Family("kubetally_a", "gauge", "a", ()), Family("kubetally_b", "gauge", "b", ())
    first.add([], 1)
    second.add([], 2)

    class Two:
        def collect(self):
            return [second]

    class One:
        def collect(self):
            return [first]

    registry = Registry()
    registry.register(One())
    registry.register(Two())
    text = render(registry.collect()).decode()
    assert text.index("kubetally_a 1.0") < text.index("kubetally_b 2.0")
