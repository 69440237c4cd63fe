"""OpenCost's filter language (v2, the ``filter=`` parameter): parse, print, compile.

Grammar (``+`` binds tighter than ``|``; whitespace between tokens is ignored)::

    expr    := and ("|" and)*
    and     := term ("+" term)*
    term    := "(" expr ")" | field op value ("," value)*
    field   := name | "label[" key "]"
    op      := ":" | "!:" | "~:" | "!~:" | "<~:" | "!<~:" | "~>:" | "!~>:"
    value   := '"' (any character but '"' and '\\', or '\\"', '\\\\')* '"'

``:`` is equality, ``~:`` contains, ``<~:`` starts with, ``~>:`` ends with, and ``!``
negates; several values mean "any of them" (negated: "none of them"), as in OpenCost.
The text parses into a small AST (:class:`Compare`, :class:`And`, :class:`Or`) that
:func:`to_text` prints back exactly, and :func:`compile_filter` turns into a vectorized
predicate over a partition's series table, the ``where`` of ``StoreReader.query``: one
numpy operation per comparison, never a Python loop over series. A label a partition
lacks reads as "" there. :func:`matches_row` is the plain row-by-row meaning, which the
tests hold the vectorized one to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from aggregator.store.layout import LABEL_PREFIX, validate_column_name
from api.errors import BadParameter

__all__ = ["FIELDS", "OPS", "And", "Compare", "Node", "Or", "column_of", "compile_filter",
           "label_column", "matches_row", "parse_filter", "to_text"]

#: API field name → store column, per table.
FIELDS: dict[str, dict[str, str]] = {
    "containers": {"cluster": "cluster", "node": "node", "namespace": "namespace",
                   "controllerKind": "controller_kind", "controllerName": "controller",
                   "controller": "controller", "pod": "pod", "container": "container"},
    "nodes": {"cluster": "cluster", "node": "node", "provider": "provider", "region": "region",
              "zone": "zone", "instanceType": "instance_type", "capacityType": "capacity_type",
              "gpuModel": "gpu_model"},
}
#: Operators, longest first so the lexer takes ``!<~:`` before ``!:``.
OPS = ("!<~:", "!~>:", "!~:", "<~:", "~>:", "!:", "~:", ":")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_LABEL_KEY = re.compile(r"[A-Za-z0-9._/-]+")
_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_]")
#: Deepest nesting accepted: well inside Python's recursion limit.
_MAX_DEPTH = 50


@dataclass(frozen=True)
class Compare:
    """``field[key] op "v1","v2"``; ``key`` only for ``label``."""

    field: str
    key: str | None
    op: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


Node = Compare | And | Or


def label_column(key: str) -> str:
    """``app.kubernetes.io/name`` → ``label_app_kubernetes_io_name``, as the exporter names it."""
    return LABEL_PREFIX + _LABEL_CHARS.sub("_", key)


def column_of(node: Compare, table: str) -> str:
    """The store column a comparison reads."""
    if node.key is not None:
        return label_column(node.key)
    return FIELDS[table][node.field]


class _Parser:
    """Recursive descent over the text; every error names its character position."""

    def __init__(self, text: str, table: str) -> None:
        self.text, self.pos, self.table, self.depth = text, 0, table, 0

    def fail(self, message: str) -> BadParameter:
        return BadParameter("filter", f"{message} at position {self.pos}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self, token: str) -> bool:
        self.skip()
        return self.text.startswith(token, self.pos)

    def take(self, token: str) -> bool:
        if self.peek(token):
            self.pos += len(token)
            return True
        return False

    def parse(self) -> Node:
        node = self.expr()
        self.skip()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.text[self.pos]!r}")
        return node

    def expr(self) -> Node:
        items = [self.conj()]
        while self.take("|"):
            items.append(self.conj())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conj(self) -> Node:
        items = [self.term()]
        while self.take("+"):
            items.append(self.term())
        return items[0] if len(items) == 1 else And(tuple(items))

    def term(self) -> Node:
        if self.take("("):
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise self.fail(f"more than {_MAX_DEPTH} nested parentheses")
            node = self.expr()
            self.depth -= 1
            if not self.take(")"):
                raise self.fail("expected ')'")
            return node
        self.skip()
        m = _NAME.match(self.text, self.pos)
        if not m:
            raise self.fail("expected a field name or '('")
        field, key = m[0], None
        if field == "label":
            self.pos = m.end()
            if not self.take("["):
                raise self.fail("expected '[' after label")
            k = _LABEL_KEY.match(self.text, self.pos)
            if not k:
                raise self.fail("expected a label key")
            key, self.pos = k[0], k.end()
            if not validate_column_name(self.table, label_column(key)):
                raise self.fail(f"label {key!r} cannot be filtered on here")
            if not self.take("]"):
                raise self.fail("expected ']'")
        elif field not in FIELDS[self.table]:
            raise self.fail(f"unknown field {field!r} (one of "
                            f"{', '.join([*FIELDS[self.table], 'label[...]'])})")
        else:
            self.pos = m.end()
        self.skip()
        op = next((o for o in OPS if self.text.startswith(o, self.pos)), None)
        if op is None:
            raise self.fail(f"expected an operator ({' '.join(OPS)})")
        self.pos += len(op)
        values = [self.string()]
        while self.take(","):
            values.append(self.string())
        return Compare(field, key, op, tuple(values))

    def string(self) -> str:
        if not self.take('"'):
            raise self.fail("expected a double-quoted value")
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "\\":
                if self.pos + 1 >= len(self.text) or self.text[self.pos + 1] not in '"\\':
                    raise self.fail('only \\" and \\\\ may be escaped')
                ch = self.text[self.pos + 1]
                self.pos += 1
            out.append(ch)
            self.pos += 1
        raise self.fail("unterminated string")


def parse_filter(text: str, table: str = "containers") -> Node:
    """Parse a filter over ``table``'s fields; BadParameter("filter") with the position."""
    if len(text) > 10_000:
        raise BadParameter("filter", "longer than 10000 characters")
    if not text.strip():
        raise BadParameter("filter", "empty filter at position 0")
    return _Parser(text, table).parse()


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_text(node: Node) -> str:
    """Print ``node`` so that :func:`parse_filter` gives it back (compound children bracketed)."""
    if isinstance(node, Compare):
        field = f"label[{node.key}]" if node.key is not None else node.field
        return f"{field}{node.op}{','.join(_quote(v) for v in node.values)}"
    sep = "+" if isinstance(node, And) else "|"
    return sep.join(f"({to_text(c)})" if not isinstance(c, Compare) else to_text(c)
                    for c in node.items)


def _one(op: str, values: tuple[str, ...], column: np.ndarray) -> np.ndarray:
    """Where any value matches (before negation), one numpy call per value."""
    base = op.lstrip("!")
    if base == ":":
        return np.isin(column, np.array(values, dtype=object))
    text = np.asarray(column, dtype=str)
    fn: Callable[[np.ndarray, str], np.ndarray] = {
        "~:": lambda a, v: np.strings.find(a, v) >= 0,
        "<~:": np.strings.startswith, "~>:": np.strings.endswith}[base]
    out = np.zeros(len(text), dtype=bool)
    for value in values:
        out |= fn(text, value)
    return out


def _evaluate(node: Node, columns: Mapping[str, np.ndarray], table: str) -> np.ndarray:
    if isinstance(node, Compare):
        hit = _one(node.op, node.values, columns[column_of(node, table)])
        return ~hit if node.op.startswith("!") else hit
    parts = [_evaluate(c, columns, table) for c in node.items]
    return (np.logical_and if isinstance(node, And) else np.logical_or).reduce(parts)


def compile_filter(node: Node, table: str = "containers") -> Callable[
        [Mapping[str, np.ndarray]], np.ndarray]:
    """The ``where`` for ``StoreReader.query``: series columns → bool mask."""
    def where(columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(_evaluate(node, columns, table), dtype=bool)
    return where


def matches_row(node: Node, row: Mapping[str, str], table: str = "containers") -> bool:
    """The filter's meaning for one series (a missing label is ""): the reference."""
    if isinstance(node, And):
        return all(matches_row(c, row, table) for c in node.items)
    if isinstance(node, Or):
        return any(matches_row(c, row, table) for c in node.items)
    value = row.get(column_of(node, table), "")
    base = node.op.lstrip("!")
    hit = any({":": value == v, "~:": v in value, "<~:": value.startswith(v),
               "~>:": value.endswith(v)}[base] for v in node.values)
    return not hit if node.op.startswith("!") else hit
