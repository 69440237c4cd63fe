"""Configuration layering: defaults → file → KUBETALLY_* environment → flags."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from exporter.config import SECTION, ExporterConfig
from kubetally import config as layered

README = Path(__file__).parents[1] / "README.md"


def test_defaults():
    cfg = layered.load(ExporterConfig, SECTION, environ={})
    assert (cfg.port, cfg.cgroup_root, cfg.gpu) == (9102, "/sys/fs/cgroup", True)


def test_layers_apply_in_order(tmp_path):
    file = tmp_path / "kubetally.yaml"
    file.write_text("exporter:\n  port: 9200\n  node-name: from-file\n  gpu: false\n"
                    "  pod_label_allowlist: [app, tier]\n")
    cfg = layered.load(ExporterConfig, SECTION, file=file, environ={})
    assert (cfg.port, cfg.node_name, cfg.gpu, cfg.pod_label_allowlist) == (
        9200, "from-file", False, ("app", "tier"))
    env = {"KUBETALLY_EXPORTER_PORT": "9300", "NODE_NAME": "from-downward-api"}
    cfg = layered.load(ExporterConfig, SECTION, file=file, environ=env)
    assert (cfg.port, cfg.node_name) == (9300, "from-downward-api")
    env["KUBETALLY_EXPORTER_NODE_NAME"] = "explicit"
    cfg = layered.load(ExporterConfig, SECTION, file=file, environ=env, overrides={"port": "9400"})
    assert (cfg.port, cfg.node_name) == (9400, "explicit")


@pytest.mark.parametrize("env, message", [
    ({"KUBETALLY_EXPORTER_PORT": "ninety"}, "KUBETALLY_EXPORTER_PORT"),
    ({"KUBETALLY_EXPORTER_GPU": "perhaps"}, "KUBETALLY_EXPORTER_GPU"),
])
def test_bad_values_name_their_source(env, message):
    with pytest.raises(layered.ConfigValueError, match=message):
        layered.load(ExporterConfig, SECTION, environ=env)


def test_unknown_file_option_is_refused(tmp_path):
    file = tmp_path / "k.yaml"
    file.write_text("exporter:\n  prot: 1\n")
    with pytest.raises(layered.ConfigValueError, match=r"unknown option exporter\.prot"):
        layered.load(ExporterConfig, SECTION, file=file, environ={})


def test_flags_left_unset_let_lower_layers_show():
    parser = argparse.ArgumentParser(prog="exporter")
    layered.add_arguments(parser, ExporterConfig, SECTION)
    args = vars(parser.parse_args(["--no-gpu", "--port", "1234"]))
    cfg = layered.load(ExporterConfig, SECTION, environ={"KUBETALLY_EXPORTER_HOST": "127.0.0.1"},
                       overrides=args)
    assert (cfg.port, cfg.gpu, cfg.host) == (1234, False, "127.0.0.1")


@pytest.mark.parametrize("section", ["exporter", "aggregator", "prices", "api", "demo"])
def test_readme_documents_every_option(section):
    from aggregator.config import AggregatorConfig
    from aggregator.prices import UnitPrices
    from api.config import ApiConfig
    from kubetally.demo import DemoConfig

    cls = {"exporter": ExporterConfig, "aggregator": AggregatorConfig, "prices": UnitPrices,
           "api": ApiConfig, "demo": DemoConfig}
    text = README.read_text()
    for flag, env, _default, _help in layered.table_rows(cls[section], section):
        assert f"`{flag}`" in text, flag
        assert env.split(" / ")[0] in text, env
