"""The Python API on one page (docs/python-api.md): gm.train, gm.load, sample, evaluate."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gm
from gm.errors import GMError

DOC = Path(__file__).resolve().parents[3] / "docs" / "python-api.md"


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """A Gaussian trained on a tensor centred at (5, -3): samples must come out there."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 2, generator=g) * torch.tensor([0.5, 2.0]) + torch.tensor([5.0, -3.0])
    out = tmp_path_factory.mktemp("api") / "run"
    return gm.train("gaussian", data=x, steps=300, out=out, device="cpu", progress=False, lr=0.1), x


def test_train_on_a_tensor_returns_the_run(shifted):
    run, _ = shifted
    assert isinstance(run, gm.Run) and (run.path / "model.safetensors").exists()
    assert run.record["config"]["lr"] == 0.1  # **config reached the config
    assert run.metrics[0]["step"] == 1 and run.metrics[-1]["step"] == 300


def test_load_and_sample_come_from_the_trained_data(shifted):
    run, x = shifted
    model = gm.load(run)
    assert model.name == "gaussian"
    s = model.sample(4000, seed=1)
    assert s.shape == (4000, 2)
    torch.testing.assert_close(s.mean(0), x.mean(0), atol=0.1, rtol=0)  # not near 0: it fit x
    torch.testing.assert_close(s.std(0), x.std(0), atol=0.1, rtol=0)
    assert torch.equal(model.sample(5, seed=3), model.sample(5, seed=3))
    assert not torch.equal(model.sample(5, seed=3), model.sample(5, seed=4))


def test_evaluate_on_a_tensor_and_on_a_name(shifted, tmp_path):
    run, x = shifted
    model = gm.load(run.path)
    own = model.evaluate(x[:500])
    far = model.evaluate(x[:500] + 10.0)  # data far from the fit is less likely
    assert own["nll"] < far["nll"] - 5  # scored on the data given, not the run's own
    roll = gm.train(
        "gaussian", data="swiss-roll", steps=5, out=tmp_path / "r", device="cpu", progress=False
    )
    assert gm.load(roll).evaluate()  # the run's own dataset, test split


def test_mistakes_are_one_sentence_errors(shifted):
    run, x = shifted
    with pytest.raises(GMError, match="Did you mean 'steps'"):
        gm.train("gaussian", data=x, stepz=3)
    with pytest.raises(GMError, match="unknown option 'temperature'"):
        gm.load(run).sample(3, temperature=0.5)
    with pytest.raises(GMError, match="one row per example"):
        gm.train("gaussian", data=torch.zeros(10))


def test_as_dataset_reads_modality_from_dtype_and_shape():
    from gm.api import as_dataset

    assert as_dataset(torch.zeros(20, 3)).info.modality == "vector"
    assert as_dataset(torch.zeros(20, 1, 8, 8, dtype=torch.uint8)).info.modality == "image"
    seq = as_dataset(torch.randint(0, 7, (20, 5)))
    assert seq.info.modality == "sequence" and seq.info.vocab_size <= 7
    d = as_dataset(torch.zeros(20, 3))
    assert len(d.raw("train")) == 18 and len(d.raw("test")) == 2  # rows in = rows out


def test_import_gm_stays_cheap():
    code = "import sys, gm; gm.__version__; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_the_documented_example_runs(tmp_path, monkeypatch):
    text = DOC.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    code = code.replace("steps=500", "steps=20")  # the page's example, shortened
    exec(compile(code, str(DOC), "exec"), {})
    assert (tmp_path / "runs" / "roll" / "model.safetensors").exists()
