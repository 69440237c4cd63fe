"""Unit prices, the bundled instance table, per-node overrides and their resolution order."""

from __future__ import annotations

import pickle
import statistics

import numpy as np
import pytest
from framefakes import nodes

from aggregator.pricebook import NodeOverride, PriceBook, PriceSource, load_price_book
from aggregator.prices import BUNDLED_TABLE, COLUMNS, PriceError, PriceTable, UnitPrices
from kubetally import config as layered

GiB = 2.0**30
HEADER = ",".join(COLUMNS)
AWS = "https://aws.amazon.com/ec2/pricing/on-demand/"
DEMO = {  # (provider, region, type): (vcpu, GiB, gpus, gpu_model) as the providers publish
    ("aws", "us-east-1", "m5.2xlarge"): (8, 32, 0, ""),
    ("aws", "us-east-1", "m6i.4xlarge"): (16, 64, 0, ""),
    ("aws", "us-east-1", "c5.4xlarge"): (16, 32, 0, ""),
    ("aws", "us-east-1", "r5.2xlarge"): (8, 64, 0, ""),
    ("aws", "us-east-1", "m6i.16xlarge"): (64, 256, 0, ""),
    ("gcp", "us-central1", "n2-standard-8"): (8, 32, 0, ""),
    ("gcp", "us-central1", "n2-standard-64"): (64, 256, 0, ""),
    ("azure", "eastus", "Standard_D8s_v5"): (8, 32, 0, ""),
    ("aws", "us-east-1", "p4d.24xlarge"): (96, 1152, 8, "NVIDIA-A100-SXM4-40GB"),
}


def table(tmp_path, *lines: str, header: str = HEADER) -> PriceTable:
    path = tmp_path / "prices.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    return PriceTable.load(path)


# --- the bundled table -----------------------------------------------------------------

def test_every_bundled_row_parses_and_is_consistent():
    t = PriceTable.load()
    assert t.path == str(BUNDLED_TABLE) and len(t) > 250
    assert np.all(t.vcpu > 0) and np.all(t.memory_gib > 0) and np.all(t.on_demand_hourly > 0)
    assert np.array_equal(t.gpus > 0, t.gpu_model != "")
    assert np.all(t.spot_hourly < t.on_demand_hourly)
    assert set(t.provider) == {"aws", "gcp", "azure"}
    assert {"us-east-1", "us-west-2", "eu-west-1", "us-central1", "europe-west4", "eastus",
            "westeurope"} == set(t.region)
    assert all(d.startswith(("2025-", "2026-")) for d in t.date)
    assert all(s.startswith("https://") for s in t.source)


def test_demo_instance_types_are_in_the_table_with_their_published_specs():
    t = PriceTable.load()
    keys = list(zip(t.provider, t.region, t.instance_type, strict=True))
    for key, (vcpu, gib, gpus, model) in DEMO.items():
        row = keys.index(key)
        assert (t.vcpu[row], t.memory_gib[row], t.gpus[row], t.gpu_model[row]) == (
            vcpu, gib, gpus, model), key


def test_spot_gpu_default_follows_the_tables_gpu_spot_discount():
    t = PriceTable.load()
    gpu = t.gpus > 0
    median = statistics.median(t.spot_hourly[gpu] / t.on_demand_hourly[gpu])
    assert UnitPrices().spot_gpu == pytest.approx(0.95 * median, abs=0.001)


# --- malformed tables --------------------------------------------------------------------

GOOD = f"aws,us-east-1,m5.large,0.096,0.04,2,8,0,,{AWS},2025-07-01"


@pytest.mark.parametrize("bad, message", [
    (f"aws,us-east-1,m5.xlarge,cheap,0.08,4,16,0,,{AWS},2025-07-01", "on_demand_hourly is not"),
    (f"aws,us-east-1,m5.xlarge,0.192,0.08,4,16,0,,{AWS}", "expected 11 fields"),
    (f"aws,us-east-1,m5.xlarge,0.192,0.08,0,16,0,,{AWS},2025-07-01", "vcpu must be > 0"),
    (f"aws,us-east-1,m5.xlarge,-1,0.08,4,16,0,,{AWS},2025-07-01", "on_demand_hourly must be"),
    (f"aws,us-east-1,g5.xlarge,1.0,0.4,4,16,1,,{AWS},2025-07-01", "gpu_model must be set"),
    (f"aws,us-east-1,m5.xlarge,0.192,0.08,4,16,0,A10G,{AWS},2025-07-01", "gpu_model must be"),
    (f"aws,us-east-1,g5.xlarge,1.0,0.4,4,16,1.5,A10G,{AWS},2025-07-01", "whole number"),
    (f"aws,us-east-1,m5.xlarge,0.192,0.08,4,16,0,,{AWS},July 2025", "YYYY-MM-DD"),
    (f",us-east-1,m5.xlarge,0.192,0.08,4,16,0,,{AWS},2025-07-01", "provider is empty"),
    (f"aws,us-east-1,m5.xlarge,0.192,nan,4,16,0,,{AWS},2025-07-01", "spot_hourly must be"),
    (GOOD, r"duplicate row for aws/us-east-1/m5\.large \(first on line 2\)"),
])
def test_malformed_rows_name_file_and_line(tmp_path, bad, message):
    with pytest.raises(PriceError, match=message) as err:
        table(tmp_path, GOOD, "", bad)  # the blank line 3 is skipped, but still counted
    assert err.value.line == 4 and err.value.file.endswith("prices.csv")
    assert str(err.value).startswith(f"{err.value.file}:4: ")


def test_bad_header_and_missing_file(tmp_path):
    with pytest.raises(PriceError, match="header must name") as err:
        table(tmp_path, GOOD, header="provider,region,type")
    assert err.value.line == 1
    with pytest.raises(PriceError, match="cannot read price table"):
        PriceTable.load(tmp_path / "missing.csv")


def test_empty_spot_is_nan_and_column_order_is_free(tmp_path):
    cols = list(reversed(COLUMNS))
    row = dict(zip(COLUMNS, GOOD.split(","), strict=True)) | {"spot_hourly": ""}
    t = table(tmp_path, ",".join(row[c] for c in cols), header=",".join(cols))
    assert np.isnan(t.spot_hourly[0]) and t.on_demand_hourly[0] == 0.096


# --- resolution order ----------------------------------------------------------------------

def book(tmp_path, overrides=None, **units) -> PriceBook:
    t = table(tmp_path,
              f"aws,us-east-1,m5.xlarge,0.192,0.08,4,16,0,,{AWS},2025-07-01",
              f"aws,eu-west-1,m5.xlarge,0.214,,4,16,0,,{AWS},2025-07-01",
              f"aws,us-east-1,g5.xlarge,1.006,0.40,4,16,1,NVIDIA-A10G,{AWS},2025-07-01")
    return PriceBook(UnitPrices(**units), t, overrides or {})


def test_table_row_is_split_by_the_default_ratio(tmp_path):
    """m5.xlarge on-demand $0.192: weights 4×0.031611 + 16×0.004237 = 0.126444 + 0.067792
    = 0.194236, k = 0.192/0.194236 = 0.98848823; cpu = k×0.031611 = 0.03124710 $/core-h,
    ram = k×0.004237 = 0.00418822 $/GiB-h. Spot $0.08: k = 0.41187010, cpu 0.01301963,
    ram 0.00174509. g5.xlarge spot $0.40 with one GPU: weights 0.194236 + 0.95 = 1.144236,
    k = 0.34957823, cpu = 0.01105052, ram = 0.00148116, gpu = k×0.95 = 0.33209932 $/GPU-h."""
    p = book(tmp_path).node_unit_prices(nodes(
        ("a", "aws", "us-east-1", "m5.xlarge", "on_demand", 4, 15.3, 0),
        ("b", "aws", "us-east-1", "m5.xlarge", "spot", 4, 15.3, 0),
        ("c", "aws", "us-east-1", "g5.xlarge", "spot", 4, 15.3, 1)))
    assert p.cpu_per_core_hour == pytest.approx([0.03124710, 0.01301963, 0.01105052], rel=1e-6)
    assert p.ram_per_byte_hour * GiB == pytest.approx([0.00418822, 0.00174509, 0.00148116],
                                                      rel=1e-5)
    assert p.gpu_per_gpu_hour[2] == pytest.approx(0.33209932, rel=1e-7)
    # The published specs, not the capacity, set the split: the units sum back to the list price.
    assert 4 * p.cpu_per_core_hour[0] + 16 * p.ram_per_byte_hour[0] * GiB == pytest.approx(
        0.192, abs=1e-12)
    assert list(p.source) == [PriceSource.TABLE] * 3


def test_defaults_for_unknown_nodes_spot_defaults_for_spot(tmp_path):
    p = book(tmp_path).node_unit_prices(nodes(
        ("a", "", "", "", "on_demand", 4, 16, 0), ("b", "kind", "", "x", "spot", 4, 16, 1)))
    assert list(p.cpu_per_core_hour) == [0.031611, 0.006655]
    assert list(p.ram_per_byte_hour * GiB) == pytest.approx([0.004237, 0.000892], rel=1e-12)
    assert list(p.gpu_per_gpu_hour) == [0.95, 0.304]
    assert p.counts() == {"default": 2, "table": 0, "table_other_region": 0, "override": 0}


def test_region_fallback_takes_the_first_listed_region_and_can_be_turned_off(tmp_path):
    ap = ("a", "aws", "ap-south-1", "m5.xlarge", "on_demand", 4, 16, 0)
    eu_spot = ("b", "aws", "eu-west-1", "m5.xlarge", "spot", 4, 16, 0)  # row has no spot price
    p = book(tmp_path).node_unit_prices(nodes(ap, eu_spot))
    assert p.cpu_per_core_hour[0] == pytest.approx(0.03124710, rel=1e-6)  # us-east-1's row
    assert list(p.source) == [PriceSource.TABLE_OTHER_REGION, PriceSource.DEFAULT]
    assert p.cpu_per_core_hour[1] == 0.006655
    p = book(tmp_path, region_fallback=False).node_unit_prices(nodes(ap))
    assert list(p.source) == [PriceSource.DEFAULT]


def test_override_beats_table_and_a_total_is_split_by_capacity(tmp_path):
    """node a: hourly $1.00 on 4 cores, 16 GiB: weights 0.194236, cpu = 0.031611/0.194236 =
    0.16274532, ram = 0.004237/0.194236 = 0.02181367; 4×cpu + 16×ram = 1.00 exactly.
    node b: only its GPU re-priced, CPU and RAM stay the table's spot split."""
    overrides = {"a": NodeOverride(hourly=1.0), "b": NodeOverride(gpu=2.5)}
    p = book(tmp_path, overrides).node_unit_prices(nodes(
        ("a", "aws", "us-east-1", "m5.xlarge", "on_demand", 4, 16, 0),
        ("b", "aws", "us-east-1", "g5.xlarge", "spot", 4, 16, 1),
        ("c", "aws", "us-east-1", "m5.xlarge", "on_demand", 4, 16, 0)))
    assert p.cpu_per_core_hour[0] == pytest.approx(0.16274532, rel=1e-7)
    assert p.ram_per_byte_hour[0] * GiB == pytest.approx(0.02181367, rel=1e-6)
    assert 4 * p.cpu_per_core_hour[0] + 16 * GiB * p.ram_per_byte_hour[0] == pytest.approx(1.0)
    assert p.gpu_per_gpu_hour[1] == 2.5
    assert p.cpu_per_core_hour[1] == pytest.approx(0.01105052, rel=1e-6)
    assert list(p.source) == [PriceSource.OVERRIDE, PriceSource.OVERRIDE, PriceSource.TABLE]


@pytest.mark.parametrize("kwargs, message", [
    ({}, "either hourly or"), ({"hourly": 1.0, "cpu": 0.1}, "cannot be combined"),
    ({"cpu": -0.1}, "cpu must be a finite"), ({"hourly": float("inf")}, "hourly must be")])
def test_bad_overrides(kwargs, message):
    with pytest.raises(PriceError, match=message):
        NodeOverride(**kwargs)


def test_bad_unit_price_and_pickling():
    with pytest.raises(PriceError, match=r"prices\.ram must be"):
        UnitPrices(ram=-1.0)
    err = pickle.loads(pickle.dumps(PriceError("boom", file="f.yaml", line=3)))
    assert (str(err), err.line, err.file) == ("f.yaml:3: boom", 3, "f.yaml")


# --- the YAML config ---------------------------------------------------------------------

def test_config_file_env_and_flags_layer(tmp_path):
    file = tmp_path / "kubetally.yaml"
    file.write_text("exporter:\n  port: 1\nprices:\n  cpu: 0.05\n  spot-gpu: 0.5\n"
                    "price_overrides:\n  node-a: {hourly: 1.23}\n"
                    "  node-b:\n    gpu: 2\n    ram: 0.01\n")
    pb = load_price_book(file, environ={"KUBETALLY_PRICES_RAM": "0.006"},
                         overrides={"gpu": "1.5", "cpu": None})
    assert (pb.units.cpu, pb.units.ram, pb.units.gpu, pb.units.spot_gpu) == (0.05, 0.006, 1.5,
                                                                              0.5)
    assert pb.overrides == {"node-a": NodeOverride(hourly=1.23),
                            "node-b": NodeOverride(gpu=2.0, ram=0.01)}
    assert len(pb.table) == len(PriceTable.load())
    assert load_price_book().units == UnitPrices()


@pytest.mark.parametrize("text, line, message", [
    ("prices:\n  cpu: [1\n", 3, "not valid YAML"),
    ("prices:\n  cpu: 0.04\n  cpuu: 1\n", 3, "unknown option cpuu"),
    ("prices:\n  cpu: 0.04\n  ram: lots\n", 3, "--price-ram"),
    ("prices:\n  gpu: -2\n", 2, "prices.gpu must be"),
    ("prices: 3\n", 1, "prices must be a mapping"),
    ("prices:\n  ram: 0.005\n  cpu:\n", 3, r"prices\.cpu has no value"),
    ("price_overrides:\n  node-a: {hourly: 1}\n  node-b: {total: 2}\n", 3,
     "price_overrides.node-b: unknown key 'total'"),
    ("price_overrides:\n  node-a:\n    cpu: cheap\n", 2, "cpu must be a number"),
    ("price_overrides:\n  node-a: {hourly: 1, gpu: 2}\n", 2, "cannot be combined"),
    ("price_overrides:\n  node-a: 3\n", 2, "expected a mapping"),
])
def test_malformed_config_names_file_and_line(tmp_path, text, line, message):
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    with pytest.raises(PriceError, match=message) as err:
        load_price_book(file)
    assert err.value.line == line and err.value.file == str(file)


def test_configured_table_replaces_the_bundled_one(tmp_path):
    csv = tmp_path / "mine.csv"
    csv.write_text(f"{HEADER}\n{GOOD}\n")
    file = tmp_path / "k.yaml"
    file.write_text(f"prices:\n  table: {csv}\n  region_fallback: false\n")
    pb = load_price_book(file)
    assert len(pb.table) == 1 and pb.units.region_fallback is False
    with pytest.raises(PriceError, match="KUBETALLY_PRICES_CPU"):
        load_price_book(environ={"KUBETALLY_PRICES_CPU": "free"})


def test_every_option_has_a_flag_and_variable():
    rows = layered.table_rows(UnitPrices, "prices")
    assert rows[0][:2] == ("--price-cpu", "KUBETALLY_PRICES_CPU")
    assert all(flag.startswith("--price-") for flag, *_ in rows)
