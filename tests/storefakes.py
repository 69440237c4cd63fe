"""Hand-written blocks and helpers for the store tests.

``containers("a", "b", cpu_cost=[1, 2])`` builds a containers block whose series differ
by container name, so a test states only what it checks.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from aggregator.frame import CONTAINER_IDENTITY, NODE_IDENTITY
from aggregator.store import Block


def ts(text: str) -> int:
    """Unix seconds of an ISO time in UTC: ``ts("2024-01-31T22:00")``."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def strings(values: list[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def containers(*names: str, namespace: str | list[str] = "default",
               labels: dict[str, list[str]] | None = None, **measures: object) -> Block:
    """A containers block: one series per name (container = pod = controller = name)."""
    n = len(names)
    ns = [namespace] * n if isinstance(namespace, str) else list(namespace)
    identity = {c: strings(["x"] * n) for c in CONTAINER_IDENTITY}
    identity.update(cluster=strings(["c1"] * n), node=strings(["n1"] * n),
                    namespace=strings(ns), container=strings(list(names)),
                    pod=strings([f"{x}-pod" for x in names]),
                    controller=strings([f"{x}-deploy" for x in names]),
                    uid=strings([f"uid-{x}" for x in names]))
    for key, values in (labels or {}).items():
        identity[key] = strings(values)
    return Block(identity, {m: np.asarray(v) for m, v in measures.items()})


def nodes(*names: str, **measures: object) -> Block:
    """A nodes block: one series per node name."""
    n = len(names)
    identity = {c: strings(["x"] * n) for c in NODE_IDENTITY}
    identity.update(cluster=strings(["c1"] * n), node=strings(list(names)))
    return Block(identity, {m: np.asarray(v) for m, v in measures.items()})


def by_key(result: object, column: str, measure: str) -> dict[str, np.ndarray]:
    """A query result's ``(steps,)`` values of one measure per group name."""
    keys = result.keys[column]  # type: ignore[attr-defined]
    values = result.values[measure]  # type: ignore[attr-defined]
    return {str(k): values[:, i] for i, k in enumerate(keys)}
