"""bench/gpu.py, the first GPU machine's one command, cannot rot: its --dry-run runs the
same code on CPU at tiny sizes (every package's ``pytest -m cuda``, skipped here, and each
figure's function) and writes nothing."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # five pytest processes and four tiny benchmarks: about a minute
def test_the_gpu_script_dry_runs_on_cpu_and_writes_nothing():
    doc = ROOT / "docs" / "benchmarks.md"
    before = doc.read_text()
    results = sorted((ROOT / "bench" / "results").glob("*"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), "--dry-run"],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for package in ("core", "imputation", "professor-forcing", "walkback"):
        row = next(ln for ln in out.splitlines() if ln.startswith(f"| {package} |"))
        assert "skipped" in row and "| 0 |" in row, row  # CUDA tests exist, skipped on CPU
    for table in ("MFU", "speed-up", "PF / TF", "rows/s"):
        assert table in out
    assert "nothing written" in out
    assert doc.read_text() == before
    assert sorted((ROOT / "bench" / "results").glob("*")) == results


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU machine runs the real thing")
def test_without_a_gpu_the_real_run_says_so_in_one_line():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py")], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "bench/gpu.py: no CUDA device is visible; run it on a GPU machine, or pass "
        "--dry-run to check the script on CPU."
    ]
