"""How simulated containers use CPU and memory over time.

Daily rhythm (a busy afternoon, a quiet night), noise, CPU limits that
throttle, memory that creeps up until its limit kills the container, and rare
random restarts. A restart gives the container a new ID and starts its
counters from zero, exactly the counter reset the aggregator must handle.
"""

from __future__ import annotations

import math
import random

from kubernetes.utils import parse_quantity

from exporter.simulate.workload import SimContainer, new_container_id

__all__ = ["CFS_PERIOD_SECONDS", "RESTARTS_PER_HOUR", "diurnal", "restart", "step"]

CFS_PERIOD_SECONDS = 0.1
#: Chance per container per hour of a random restart (crash, rollout, eviction).
RESTARTS_PER_HOUR = 0.01


def diurnal(t: float) -> float:
    """Load factor at Unix time ``t``: 0.55 at 03:00 UTC, 1.45 at 15:00 UTC."""
    hour = (t % 86400) / 3600
    return 1.0 + 0.45 * math.sin(2 * math.pi * (hour - 9) / 24)


def _limit(c: SimContainer, resource: str) -> float | None:
    raw = c.limits.get(resource)
    return float(parse_quantity(raw)) if raw else None


def restart(c: SimContainer, t: float, rng: random.Random) -> None:
    """Replace the container: new ID, counters from zero, memory back to its base."""
    c.container_id = new_container_id(rng)
    c.restart_count += 1
    c.cpu_seconds = c.periods = c.throttled_periods = c.throttled_seconds = 0.0
    c.working_set = c.mem_base
    c.started_at = t


def step(c: SimContainer, t: float, dt: float, rng: random.Random) -> bool:
    """Advance one container by ``dt`` seconds ending at ``t``; True if it restarted."""
    mem_limit = _limit(c, "memory")
    if rng.random() < dt / 3600 * RESTARTS_PER_HOUR or (
            mem_limit is not None and c.working_set > mem_limit):
        restart(c, t, rng)
        return True
    demand = c.cpu_base * diurnal(t) * rng.lognormvariate(0.0, 0.15)
    cpu_limit = _limit(c, "cpu")
    used = demand if cpu_limit is None else min(demand, cpu_limit)
    c.cpu_seconds += used * dt
    if cpu_limit is not None:
        periods = dt / CFS_PERIOD_SECONDS
        c.periods += periods
        if demand > cpu_limit:
            c.throttled_periods += periods * (demand - cpu_limit) / demand
            c.throttled_seconds += (demand - cpu_limit) * dt
    hours = max(t - c.started_at, 0.0) / 3600
    c.working_set = max(
        c.mem_base * (0.9 + 0.1 * diurnal(t)) + c.mem_growth_per_hour * hours
        + rng.gauss(0.0, c.mem_base * 0.01), 0.0)
    return False
