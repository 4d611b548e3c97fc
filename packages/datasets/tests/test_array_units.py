"""Scaling undone on the way out: `gm sample` (.npy) writes the data's own units and `gm
evaluate` reports log-densities of the data as given, through core's recorded affine.

The gaussian model makes the check exact: its density is known in closed form, so the
data-units log-likelihood must equal N(x; b + s*mu, diag(s) Sigma diag(s)) on the raw file.
"""

import json

import numpy as np
import pytest
import torch

from gm.cli import main
from gm.data import load_dataset
from gm.engine import seed_everything
from gm.run import Run


def _cli(capsys, *args):
    main(list(args))
    return capsys.readouterr().out


def _far_file(path, scale=(1.0, 1.0), shift=(0.0, 0.0)):
    rng = np.random.default_rng(0)
    x = rng.normal([-40.0, 300.0], [3.0, 50.0], (200, 2))
    x[:, 1] += 5 * x[:, 0]  # correlated columns, spans far apart
    np.save(path, x * np.array(scale) + np.array(shift))
    return path


@pytest.fixture
def gaussian_run(tmp_path, capsys):
    f = _far_file(tmp_path / "a.npy")
    run = tmp_path / "run"
    _cli(
        capsys,
        "train",
        "gaussian",
        "-d",
        f"array:{f}",
        "--steps",
        "60",
        "--out",
        str(run),
        "--device",
        "cpu",
    )
    return f, run


def test_evaluate_gives_the_density_of_the_file_as_given(tmp_path, capsys, gaussian_run):
    f, run = gaussian_run
    metrics = json.loads(_cli(capsys, "evaluate", str(run), "--json", "--device", "cpu"))
    data = load_dataset(f"array:{f}")
    s = torch.tensor(data.info.meta["affine"]["scale"], dtype=torch.float64)
    b = torch.tensor(data.info.meta["affine"]["shift"], dtype=torch.float64)
    dist = Run.open(run).trainer.density.distribution()
    mu, cov = dist.mean.double(), dist.covariance_matrix.double()
    given = torch.distributions.MultivariateNormal(b + s * mu, torch.diag(s) @ cov @ torch.diag(s))
    raw = torch.from_numpy(np.load(f))[np.sort(np.random.RandomState(0).permutation(200)[:40])]
    expect = given.log_prob(raw).mean().item()
    assert metrics["log_likelihood"] == pytest.approx(expect, abs=1e-3)
    assert metrics["nll"] == pytest.approx(-expect, abs=1e-3)
    assert metrics["data_log_jacobian"] == pytest.approx(-s.log().sum().item(), rel=1e-9)
    text = _cli(capsys, "evaluate", str(run), "--device", "cpu")
    assert "data_log_jacobian added" in text


def test_rescaling_the_file_moves_the_log_likelihood_by_log_det(tmp_path, capsys, gaussian_run):
    f, run = gaussian_run
    ll = {}
    for name, c in (("a", 1.0), ("x4", 4.0), ("x0.5", 0.5)):
        g = _far_file(tmp_path / f"{name}.npy", scale=(c, c)) if c != 1 else f
        out = _cli(capsys, "evaluate", str(run), "-d", f"array:{g}", "--json", "--device", "cpu")
        ll[c] = json.loads(out)["log_likelihood"]
    assert ll[4.0] - ll[1.0] == pytest.approx(-2 * np.log(4.0), abs=1e-5)  # D = 2 columns
    assert ll[0.5] - ll[1.0] == pytest.approx(-2 * np.log(0.5), abs=1e-5)


def test_sample_npy_is_in_the_files_units(tmp_path, capsys, gaussian_run):
    f, run = gaussian_run
    out = tmp_path / "s.npy"
    _cli(capsys, "sample", str(run), "-n", "400", "-o", str(out), "--device", "cpu")
    got = np.load(out)
    trainer = Run.open(run).trainer
    seed_everything(0)  # gm sample's default seed
    with torch.no_grad():
        model_space = trainer.sample(400, trainer.SampleOptions()).double()
    a = trainer.info.meta["affine"]
    expect = model_space * torch.tensor(a["scale"]) + torch.tensor(a["shift"])
    assert np.allclose(got, expect.numpy(), rtol=1e-5, atol=1e-4)
    assert got[:, 1].mean() > 50 and got[:, 0].mean() < -20  # the file's units, not [0, 1]
    assert model_space.abs().max() < 20  # and the model's values really were scaled


def test_unscaled_vectors_and_images_record_no_affine(tmp_path):
    f = _far_file(tmp_path / "a.npy")
    assert "affine" not in load_dataset(f"array:{f}", options={"scale": "false"}).info.meta
    np.save(tmp_path / "u.npy", np.random.default_rng(0).random((8, 16)))
    assert (
        "affine"
        not in load_dataset(f"array:{tmp_path / 'u.npy'}", options={"shape": "square"}).info.meta
    )
