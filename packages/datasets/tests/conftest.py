import os
import subprocess
import sys

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own dataset cache, Hub cache and no data dir: never the user's home."""
    monkeypatch.setenv("GM_CACHE_DIR", str(tmp_path / "gm-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("GM_DATA_DIR", raising=False)


def gm(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """The real `gm` command line in a fresh interpreter, with this test's environment."""
    full = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "gm", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
    )
