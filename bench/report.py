"""Shared by the benchmarks: machine description and rewriting one section of docs/benchmarks.md."""

from __future__ import annotations

import datetime
import os
import platform
import re
import sys
from pathlib import Path

__all__ = ["machine", "write_section"]


def machine() -> str:
    """One line naming the machine and the software measured on it."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu or platform.processor()} ({os.cpu_count()} CPUs), {platform.system()} "
            f"{platform.release()}, Python {sys.version.split()[0]}")


def write_section(doc: Path, name: str, body: str) -> None:
    """Replace (or append) the block between ``<!-- bench:NAME -->`` and its closing marker."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = f"{start}\n_Measured {stamp} on {machine()}._\n\n{body.strip()}\n{end}"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else (
        text.rstrip() + "\n\n" + block + "\n")
    doc.write_text(text)
