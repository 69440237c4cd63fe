"""The demo's store directory: wiped at start (carefully), or continued with ``--keep``.

The demo wipes its store so every run shows a clean week, but ``--store`` is a path a
user types: a typo must not delete their home directory. So only a directory that holds
nothing but store shards (``shard-<i>-of-<n>/``) is wiped; anything else is refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from aggregator.store.layout import HOUR, shard_of_dirname
from kubetally.config import ConfigValueError
from kubetally.demo_cluster import DemoCluster

__all__ = ["prepare_store", "resume_point"]


def _is_shard(entry: Path) -> bool:
    return entry.is_dir() and not entry.is_symlink() and shard_of_dirname(entry.name) is not None


def prepare_store(path: Path, *, keep: bool) -> None:
    """Empty ``path`` of an earlier demo's store unless ``keep``; refuse foreign content."""
    if "://" in str(path):
        raise ConfigValueError(f"--store {path}: the demo writes a local directory")
    if keep or not path.exists():
        return
    if not path.is_dir():
        raise ConfigValueError(f"--store {path} is a file, not a directory")
    foreign = sorted(e.name for e in path.iterdir() if not _is_shard(e))
    if foreign:
        raise ConfigValueError(
            f"--store {path} holds more than a kubetally store ({', '.join(foreign[:3])}); "
            "pick another directory, remove it, or pass --keep")
    for entry in path.iterdir():
        shutil.rmtree(entry)


def resume_point(cluster: DemoCluster, start: int) -> int:
    """Where ``--keep`` continues: ``start``, or the next hour after the last interval stored.

    Backfilled intervals never cross an hour, so the hour after the last stored start is
    free; the rest of that hour stays a gap. The nodes' clocks are moved there too, so
    simulated time and stored time agree again.
    """
    assert cluster.running is not None
    last = cluster.running.aggregator.store.last_start()
    if last is None:
        return start
    resume = max(start, last - last % HOUR + HOUR)
    cluster.advance(resume)
    return resume
