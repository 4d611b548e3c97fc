"""The command line end to end, in process: train, sample, evaluate, inpaint."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from gm.cli import main

TINY = [
    "--set",
    "hidden=32",
    "--set",
    "batch_size=64",
    "--set",
    "tmax=16",
    "--set",
    "n_max=1",
    "--set",
    "schedule=doubling",
]
EVAL = [
    "--trajectories",
    "4",
    "--examples",
    "40",
    "--chains",
    "16",
    "--burn-in",
    "4",
    "--chain-steps",
    "10",
    "--samples",
    "100",
]


def gm(*args, code=0):
    try:
        main([str(a) for a in args])
    except SystemExit as exit:
        assert exit.code == code, f"gm {' '.join(map(str, args))} exited {exit.code}"
        return
    assert code == 0


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "toy"
    gm(
        "train",
        "walkback",
        "--dataset",
        "swiss-roll",
        "--data-option",
        "n=512",
        "--steps",
        20,
        "--out",
        out,
        "--device",
        "cpu",
        *TINY,
    )
    return out


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "images"
    gm(
        "train",
        "walkback",
        "--dataset",
        "wb-tiny-images",
        "--steps",
        10,
        "--out",
        out,
        "--device",
        "cpu",
        *TINY,
    )
    return out


def test_plugin_modules_do_not_import_torch():
    code = (
        "import sys, gm_walkback.plugin, gm_walkback.commands; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_models_are_listed(capsys):
    gm("list-models", "--json")
    names = {m["name"] for m in json.loads(capsys.readouterr().out)}
    assert {"walkback", "diffusion"} <= names


def test_sample_pictures_arrays_and_chains(toy_run, tmp_path):
    gm("sample", toy_run, "-n", 16, "--out", tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0
    gm("sample", toy_run, "-n", 16, "--out", tmp_path / "s.npy", "--extra-steps", 7)
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (16, 2) and np.isfinite(s).all()
    # the fast chain (default) and the plain eager loop: the same samples for the same seed
    gm(
        "sample",
        toy_run,
        "-n",
        16,
        "--out",
        tmp_path / "e.npy",
        "--extra-steps",
        7,
        "--fast",
        "off",
    )
    assert np.array_equal(np.load(tmp_path / "e.npy"), s)
    gm(
        "sample",
        toy_run,
        "-n",
        16,
        "--out",
        tmp_path / "c.npy",
        "--chain-every",
        2,
        "--extra-steps",
        3,
    )
    frames = np.load(tmp_path / "c.npy")
    assert frames.shape[1:] == (16, 2) and frames.shape[0] >= 3
    gm("sample", toy_run, "-n", 16, "--out", tmp_path / "c.png", "--chain-every", 2)
    assert (tmp_path / "c.png").exists()
    gm("sample", toy_run, "--out", tmp_path / "x.png", "--no-such-option", 3, code=2)


def test_evaluate_reports_the_paper_quantities(toy_run, capsys):
    capsys.readouterr()
    gm("evaluate", toy_run, "--json", *EVAL)
    metrics = json.loads(capsys.readouterr().out)
    for key in ("lower_bound", "log_likelihood", "entropy_production", "energy_distance"):
        assert math.isfinite(metrics[key]), key
    assert metrics["log_likelihood"] >= metrics["lower_bound"] - 1e-4
    # a 2-D toy's differential step entropy is negative: no ratio, rather than a wrong one
    assert metrics["step_entropy"] > 0 or math.isnan(metrics["reversibility"])


def test_images_sample_evaluate_and_inpaint(image_run, tmp_path, capsys):
    gm("sample", image_run, "-n", 8, "--out", tmp_path / "s.png", "--chain-every", 1)
    capsys.readouterr()
    gm("evaluate", image_run, "--json", *EVAL)
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["bits_per_dim"] > 0 and math.isfinite(metrics["reversibility"])
    for mask in ("bottom-half", "mar:3", "mcar:0.5"):
        gm("inpaint", image_run, "--mask", mask, "-n", 4, "--out", tmp_path / f"{mask[:3]}.png")
        assert (tmp_path / f"{mask[:3]}.png").exists()
        assert "RMSE" in capsys.readouterr().out
    gm("inpaint", image_run, "--mask", "mar:x", "--out", tmp_path / "bad.png", code=2)
    assert "mar:x" in capsys.readouterr().err  # the one mask grammar (gm.masks) names it
    gm("inpaint", image_run, "--mask", "mcar:1.5", "--out", tmp_path / "bad.png", code=2)


def test_diffusion_trains_samples_and_evaluates(tmp_path, capsys):
    run = tmp_path / "net"
    gm(
        "train",
        "diffusion",
        "--dataset",
        "mog-grid",
        "--data-option",
        "n=512",
        "--steps",
        10,
        "--out",
        run,
        "--device",
        "cpu",
        "--set",
        "hidden=32",
        "--set",
        "diffusion_steps=25",
    )
    gm("sample", run, "-n", 8, "--out", tmp_path / "d.npy")
    assert np.load(tmp_path / "d.npy").shape == (8, 2)
    capsys.readouterr()
    gm("evaluate", run, "--json", "--trajectories", "3", "--examples", "20", "--samples", "50")
    metrics = json.loads(capsys.readouterr().out)
    assert math.isfinite(metrics["lower_bound"]) and math.isfinite(metrics["log_likelihood"])
    gm("sample", run, "--out", tmp_path / "d.png", "--extra-steps", 5, code=2)
    gm("inpaint", run, "--out", tmp_path / "i.png", code=2)


def test_evaluate_defaults_name_the_estimator_and_sample_size(image_run, capsys, monkeypatch):
    """With its defaults (sized for a CPU minute) `gm evaluate` says beside every likelihood
    how it was measured, and how to ask for the paper's protocol."""
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line
    capsys.readouterr()
    gm("evaluate", image_run, "--chains", 8, "--chain-steps", 5, "--burn-in", 2)
    out = capsys.readouterr().out
    rows = {line.split()[1]: line for line in out.splitlines() if "_per_dim" in line}
    assert "importance sampling (Eq. 10), M = 20 trajectories, 64 images" in rows["bits_per_dim"]
    assert "variational bound (ELBO), mean over M = 20" in rows["bound_bits_per_dim"]
    assert "--trajectories 100 --examples 0" in out
