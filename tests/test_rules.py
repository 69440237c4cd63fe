"""The recording rules in rules/: promtool accepts them and their unit tests pass."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

RULES = Path(__file__).resolve().parent.parent / "rules"
PROMTOOL = shutil.which("promtool")

def _run(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None, "promtool is missing: make tools (Debian's prometheus package)"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60,
                          cwd=RULES.parent, check=False)


def test_promtool_check_rules():
    done = _run("check", "rules", "rules/kubetally.rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_unit_tests():
    files = sorted(str(p.relative_to(RULES.parent)) for p in (RULES / "tests").glob("*.yml"))
    assert files, "no rule unit tests in rules/tests"
    done = _run("test", "rules", *files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout + done.stderr


def test_every_rule_has_a_unit_test():

    rules = yaml.safe_load((RULES / "kubetally.rules.yml").read_text())
    names = {r["record"] for g in rules["groups"] for r in g["rules"]}
    tested = set()
    for path in (RULES / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested |= {t["expr"].split("{")[0].strip() for t in case["promql_expr_test"]}
    assert names <= tested, f"rules without a unit test: {sorted(names - tested)}"


def test_yaml_lint():
    done = subprocess.run([sys.executable, "-m", "yamllint", "-s", "-c", str(RULES / ".yamllint"),
                           str(RULES)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
