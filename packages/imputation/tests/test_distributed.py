"""Under torchrun (2 CPU processes, gloo) the buffers that are not gradients — column
ranges, gallery, template memory — stay identical on every rank."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from gm import checkpoint


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not found")
@pytest.mark.parametrize(
    "model,extra",
    [
        ("gpsi-add", ["--set", "hidden=8", "--set", "z_dim=2"]),
        ("template-matching", ["--set", "max_templates=64"]),
    ],
)
@pytest.mark.slow  # 28 s (durations run, 1 thread, load 4-7)
def test_two_ranks_agree_on_buffers(tmp_path, model, extra):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "gm",
        "train",
        model,
        "--dataset",
        "swiss-roll",
        "--data-option",
        "n=256",
        "--steps",
        "4",
        "--out",
        str(run),
        "--device",
        "cpu",
        "--set",
        "batch_size=32",
        *extra,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    weights = load_file(str(run / checkpoint.WEIGHTS))
    lo, hi = weights["scaler.lo"], weights["scaler.hi"]
    assert torch.isfinite(lo).all() and (hi > lo).all()
    # 4 steps x 32 rows of swiss roll: the ranges cover both ranks' rows, so they are wide
    assert (hi - lo > 2).all()
    gallery = weights["gallery.rows"]
    assert bool(weights["gallery.filled"]) and (gallery.abs().sum(1) > 0).all()
    if model == "template-matching":
        rows, filled = weights["memory.rows"], weights["memory.filled"]
        assert int(filled.sum()) == 64  # 4 steps x 32 rows (both ranks) filled 64 slots...
        # ...with real rows (stored in data units): each is a training point, not an
        # average of two ranks' different points
        from gm.data import load_dataset

        points = load_dataset("swiss-roll", options={"n": 256}).tensor("train")
        nearest = torch.cdist(rows[filled], points, compute_mode="donot_use_mm_for_euclid_dist")
        nearest = nearest.min(1).values
        assert (nearest < 1e-5).all(), nearest.max()
    assert json.loads((run / checkpoint.CONFIG).read_text())["gm_model"] == model
