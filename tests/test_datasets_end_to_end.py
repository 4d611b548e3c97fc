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


# --- the data's own units, through walkback ------------------------------------------------
# In-process CLI (gm.cli.main) so each test pays one interpreter start, not five.

SMALL_EVAL = [
    "--trajectories",
    "4",
    "--examples",
    "16",
    "--chains",
    "8",
    "--burn-in",
    "2",
    "--chain-steps",
    "4",
    "--samples",
    "64",
    "--device",
    "cpu",
    "--json",
]


def _cli(capsys, *args):
    from gm.cli import main

    main([str(a) for a in args])
    return capsys.readouterr().out


@pytest.fixture
def _env(tmp_path, monkeypatch):
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv("GM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _points(path, c=1.0):
    rng = np.random.default_rng(0)
    x = rng.normal([-2.25, 120.0], [1.0, 30.0], (256, 2))  # far from [0, 1], unequal spans
    np.save(path, x * c)
    return path


def test_walkback_on_a_far_array_samples_and_evaluates_in_its_units(tmp_path, capsys, _env):
    import json

    import torch

    from gm.engine import seed_everything
    from gm.run import Run

    f = _points(tmp_path / "a.npy")
    run = tmp_path / "run"
    _cli(
        capsys,
        "train",
        "walkback",
        "-d",
        f"array:{f}",
        "--steps",
        "20",
        "--set",
        "batch_size=32",
        "--set",
        "hidden=32",
        "--device",
        "cpu",
        "--out",
        run,
    )
    _cli(capsys, "sample", run, "-n", "300", "-o", tmp_path / "s.npy", "--device", "cpu")
    got = np.load(tmp_path / "s.npy")
    trainer = Run.open(run).trainer
    seed_everything(0)
    with torch.no_grad():
        model = trainer.sample(300, trainer.SampleOptions())
    a = trainer.info.meta["affine"]
    assert np.allclose(
        got,
        (model.double() * torch.tensor(a["scale"]) + torch.tensor(a["shift"])).numpy(),
        atol=1e-3,
    )
    assert np.median(got[:, 1]) > 30  # the file's units (the bug: all in [0.02, 0.98])
    ll = {}
    for c in (1.0, 4.0):
        g = f if c == 1 else _points(tmp_path / "x4.npy", c)
        ll[c] = json.loads(_cli(capsys, "evaluate", run, "-d", f"array:{g}", *SMALL_EVAL))
    assert ll[4.0]["log_likelihood"] - ll[1.0]["log_likelihood"] == pytest.approx(
        -2 * np.log(4), abs=1e-4
    )
    assert ll[4.0]["lower_bound"] - ll[1.0]["lower_bound"] == pytest.approx(
        -2 * np.log(4), abs=1e-4
    )


def test_walkback_conv_on_an_array_of_28x28_images(tmp_path, capsys, _env):
    import json
    import math

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:28, :28]
    blobs = [
        np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0) for cy, cx in rng.integers(6, 22, (96, 2))
    ]
    images = np.round(np.stack(blobs) * 255).astype(np.uint8).reshape(96, 784)  # 0-255, rows
    np.save(tmp_path / "digits.npy", images)
    run = tmp_path / "run"
    data = f"array:{tmp_path / 'digits.npy'}"
    _cli(
        capsys,
        "train",
        "walkback",
        "-d",
        data,
        "--data-option",
        "shape=1x28x28",
        "--steps",
        "3",
        "--set",
        "network=conv",
        "--set",
        "conv_channels=8,16",
        "--set",
        "fc_layers=1",
        "--set",
        "fc_width=32",
        "--set",
        "batch_size=16",
        "--device",
        "cpu",
        "--out",
        run,
    )
    record = json.loads((run / "config.json").read_text())
    assert record["data"]["modality"] == "image" and record["data"]["shape"] == [1, 28, 28]
    assert record["data"]["meta"]["affine"] == {"scale": 255.0, "shift": 0.0}
    m = json.loads(_cli(capsys, "evaluate", run, *SMALL_EVAL))
    dims = 784
    assert m["data_log_jacobian"] == pytest.approx(-dims * math.log(255))
    model_ll = m["log_likelihood"] - m["data_log_jacobian"]  # bits/dim stays a 256-level measure
    assert m["bits_per_dim"] == pytest.approx(
        -(model_ll - dims * math.log(256)) / (dims * math.log(2)), rel=1e-6
    )
    _cli(capsys, "sample", run, "-n", "4", "-o", tmp_path / "s.npy", "--device", "cpu")
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (4, 1, 28, 28) and s.max() > 1.5  # 0-255 units
