"""Shared by the bench scripts: machine facts and one section of docs/benchmarks.md each.

Each script owns the section between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``
and rewrites only that, so scripts can run alone or all together (``bench/run``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\nEvery table is written by a script in `bench/` comparing two things in "
    "one run (a ratio); absolute times count only from a GPU run. Regenerate all with "
    "`bench/run`.\n"
)


def machine() -> str:
    import torch

    dev = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"CPU ({os.cpu_count()} cores)"
    )
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = "?"
    return (
        f"{dev}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"Python {platform.python_version()}, commit {commit}"
    )


def timeit(
    fn: Callable[[], object],
    *,
    repeat: int = 5,
    warmup: int = 1,
    sync: Callable[[], None] = lambda: None,
) -> float:
    """Median seconds per call of ``fn``."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cell(value) -> str:
    """A table cell: floats to 4 significant digits; missing or NaN values blank."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def table(rows: list[dict], columns: list[str]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join(cell(r.get(c)) for c in columns) + " |")
    return "\n".join(out)


def write_section(name: str, title: str, command: str, body: str, data: dict | None = None) -> None:
    """Replace this benchmark's section of docs/benchmarks.md (and save JSON beside it)."""
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n`{command}` — {machine()}\n\n{body.strip()}\n"
        f"<!-- /bench:{name} -->\n"
    )
    text = DOC.read_text() if DOC.exists() else HEADER
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->\n"
    if start in text:
        a, b = text.index(start), text.index(end) + len(end)
        text = text[:a] + section + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    if data is not None:
        (ROOT / "bench" / "results").mkdir(exist_ok=True)
        (ROOT / "bench" / "results" / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
