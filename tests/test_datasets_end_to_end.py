"""Cross-package end to end: gm-datasets' data through another plugin's model.

Skips unless gm-datasets and gm-walkback are both installed (CI runs each package's suite
alone; this file is for the full workspace).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("gm_datasets")
pytest.importorskip("gm_walkback")
pytest.importorskip("sklearn")


def gm(*args, tmp_path):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "GM_CACHE_DIR": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
    }
    return subprocess.run(
        [sys.executable, "-m", "gm", *args], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["digits", "images"])
def test_train_walkback_then_sample(tmp_path, dataset):
    if dataset == "images":
        from PIL import Image

        rng = np.random.default_rng(0)
        (tmp_path / "imgs").mkdir()
        for i in range(32):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(
                tmp_path / "imgs" / f"{i}.png"
            )
        dataset = f"images:{tmp_path / 'imgs'}"
    run = tmp_path / "run"
    r = gm(
        "train",
        "walkback",
        "--dataset",
        dataset,
        "--steps",
        "3",
        "--set",
        "batch_size=16",
        "--device",
        "cpu",
        "--out",
        str(run),
        tmp_path=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    r = gm(
        "sample",
        str(run),
        "-n",
        "4",
        "--out",
        str(tmp_path / "s.npy"),
        "--device",
        "cpu",
        tmp_path=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape[0] == 4 and np.isfinite(samples).all()
