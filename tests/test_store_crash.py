"""THE SIGKILL test: kill a writer at random moments; no acknowledged interval is lost.

``aggregator.store._crashdriver`` appends synthetic one-hour intervals as fast as it
can (so every append seals the hour before, and every 24th rolls a day up, the first
one a month too), printing ``ack <start>`` once each append has returned. We kill it
with SIGKILL at random moments, a dozen times, some while it is still starting
(replaying its WAL), and restart it each time; it resumes
after the last durable interval. Then every acknowledged interval must be stored exactly
once, the stored intervals must be gap-free, every sealed partition must open with
``zarr.open_group``, and the rolled-up days must agree with the raw data.

The kill moments come from a seeded RNG; set ``KT_CRASH_SEED`` to replay a failure.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import zarr

from aggregator.store import Store, StoreReader
from aggregator.store._crashdriver import T0
from aggregator.store.layout import DAY

STEP = 3600
CONTAINERS = 20
RUNS = 12
REPO = Path(__file__).resolve().parents[1]


def _run_once(root: Path, rng: random.Random, early: bool) -> tuple[list[int], bool]:
    """Start the driver, kill it at a random moment; (acked starts, saw it ready)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator.store._crashdriver", str(root), "--step", str(STEP),
         "--containers", str(CONTAINERS)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("ready"):
                ready.set()

    thread = threading.Thread(target=pump)
    thread.start()
    if early:
        time.sleep(rng.uniform(0.0, 0.8))  # importing, recovering, or just started
    else:
        assert ready.wait(30), "driver did not start"
        time.sleep(rng.uniform(0.05, 1.6))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    thread.join()
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == -signal.SIGKILL, f"driver died by itself: {stderr}"
    acked = [int(line.split()[1]) for line in lines
             if line.startswith("ack ") and line.endswith("\n")]
    return acked, ready.is_set()


def test_sigkill_at_random_moments_loses_no_acked_interval(tmp_path: Path) -> None:
    seed = int(os.environ.get("KT_CRASH_SEED", str(time.time_ns() % 10**6)))
    print(f"KT_CRASH_SEED={seed}")
    rng = random.Random(seed)
    acked: list[int] = []
    for run in range(RUNS):
        got, _ = _run_once(tmp_path, rng, early=run % 4 == 3)
        acked.extend(got)
    assert len(acked) > 20, "the driver barely ran: the test proves little"
    assert acked == sorted(set(acked)), "an interval was acknowledged twice"

    reader = StoreReader(tmp_path)
    last = max(acked)
    # every stored interval, exactly once: per 20-minute step, 20 containers × 20 minutes
    end = last + 4 * STEP  # an interval durable but not acked may follow the last ack
    res = reader.query(T0, end, STEP, [], measures=["minutes", "cpu_cost"])
    minutes = res.values["minutes"][:, 0]
    stored = T0 + STEP * np.flatnonzero(~np.isnan(minutes))
    assert set(acked) <= set(stored.tolist()), "an acknowledged interval is missing"
    np.testing.assert_array_equal(minutes[~np.isnan(minutes)], CONTAINERS * STEP / 60)
    assert stored.tolist() == list(range(T0, int(stored.max()) + STEP, STEP)), "a gap"
    np.testing.assert_array_equal(res.coverage[: len(stored)], STEP / 60)

    sealed = reader.partitions()
    assert any(p.tier == "raw" for p in sealed)
    for info in sealed:
        group = zarr.open_group(info.location, mode="r")
        for table in ("containers", "nodes"):
            times = group[f"{table}/time"][:]
            assert len(times) and (np.diff(times) > 0).all()
            assert info.start <= times.min() and times.max() < info.end
            assert group[f"{table}/cpu_cost"].shape[0] == len(times)

    # the rolled-up days agree with the raw intervals they came from
    days_end = T0 + DAY * ((int(stored.max()) - T0) // DAY + 1)
    by_day = reader.query(T0, days_end, DAY, [], measures=["cpu_cost", "minutes"])
    if any(p.tier != "raw" for p in sealed):
        assert {"hourly", "daily"} & {t for _, t, _ in by_day.sources}
    raw = reader.query(T0, days_end, STEP, [], measures=["cpu_cost", "minutes"])
    per_day = np.nansum(raw.values["cpu_cost"][:, 0].reshape(-1, DAY // STEP), axis=1)
    np.testing.assert_allclose(by_day.values["cpu_cost"][:, 0], per_day, rtol=1e-12)

    store = Store(tmp_path, step=STEP)  # recovers once more, cleanly
    assert store.last_start() == int(stored.max())
    store.close()
