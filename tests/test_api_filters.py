"""The filter language: hand-written cases, and two properties — printing then parsing
gives the same AST back, and the vectorized predicate agrees with the row-by-row one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.errors import BadParameter
from api.filters import (
    FIELDS,
    OPS,
    And,
    Compare,
    Or,
    compile_filter,
    matches_row,
    parse_filter,
    to_text,
)


def test_parse_examples():
    assert parse_filter('namespace:"a","b"') == Compare("namespace", None, ":", ("a", "b"))
    assert parse_filter(' label[app.kubernetes.io/name] !~>: "x" ') == Compare(
        "label", "app.kubernetes.io/name", "!~>:", ("x",))
    node = parse_filter('cluster:"c" + node<~:"n" | (pod~>:"1" + label[app]!:"")')
    assert node == Or((And((Compare("cluster", None, ":", ("c",)),
                            Compare("node", None, "<~:", ("n",)))),
                       And((Compare("pod", None, "~>:", ("1",)),
                            Compare("label", "app", "!:", ("",))))))
    assert parse_filter(r'pod:"a\"b\\c"').values == ('a"b\\c',)


@pytest.mark.parametrize(("text", "position"), [
    ('namespace:"a"+', 14), ("namespace", 9), ('namespace:"a" namespace:"b"', 14),
    ('(namespace:"a"', 14), ('label[app:"x"', 9), (')', 0), ('pod:"a\\n"', 6),
])
def test_malformed_filters_name_the_position(text, position):
    with pytest.raises(BadParameter) as err:
        parse_filter(text)
    assert err.value.parameter == "filter" and f"position {position}" in err.value.message


def test_label_column_names_follow_the_exporter_and_missing_labels_are_empty():
    where = compile_filter(parse_filter('label[app.kubernetes.io/name]:"web"|label[team]:""'))
    cols = {"label_app_kubernetes_io_name": np.array(["web", "db"], dtype=object),
            "label_team": np.array(["x", "y"], dtype=object)}
    assert where(cols).tolist() == [True, False]


# ---- properties -------------------------------------------------------------------------

COLUMNS = {"namespace": "namespace", "pod": "pod", "controllerKind": "controller_kind",
           "controller": "controller"}
WORDS = st.text(alphabet='ab"\\ ,+|()', max_size=3)
compares = st.one_of(
    st.builds(Compare, st.sampled_from(list(COLUMNS)), st.none(), st.sampled_from(OPS),
              st.lists(WORDS, min_size=1, max_size=3).map(tuple)),
    st.builds(Compare, st.just("label"), st.sampled_from(["app", "team"]),
              st.sampled_from(OPS), st.lists(WORDS, min_size=1, max_size=3).map(tuple)))
nodes = st.recursive(compares, lambda inner: st.one_of(
    st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
    st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs)))), max_leaves=8)


@given(nodes)
def test_print_then_parse_is_identity(node):
    assert parse_filter(to_text(node)) == node


@settings(max_examples=200)
@given(nodes, st.lists(st.tuples(*[st.text(alphabet="ab", max_size=3)] * 5), max_size=8),
       st.booleans())
def test_vectorized_equals_row_by_row(node, rows, with_team):
    names = [*sorted(set(COLUMNS.values())), "label_app"] + (["label_team"] if with_team else [])
    table = {c: np.array([r[i % 5] for r in rows], dtype=object) for i, c in enumerate(names)}
    lazy = _Lazy(table, len(rows))
    got = compile_filter(node)(lazy)
    expected = [matches_row(node, {c: v[i] for c, v in table.items()}) for i in range(len(rows))]
    assert got.dtype == bool and got.tolist() == expected


class _Lazy(dict):
    """Like the store's lazy columns: a label the partition lacks reads as all ""."""

    def __init__(self, table, n):
        super().__init__(table)
        self.n = n

    def __missing__(self, key):
        assert key.startswith("label_")
        return np.array([""] * self.n, dtype=object)


def test_node_fields_are_their_own():
    assert parse_filter('instanceType:"m5"', "nodes").field == "instanceType"
    with pytest.raises(BadParameter):
        parse_filter('namespace:"x"', "nodes")
    assert set(FIELDS["nodes"]) >= {"cluster", "node", "provider", "region"}
