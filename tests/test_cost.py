"""The cost engine against hand-computed numbers, edge cases and a conservation property."""

from __future__ import annotations

import math

import numpy as np
import pytest
from framefakes import nodes
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.cost import CostError, compute
from aggregator.frame import (
    CONTAINER_IDENTITY,
    ContainerTable,
    DeviceTable,
    GPUUseTable,
    IntervalFrame,
)
from aggregator.measures import CONTAINER_MEASURES, NODE_MEASURES
from aggregator.pricebook import PriceBook, PriceSource
from aggregator.prices import PriceTable, UnitPrices

GiB = 2.0**30
NAN = math.nan
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
BOOK = PriceBook(UnitPrices(), PriceTable.load())


def _containers(rows: list[tuple]) -> ContainerTable:
    """rows: (pod, node, cpu use, cpu req, GiB use, GiB req, whole GPUs, MIG GPUs)."""
    n = len(rows)
    ident = {k: np.array([""] * n, dtype=object) for k in CONTAINER_IDENTITY}
    ident["pod"] = np.array([r[0] for r in rows], dtype=object)
    col = [np.array([r[i] for r in rows], dtype=float) for i in range(2, 8)]
    return ContainerTable(identity=ident, labels={},
                          node=np.array([r[1] for r in rows], dtype=np.int32),
                          cpu_usage_cores=col[0], cpu_request_cores=col[1],
                          ram_usage_bytes=col[2] * GiB, ram_request_bytes=col[3] * GiB,
                          gpu_request=col[4], mig_gpus=col[5])


def _devices(rows: list[tuple[int, float, bool]]) -> DeviceTable:
    return DeviceTable(uuid=np.array([f"GPU-{i}" for i in range(len(rows))], dtype=object),
                       node=np.array([r[0] for r in rows], dtype=np.int32),
                       physical_share=np.array([r[1] for r in rows], dtype=float),
                       shared=np.array([r[2] for r in rows], dtype=bool))


def _use(rows: list[tuple[int, int, float]]) -> GPUUseTable:
    return GPUUseTable(container=np.array([r[0] for r in rows], dtype=np.int32),
                       device=np.array([r[1] for r in rows], dtype=np.int32),
                       sm_share=np.array([r[2] for r in rows], dtype=float))


def scenario(seconds: int) -> IntervalFrame:
    """The cluster of :func:`test_hand_computed` (see its docstring), over ``seconds``."""
    node_table = nodes(*[("node-a", "aws", "us-east-1", "m5.2xlarge", "on_demand", 8, 32, 0),
                    ("node-b", "aws", "us-east-1", "p4d.24xlarge", "spot", 96, 1152, 8)])
    containers = _containers([
        ("api", 0, 0.5, 2, 3, 4, 0, 0),            # under its request
        ("batch", 0, 3, 1, 6, 2, 0, 0),            # over its request
        ("besteffort", 0, 0.25, 0, 1, 0, 0, 0),    # no requests at all
        ("trainer", 1, 6, 8, 60, 64, 1, 0),        # one whole GPU
        ("infer-1", 1, 2.5, 2, 4, 8, 0, 0),        # time-slices GPU-1, SM 0.6
        ("infer-2", 1, NAN, 2, 5, 8, 0, 0),        # time-slices GPU-1, SM 0.2; CPU not measured
        ("notebook", 1, 1, 4, 10, 16, 0, 3 / 7),   # MIG 3g.20gb: 3 of 7 slices
        ("orphan", -1, 1, 0.5, 2, 1, 0, 0),        # node unknown this interval
    ])
    devices = _devices([(1, 1.0, False), (1, 1.0, True), (1, 3 / 7, False), (1, 1.0, True)])
    use = _use([(3, 0, 0.9), (4, 1, 0.6), (5, 1, 0.2), (6, 2, 0.5)])
    return IntervalFrame(start=T0, end=T0 + seconds, nodes=node_table, containers=containers,
                         devices=devices, gpu_use=use)


#: $ per interval-hour, from the docstring of test_hand_computed.
HAND = {
    "cpu_cost": [0.0624942, 0.0937413, 0.00781178, 0.161047, 0.0503273, 0.0402619, 0.0805237],
    "ram_cost": [0.0167529, 0.0251293, 0.00418822, 0.172689, 0.0215861, 0.0215861, 0.0431722],
    "gpu_cost": [0, 0, 0, 0.604992, 0.453744, 0.151248, 0.259282],
    "node_cost": {"cpu": [0.249977, 1.93257], "ram": [0.134023, 3.10840], "gpu": [0, 4.83993]},
    "node_idle": {"cpu": [0.0859295, 1.60041], "ram": [0.0879527, 2.84936],
                  "gpu": [0, 3.37067]},
}


@pytest.mark.parametrize("seconds", [60, 3600])
def test_hand_computed(seconds):
    """Two nodes, eight containers, priced by hand.

    Unit prices (table row split by the default ratio 0.031611 : 0.004237 : 0.95):
      node-a, m5.2xlarge on-demand, $0.384/h, 8 vCPU, 32 GiB:
        weights 8×0.031611 + 32×0.004237 = 0.252888 + 0.135584 = 0.388472
        k = 0.384 / 0.388472 = 0.98848823
        cpu = k×0.031611 = 0.03124710 $/core-h, ram = k×0.004237 = 0.00418822 $/GiB-h
      node-b, p4d.24xlarge spot, $9.8809/h, 96 vCPU, 1152 GiB, 8 GPUs:
        weights 96×0.031611 + 1152×0.004237 + 8×0.95 = 3.034656 + 4.881024 + 7.6 = 15.51568
        k = 9.8809 / 15.51568 = 0.63683319
        cpu = 0.02013093, ram = 0.00269826, gpu = k×0.95 = 0.60499153
    Charged per hour (max(request, usage); NaN usage → request):
      api        cpu 2 × 0.0312471 = 0.0624942      ram 4 × 0.00418822 = 0.0167529
      batch      cpu 3 × 0.0312471 = 0.0937413      ram 6 × 0.00418822 = 0.0251293
      besteffort cpu 0.25 × 0.0312471 = 0.00781178  ram 1 × 0.00418822 = 0.00418822
      trainer    cpu 8 × 0.0201309 = 0.161047       ram 64 × 0.00269826 = 0.172689
                 gpu 1 whole × 0.604992 = 0.604992
      infer-1    cpu 2.5 × 0.0201309 = 0.0503273    ram 8 × 0.00269826 = 0.0215861
                 gpu shared: 0.6/(0.6+0.2) = 0.75 × 0.604992 = 0.453744
      infer-2    cpu 2 (usage NaN) = 0.0402619      ram 8 → 0.0215861
                 gpu shared: 0.25 × 0.604992 = 0.151248
      notebook   cpu 4 → 0.0805237                  ram 16 → 0.0431722
                 gpu MIG 3/7 × 0.604992 = 0.259282
      orphan     node -1: 1 core-hour used, 0.5 requested, 1 charged; every cost NaN
    Nodes per hour (capacity × unit price; idle = cost − charged):
      node-a cpu 8 × 0.0312471 = 0.249977, charged 5.25 cores → idle 2.75 × = 0.0859295
             ram 32 × 0.00418822 = 0.134023, charged 11 GiB → idle 21 × = 0.0879527
             (cpu + ram = 0.384 = the list price, as capacity = the table's specs)
      node-b cpu 96 × 0.0201309 = 1.93257, charged 16.5 → idle 79.5 × = 1.60041
             ram 1152 × 0.00269826 = 3.10840, charged 96 → idle 1056 × = 2.84936
             gpu 8 × 0.604992 = 4.83993, charged 1 + 1 + 3/7 → idle 39/7 × = 3.37067
             (GPU-3, shared but unused, is part of that idle); total 9.8809
    The 60-second interval is every cost above × 1/60.
    """
    hours = seconds / 3600
    prices = BOOK.node_unit_prices(scenario(seconds).nodes)
    assert list(prices.source) == [PriceSource.TABLE, PriceSource.TABLE]
    cost = compute(scenario(seconds), prices)
    c, n = cost.containers, cost.nodes
    for name in ("cpu_cost", "ram_cost", "gpu_cost"):
        expected = np.array(HAND[name]) * hours
        assert c[name][:7] == pytest.approx(expected, rel=2e-5, abs=1e-12), name
        if seconds == 3600:
            assert c[name][:7] == pytest.approx(expected, abs=0.005), name
    for r in ("cpu", "ram", "gpu"):
        assert n[f"{r}_cost"] == pytest.approx(np.array(HAND["node_cost"][r]) * hours, rel=2e-5)
        assert n[f"{r}_idle_cost"] == pytest.approx(np.array(HAND["node_idle"][r]) * hours,
                                                    rel=2e-5)
    # Exact arithmetic, to 1e-9: the table price is the node cost; hours and minutes.
    assert n["cpu_cost"][0] + n["ram_cost"][0] == pytest.approx(0.384 * hours, abs=1e-9)
    assert n["cpu_cost"][1] + n["ram_cost"][1] + n["gpu_cost"][1] == pytest.approx(
        9.8809 * hours, abs=1e-9)
    assert c["minutes"] == pytest.approx([seconds / 60] * 8, abs=1e-9)
    assert n["gpu_hours"] == pytest.approx([0, 8 * hours], abs=1e-9)
    assert c["cpu_core_hours"] == pytest.approx(
        np.array([2, 3, 0.25, 8, 2.5, 2, 4, 1]) * hours, abs=1e-9)
    assert c["ram_byte_hours"] / GiB == pytest.approx(
        np.array([4, 6, 1, 64, 8, 8, 16, 2]) * hours, abs=1e-9)
    assert c["gpu_hours"] == pytest.approx(np.array([0, 0, 0, 1, 0.75, 0.25, 3 / 7, 0]) * hours,
                                           abs=1e-9)
    assert c["gpu_request_hours"] == pytest.approx(
        np.array([0, 0, 0, 1, 0, 0, 3 / 7, 0]) * hours, abs=1e-9)
    assert c["gpu_usage_hours"] == pytest.approx(
        np.array([0, 0, 0, 0.9, 0.6, 0.2, 0.5 * 3 / 7, 0]) * hours, abs=1e-9)
    assert np.isnan(c["cpu_usage_core_hours"][5]) and c["ram_usage_max_bytes"][5] == 5 * GiB
    assert all(np.isnan(c[k][7]) for k in ("cpu_cost", "ram_cost", "gpu_cost"))
    assert c["cpu_usage_core_hours"][7] == pytest.approx(hours)
    assert cost.unknown_node_containers == 1


def test_measures_are_complete_and_in_order():
    cost = compute(scenario(60), BOOK.node_unit_prices(scenario(60).nodes))
    assert list(cost.containers) == list(CONTAINER_MEASURES)
    assert list(cost.nodes) == list(NODE_MEASURES)
    assert all(len(v) == 8 for v in cost.containers.values())
    assert all(len(v) == 2 for v in cost.nodes.values())


def test_shared_gpu_with_no_measured_sm_splits_equally_and_unused_is_idle():
    frame = scenario(3600)
    frame.gpu_use.sm_share[1:3] = [0.0, NAN]
    cost = compute(frame, BOOK.node_unit_prices(frame.nodes))
    assert cost.containers["gpu_hours"][4:6] == pytest.approx([0.5, 0.5])
    assert np.isnan(cost.containers["gpu_usage_hours"][5])


def test_nan_request_counts_as_zero_but_stays_nan_in_the_request_measure():
    frame = scenario(3600)
    frame.containers.cpu_request_cores[2] = NAN
    frame.containers.cpu_usage_cores[2] = NAN
    cost = compute(frame, BOOK.node_unit_prices(frame.nodes))
    assert np.isnan(cost.containers["cpu_request_core_hours"][2])
    assert cost.containers["cpu_core_hours"][2] == 0 and cost.containers["cpu_cost"][2] == 0


def test_overcharged_node_idles_at_zero():
    frame = scenario(3600)
    frame.containers.cpu_usage_cores[1] = 20.0  # 20 cores used on an 8-core node
    cost = compute(frame, BOOK.node_unit_prices(frame.nodes))
    charged = np.nansum(cost.containers["cpu_cost"][:3])
    assert charged > cost.nodes["cpu_cost"][0]
    assert cost.nodes["cpu_idle_cost"][0] == 0.0


def test_mismatched_inputs_are_refused():
    frame = scenario(60)
    prices = BOOK.node_unit_prices(frame.nodes)
    with pytest.raises(CostError, match="prices for 2 nodes"):
        compute(IntervalFrame(T0, T0 + 60, nodes(), _containers([]), _devices([]),
                              _use([])), prices)
    frame.containers.node[0] = 5
    with pytest.raises(CostError, match=r"container\.node"):
        compute(frame, prices)
    with pytest.raises(CostError, match="empty interval"):
        compute(IntervalFrame(T0, T0, frame.nodes, frame.containers, frame.devices,
                              frame.gpu_use), prices)


def test_empty_frame():
    frame = IntervalFrame(T0, T0 + 60, nodes(), _containers([]), _devices([]), _use([]))
    cost = compute(frame, BOOK.node_unit_prices(frame.nodes))
    assert all(len(v) == 0 for v in (*cost.containers.values(), *cost.nodes.values()))


_maybe = st.one_of(st.floats(0, 64), st.just(NAN))
TYPES = ("m5.2xlarge", "p4d.24xlarge", "g5.12xlarge", "unknown.type")


@st.composite
def frames(draw: st.DrawFn) -> IntervalFrame:
    m = draw(st.integers(1, 4))
    node_table = nodes(*[(f"n{i}", "aws", draw(st.sampled_from(("us-east-1", "ap-south-1"))),
                     draw(st.sampled_from(TYPES)),
                     draw(st.sampled_from(("spot", "on_demand"))), draw(st.floats(1, 128)),
                     draw(st.floats(1, 1024)), draw(st.integers(0, 8))) for i in range(m)])
    rows = [(f"p{j}", draw(st.integers(-1, m - 1)), draw(_maybe), draw(_maybe), draw(_maybe),
             draw(_maybe), draw(st.integers(0, 2)), draw(st.sampled_from((0, 1 / 7, 3 / 7))))
            for j in range(draw(st.integers(0, 12)))]
    devices = [(draw(st.integers(0, m - 1)), draw(st.sampled_from((1.0, 2 / 7, 3 / 7))),
                draw(st.booleans())) for _ in range(draw(st.integers(0, 6)))]
    use = []
    for j, row in enumerate(rows):  # a container uses devices of its own node only
        mine = [d for d, dev in enumerate(devices) if dev[0] == row[1]]
        for d in draw(st.lists(st.sampled_from(mine), unique=True)) if mine else ():
            use.append((j, d, draw(st.one_of(st.floats(0, 1), st.just(NAN)))))
    seconds = draw(st.sampled_from((60, 300, 3600)))
    return IntervalFrame(T0, T0 + seconds, node_table, _containers(rows), _devices(devices),
                         _use(use))


@settings(max_examples=300, deadline=None)
@given(frames())
def test_charged_plus_idle_covers_node_cost_and_nothing_is_negative(frame):
    cost = compute(frame, BOOK.node_unit_prices(frame.nodes))
    c, n = cost.containers, cost.nodes
    placed = frame.containers.node >= 0
    for r in ("cpu", "ram", "gpu"):
        charged = np.zeros(len(frame.nodes))
        for i in np.flatnonzero(placed):  # an independent (looping) oracle
            charged[frame.containers.node[i]] += c[f"{r}_cost"][i]
        node_cost, idle = n[f"{r}_cost"], n[f"{r}_idle_cost"]
        tol = 1e-9 * np.maximum(1.0, node_cost)
        assert np.all(charged + idle >= node_cost - tol)
        under = charged <= node_cost
        assert np.allclose((charged + idle)[under], node_cost[under], rtol=1e-9, atol=1e-12)
        assert np.all(idle >= 0) and np.all(node_cost >= 0)
        assert np.all(c[f"{r}_cost"][placed] >= 0)
        assert np.all(np.isnan(c[f"{r}_cost"][~placed]))
    for name, values in c.items():
        assert not np.any(values < 0), name
    # A shared device's cost is fully shared out among its users.
    shared_users = np.isin(np.arange(len(frame.devices)), frame.gpu_use.device) \
        & frame.devices.shared
    assert cost.unknown_node_containers == int(np.count_nonzero(~placed))
    expected_gpu_hours = np.bincount(frame.containers.node[placed], minlength=len(frame.nodes),
                                     weights=(frame.containers.gpu_request
                                              + frame.containers.mig_gpus)[placed]) * frame.hours
    expected_gpu_hours += np.bincount(frame.devices.node[shared_users],
                                      weights=frame.devices.physical_share[shared_users],
                                      minlength=len(frame.nodes)) * frame.hours
    got = np.bincount(frame.containers.node[placed], weights=c["gpu_hours"][placed],
                      minlength=len(frame.nodes))
    assert got == pytest.approx(expected_gpu_hours, abs=1e-9)
