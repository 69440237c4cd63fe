"""What the store takes in and hands around: a :class:`Block` and a :class:`TableData`.

A block is one interval of one table as the cost engine produced it. A table-data is a
table over a whole partition (or the open hour), the shape a partition stores and a
rollup or query consumes. Validation lives here so every entry point (append, replay,
rollup) refuses the same malformed input with the same message, before anything changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from aggregator.store.errors import StoreInputError
from aggregator.store.layout import LABEL_PREFIX, TABLES, validate_column_name

__all__ = ["Block", "TableData", "join_columns", "series_keys", "to_strings", "validate_block"]

#: Separates columns in a joined key: below every printable character, so joined keys sort
#: like the tuples they stand for. Identity values may not contain it (nor NUL).
SEP = "\x1f"
_LABEL_SEP = "\x1e"


@dataclass(frozen=True)
class Block:
    """One interval of one table: identity columns (object arrays of str) and measures.

    ``identity`` holds every identity column of the table (and, for containers, any
    ``label_<key>`` columns, "" when a pod lacks the label); ``measures`` holds float64
    arrays named after :mod:`aggregator.measures` (a measure left out is NaN).
    """

    identity: Mapping[str, np.ndarray]
    measures: Mapping[str, np.ndarray]

    def __len__(self) -> int:
        for col in self.identity.values():
            return len(col)
        return 0

    @staticmethod
    def empty(table: str) -> Block:
        """A block with no series of ``table`` (a shard with no nodes, say)."""
        spec = TABLES[table]
        return Block({c: np.empty(0, dtype=object) for c in spec.identity}, {})


@dataclass
class TableData:
    """A table over a partition: rows (time) × series, with its own series table.

    ``measures`` may be lazy (the open hour builds each array when it is looked up, so
    sealing holds one at a time): look each one up once, when it is needed.
    """

    time: np.ndarray  # int64 (T,), sorted
    seconds: np.ndarray  # int64 (T,)
    identity: dict[str, np.ndarray]  # object (S,) per identity and label column
    measures: Mapping[str, np.ndarray]  # float64 (T, S) per measure

    @property
    def n_series(self) -> int:
        for col in self.identity.values():
            return len(col)
        return 0

    @staticmethod
    def empty(table: str) -> TableData:
        spec = TABLES[table]
        return TableData(np.empty(0, np.int64), np.empty(0, np.int64),
                         {c: np.empty(0, dtype=object) for c in spec.identity},
                         {m: np.empty((0, 0)) for m in spec.measures})


def to_strings(values: object, what: str) -> np.ndarray:
    """A 1-D object array of ``str``; StoreInputError for anything else (None, bytes, 2-D)."""
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise StoreInputError(f"{what}: expected a 1-D array, got shape {arr.shape}")
    if len(arr) and not all(issubclass(t, str) for t in set(map(type, arr))):
        raise StoreInputError(f"{what}: every value must be a str")
    joined = "".join(arr)
    if "\x00" in joined or SEP in joined or _LABEL_SEP in joined:
        raise StoreInputError(f"{what}: values may not contain control characters \\x00, "
                              "\\x1e or \\x1f")
    return arr


def validate_block(table: str, block: Block) -> tuple[dict[str, np.ndarray],
                                                       dict[str, np.ndarray], np.ndarray]:
    """Check ``block`` against ``table``'s spec; return clean (identity, measures) copies
    and the series keys (computed once here: they cost more than the rest at scale).

    Refuses missing or unknown columns, unknown measures, mismatched lengths, non-str
    identity values, non-finite or non-numeric measures (NaN is fine: a missing sample),
    and a series appearing twice in one interval.
    """
    spec = TABLES[table]
    if not isinstance(block, Block):
        raise StoreInputError(f"{table}: expected a Block, got {type(block).__name__}")
    missing = [c for c in spec.identity if c not in block.identity]
    if missing:
        raise StoreInputError(f"{table}: missing identity columns {missing}")
    bad = sorted(c for c in block.identity if not validate_column_name(table, str(c)))
    if bad:
        raise StoreInputError(f"{table}: unknown identity columns {bad}"
                              + (" (labels must match label_[A-Za-z_][A-Za-z0-9_]*)"
                                 if spec.labels else ""))
    unknown = sorted(set(block.measures) - set(spec.measures))
    if unknown:
        raise StoreInputError(f"{table}: unknown measures {unknown}")
    identity = {c: to_strings(v, f"{table}.{c}") for c, v in block.identity.items()}
    n = len(identity[spec.identity[0]])
    measures: dict[str, np.ndarray] = {}
    for name, values in block.measures.items():
        try:
            arr = np.array(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise StoreInputError(f"{table}.{name}: not numeric: {exc}") from None
        if arr.ndim != 1:
            raise StoreInputError(f"{table}.{name}: expected 1-D, got shape {arr.shape}")
        if np.isinf(arr).any():
            raise StoreInputError(f"{table}.{name}: infinite values")
        measures[name] = arr
    lengths = {c: len(v) for c, v in (*identity.items(), *measures.items())}
    if len(set(lengths.values())) > 1:
        raise StoreInputError(f"{table}: columns differ in length: {lengths}")
    keys = series_keys(table, identity) if n else np.empty(0, dtype=object)
    if len(set(keys.tolist())) != n:
        raise StoreInputError(f"{table}: a series appears twice in one interval")
    return identity, measures, keys


def join_columns(columns: list[np.ndarray], n: int) -> np.ndarray:
    """One object-array key per row: the columns joined by :data:`SEP`.

    ``str.join`` over zipped rows builds each key once; numpy's object ``+`` made an
    intermediate string per column and was 6x slower at 250,000 containers.
    """
    out = np.empty(n, dtype=object)
    if not columns:
        out[:] = ""
        return out
    out[:] = [SEP.join(row) for row in zip(*columns, strict=True)] if len(columns) > 1 else (
        columns[0])
    return out


def series_keys(table: str, identity: Mapping[str, np.ndarray]) -> np.ndarray:
    """The key naming each series: identity values, then its non-empty labels by name.

    An empty label and an absent label column give the same key, so a series keeps its
    identity when another pod brings a new label column into the table.
    """
    spec = TABLES[table]
    n = len(identity[spec.identity[0]])
    key = join_columns([identity[c] for c in spec.identity], n)
    labels = sorted(c for c in identity if c.startswith(LABEL_PREFIX))
    if labels:
        prefixes = [f"{_LABEL_SEP}{name}=" for name in labels]
        key[:] = [k + "".join(p + v for p, v in zip(prefixes, vals, strict=True) if v)
                  for k, *vals in zip(key, *(identity[c] for c in labels), strict=True)]
    return key
