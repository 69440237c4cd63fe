"""Prometheus text exposition (format 0.0.4), rendered from pre-built label strings.

Why not prometheus_client's ``generate_latest``: it validates and escapes every
label name and value of every sample on every scrape. On a 110-pod node that
was 35 of the 49 ms a scrape took (``bench/exporter_bench.py``, profiled), and
importing it costs ~14 MB of the DaemonSet's memory. Here a container's
identity labels are escaped once per scrape and shared by all of its series,
and a family is a list of ready lines, so rendering is one ``str.join``.
The output is the same text format; ``promtool check metrics`` and
prometheus_client's parser read it in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

__all__ = ["CONTENT_TYPE", "Collector", "Family", "Registry", "format_value", "label_pairs",
           "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def label_pairs(names: Sequence[str], values: Sequence[str]) -> str:
    """``a="x",b="y"``: escaped once, reused for every series of the same identity."""
    return ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))


def format_value(value: float) -> str:
    """Go-style floats as Prometheus writes them: ``+Inf``, ``-Inf``, ``NaN``, repr otherwise."""
    if value != value:  # NaN
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class Family:
    """One metric family of one scrape: HELP, TYPE and its sample lines."""

    __slots__ = ("_lines", "_names", "help", "name", "type")

    def __init__(self, name: str, type_: str, help_: str, label_names: Sequence[str]) -> None:
        self.name, self.type, self.help = name, type_, help_
        self._names = tuple(label_names)
        self._lines: list[str] = []

    @property
    def label_names(self) -> tuple[str, ...]:
        """Every label of the family, in order."""
        return self._names

    def add(self, values: Sequence[str], value: float) -> None:
        """Add a sample from label values (escaped here)."""
        self.add_pairs(label_pairs(self._names, values), value)

    def add_pairs(self, pairs: str, value: float) -> None:
        """Add a sample whose labels are already rendered by :func:`label_pairs`."""
        if pairs:
            self._lines.append(f"{self.name}{{{pairs}}} {format_value(value)}\n")
        else:
            self._lines.append(f"{self.name} {format_value(value)}\n")

    def __len__(self) -> int:
        return len(self._lines)

    def render(self) -> str:
        """The family's text block."""
        help_ = self.help.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {self.name} {help_}\n# TYPE {self.name} {self.type}\n" + "".join(
            self._lines)


class Collector(Protocol):
    """Anything with ``collect()`` yielding families, read on every scrape."""

    def collect(self) -> Iterable[Family]: ...


class Registry:
    """The ordered collectors of one exporter."""

    def __init__(self) -> None:
        self._collectors: list[Collector] = []

    def register(self, collector: Collector) -> None:
        """Add a collector; scrapes read them in registration order."""
        self._collectors.append(collector)

    def collect(self) -> Iterator[Family]:
        """Every family of every collector, read now."""
        for collector in self._collectors:
            yield from collector.collect()


def render(families: Iterable[Family]) -> bytes:
    """The whole exposition body."""
    return "".join(f.render() for f in families).encode()
