"""What the demo prints: a cost summary read back from the store, and commands to try.

The summary is computed with :class:`aggregator.store.StoreReader`, the API's own read
path, not from the aggregator's in-memory reports: what the user sees is what anyone
reading the store gets, so the demo also shows that the store is complete.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from aggregator.store import StoreReader
from aggregator.store.layout import HOUR

__all__ = ["Summary", "curl_commands", "format_summary", "summarize"]

_RESOURCES = ("cpu", "ram", "gpu")


@dataclass(frozen=True)
class Summary:
    """Dollars over ``[start, end)``: the nodes' cost, what containers were charged, idle."""

    start: int
    end: int
    total_cost: float
    charged_cost: float
    idle_cost: float
    gpu_cost: float
    gpu_charged_cost: float
    namespaces: dict[str, float]  # dollars charged per namespace, most expensive first
    node_costs: dict[str, float]  # dollars per node (cpu + ram + gpu)
    node_gpu_costs: dict[str, float]  # GPU dollars per node

    @property
    def idle_share(self) -> float:
        """Idle dollars over the nodes' cost (0 for an empty store)."""
        return self.idle_cost / self.total_cost if self.total_cost else 0.0


def _pieces(start: int, end: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut at its first and last hour boundary.

    A query's one step must be a whole number of hours from an hour boundary for the
    reader to use the hourly tier; a week then reads 7 hourly partitions instead of
    168 raw ones (≈ 1 s against ≈ 7 s on the reference VM).
    """
    first, last = start - start % HOUR + HOUR * (start % HOUR > 0), end - end % HOUR
    if first >= last:
        return [(start, end)]
    cuts = [start, first, last, end]
    return [(a, b) for a, b in itertools.pairwise(cuts) if a < b]


def _add(into: dict[str, float], keys: np.ndarray, values: dict[str, np.ndarray],
         names: list[str]) -> None:
    """Add each group's dollars (summed over steps and ``names``, NaN as 0) into ``into``."""
    dollars = np.sum([np.nansum(values[n], axis=0) for n in names], axis=0)
    for key, v in zip(keys.tolist(), np.atleast_1d(dollars).tolist(), strict=True):
        into[str(key)] = into.get(str(key), 0.0) + float(v)


def summarize(store: str, start: int, end: int) -> Summary:
    """Read the window's costs back from ``store`` through the API's reader."""
    reader = StoreReader(store)
    cost = [f"{r}_cost" for r in _RESOURCES]
    idle = [f"{r}_idle_cost" for r in _RESOURCES]
    per_ns: dict[str, float] = {}
    gpu_ns: dict[str, float] = {}
    per_node: dict[str, float] = {}
    gpu_node: dict[str, float] = {}
    idle_node: dict[str, float] = {}
    for a, b in _pieces(start, end):
        ns = reader.query(a, b, b - a, ["namespace"], table="containers", measures=cost)
        nodes = reader.query(a, b, b - a, ["node"], table="nodes", measures=cost + idle)
        _add(per_ns, ns.keys["namespace"], ns.values, cost)
        _add(gpu_ns, ns.keys["namespace"], ns.values, ["gpu_cost"])
        _add(per_node, nodes.keys["node"], nodes.values, cost)
        _add(gpu_node, nodes.keys["node"], nodes.values, ["gpu_cost"])
        _add(idle_node, nodes.keys["node"], nodes.values, idle)
    return Summary(
        start=start, end=end,
        total_cost=sum(per_node.values()),
        charged_cost=sum(per_ns.values()),
        idle_cost=sum(idle_node.values()),
        gpu_cost=sum(gpu_node.values()),
        gpu_charged_cost=sum(gpu_ns.values()),
        namespaces=dict(sorted(per_ns.items(), key=lambda kv: (-kv[1], kv[0]))),
        node_costs=per_node,
        node_gpu_costs=gpu_node,
    )


def _when(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_summary(s: Summary, top: int = 5) -> str:
    """The summary as the demo prints it (dollars to the cent)."""
    days = (s.end - s.start) / 86400
    lines = [f"Cost of the simulated cluster, {_when(s.start)} → {_when(s.end)} "
             f"({days:g} day{'' if days == 1 else 's'}):",
             f"  total (nodes)      ${s.total_cost:,.2f}",
             f"  charged to pods    ${s.charged_cost:,.2f}",
             f"  idle               ${s.idle_cost:,.2f} ({s.idle_share:.1%} of total)",
             f"  GPU                ${s.gpu_cost:,.2f} "
             f"(charged to pods ${s.gpu_charged_cost:,.2f})",
             f"  top {min(top, len(s.namespaces))} namespaces:"]
    for name, dollars in list(s.namespaces.items())[:top]:
        lines.append(f"    {name:<18} ${dollars:,.2f}")
    return "\n".join(lines)


def curl_commands(exporter_urls: list[str], metrics_port: int, store: str) -> str:
    """Ready-to-paste commands against what the demo serves and writes."""
    gpu = exporter_urls[0]
    return "\n".join([
        "Try:",
        f"  curl -s {gpu}/metrics | grep -E '^kubetally_(gpu_info|container_gpu_sm_utilization"
        "_ratio)' | head",
        f"  curl -s {exporter_urls[-1]}/metrics | grep '^kubetally_container_cpu_usage_seconds"
        "_total' | head",
        f"  curl -s localhost:{metrics_port}/metrics | grep -E '^kubetally_aggregator_"
        "(target_up|interval_duration_seconds)'",
        f"  ls {store}/shard-0-of-1/*/ | head -20    # Zarr partitions: raw hours, hourly days",
    ])
