"""Every installed model trains under torchrun with 2 gloo processes, and rank 0 alone writes."""

import json
import os
import subprocess
import sys

import pytest

from gm import plugins

# model -> (dataset, small config) for a few real steps on CPU
SMALL = {
    "gaussian": ("swiss-roll", []),
    "walkback": ("swiss-roll", ["hidden=32", "walk_steps=4"]),
    "diffusion": ("swiss-roll", ["hidden=32", "diffusion_steps=20"]),
    "professor-forcing": ("markov-chain", ["hidden=32"]),
    "scheduled-sampling": ("markov-chain", ["hidden=32"]),
    "gpsi-add": ("swiss-roll", ["hidden=32"]),
    "lstm-add": ("swiss-roll", ["hidden=16", "refine_steps=3"]),
}


def cases():
    models = plugins.registry("models")
    return [pytest.param(name, *SMALL[name], id=name) for name in SMALL if name in models]


@pytest.mark.parametrize(("model", "dataset", "sets"), cases())
def test_torchrun_two_processes(tmp_path, model, dataset, sets):
    run = tmp_path / "run"
    args = [
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
        dataset,
        "--steps",
        "6",
        "--out",
        str(run),
        "--device",
        "cpu",
        "--set",
        "log_every=2",
        "--set",
        "batch_size=16",
        *(a for s in sets for a in ("--set", s)),
    ]
    out = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]
    assert (run / "model.safetensors").exists()
