"""The API reads while the aggregator's store writes: it sees whole intervals only."""

from __future__ import annotations

import threading

from storefakes import containers, nodes, ts

from aggregator.store import Store
from api import ApiConfig, create_app

T0 = ts("2026-06-01T00:00")
STEP = 300


def test_allocation_during_ingestion_sees_only_whole_intervals(tmp_path):
    """8 containers × $0.50 per 5-minute interval: every total the API reports is a
    multiple of $4 (one whole interval) and never goes down, while the writer appends,
    seals an hour every 12 intervals and rolls up."""
    names = [f"c{i}" for i in range(8)]
    block = (containers(*names, cpu_cost=[0.5] * 8, minutes=[5.0] * 8),
             nodes("n1", cpu_cost=[1.0], minutes=[5.0]))
    store = Store(tmp_path, step=STEP)
    store.append(T0, T0 + STEP, *block)
    end = T0 + 4 * 3600
    client = create_app(ApiConfig(store=str(tmp_path)), clock=lambda: end).test_client()
    done, errors = threading.Event(), []

    def write() -> None:
        try:
            for k in range(1, 4 * 12):  # 4 hours: three seals
                start = T0 + STEP * k
                store.append(start, start + STEP, *block)
                store.maintain(start + STEP)
        except Exception as exc:  # noqa: BLE001 - handed to the main thread to fail there
            errors.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    def total() -> float:
        body = client.get("/api/v1/allocation", query_string={
            "window": f"{T0},{end}", "aggregate": "cluster", "accumulate": "true"}).get_json()
        assert body["code"] == 200, body
        return sum(item["cpuCost"] for item in body["data"][0].values())

    seen: list[float] = []
    while not done.is_set() or len(seen) < 3:
        seen.append(total())
    writer.join()
    assert not errors, errors
    seen.append(total())
    for total in seen:
        assert total / 4.0 == round(total / 4.0), total  # whole intervals only
    assert seen == sorted(seen)  # a reader never goes back in time
    assert seen[-1] == 4.0 * 48  # every interval, once
