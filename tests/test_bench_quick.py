"""Every benchmark of `make bench` runs in its quick mode, so none can rot unnoticed.

Each runs as a user would run it (a subprocess of this interpreter), small sizes,
writing its section into a scratch copy of docs/benchmarks.md. What is checked is that
it ran end to end against its anchor and reported in the documented shape; no figure
is asserted, since timings on a shared CI machine say nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: script → the sections it writes and a phrase each section must contain.
BENCHES = {
    "exporter_bench.py": {"exporter": "node_exporter"},
    "parse_bench.py": {"parse": "prometheus_client"},
    "api_bench.py": {"api": "warm"},
    "scale_bench.py": {"scale": "peak"},
    "tsdb_bench.py": {"tsdb": "Prometheus", "query": "query_range"},
}


@pytest.mark.integration
@pytest.mark.parametrize("script", sorted(BENCHES))
def test_quick_benchmark_reports_against_its_anchor(script: str, tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n")
    run = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick",
                          "--write", str(doc)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    text = doc.read_text()
    for section, phrase in BENCHES[script].items():
        start, end = f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"
        assert start in text and end in text, f"{script} wrote no {section} section"
        body = text[text.index(start):text.index(end)]
        assert phrase in body, f"{section} section does not mention {phrase!r}"
        assert "| " in body and "Command: `" in body, "each section has a table and command"
    if script == "scale_bench.py":  # and the plot of its curves, linked from the doc
        assert (tmp_path / "img" / "scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "](img/scale.png)" in text


def test_make_bench_runs_every_benchmark() -> None:
    """`make bench` and this test list the same scripts: a new bench is not forgotten."""
    makefile = (ROOT / "Makefile").read_text()
    bench = makefile.split("\nbench:", 1)[1].split("\n\n", 1)[0]
    listed = {line.split("bench/")[1].split()[0] for line in bench.splitlines()
              if "bench/" in line}
    assert listed == set(BENCHES)
