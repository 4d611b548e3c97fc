"""Exact resume: 2 + 2 steps equal 4 steps, with the Tmax refresh and n draws in play."""

import torch
from safetensors.torch import load_file

from gm import train

OVERRIDES = {
    "hidden": 16,
    "batch_size": 32,
    "schedule": "doubling",
    "tmax_every": 1,
    "n_max": 3,
    "log_every": 1,
}


def test_resume_is_exact(tmp_path):
    whole = train(
        "walkback",
        "swiss-roll",
        steps=4,
        out=tmp_path / "whole",
        **OVERRIDES,
        device="cpu",
        data_options={"n": 256},
        progress=False,
    ).path
    part = train(
        "walkback",
        "swiss-roll",
        steps=2,
        out=tmp_path / "part",
        **OVERRIDES,
        device="cpu",
        data_options={"n": 256},
        progress=False,
    ).path
    train("walkback", None, steps=4, resume=part, device="cpu", progress=False)
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(part / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
