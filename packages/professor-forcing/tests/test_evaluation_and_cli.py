"""Training to the known NLL, gm evaluate's measures, gm sample's outputs, user mistakes."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from gm import checkpoint
from gm.builtins.toy import markov_chain
from gm.cli import main
from gm.data import DataInfo, Dataset
from gm.engine import build_config, train
from gm.errors import GMError
from gm_professor_forcing import evaluation
from gm_professor_forcing.trainers import EvaluateOptions, SampleOptions, TeacherForcingTrainer

OPTS = {"n": 512, "length": 16}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A small teacher-forcing run on the Markov chain, trained for real."""
    out = tmp_path_factory.mktemp("runs") / "tf"
    torch.manual_seed(0)
    return train(
        "teacher-forcing",
        "markov-chain",
        steps=250,
        out=out,
        device="cpu",
        overrides={"hidden": 32, "embed": 8, "batch_size": 32, "lr": 1e-2, "log_every": 50},
        data_options=OPTS,
        progress=False,
    )


def cli(*args):
    try:
        main(list(args))
    except SystemExit as err:
        return err.code
    return 0


def test_teacher_forcing_approaches_the_true_nll(run, capsys):
    assert cli("evaluate", str(run), "--json", "--device", "cpu", "--n", "64") == 0
    m = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    data = markov_chain(**OPTS)
    pi = torch.tensor(data.info.meta["stationary"])
    unigram = -(pi * pi.log()).sum().item()  # the trivial baseline: tokens independent
    rate = data.info.meta["entropy_rate"]
    assert m["true_nll"] == pytest.approx(rate)
    assert rate - 0.02 < m["nll"] < rate + 0.1 < unigram, (m["nll"], rate, unigram)
    assert m["bits_per_token"] == pytest.approx(m["nll"] / math.log(2))
    assert m["nll_per_sequence"] == pytest.approx(16 * m["nll"])
    for key in (
        "centroid_distance",
        "nn_distance",
        "centroid_distance_floor",
        "nn_distance_floor",
        "centroid_distance_train_length",
        "js_2gram",
        "js_2gram_floor",
        "js_3gram",
    ):
        assert math.isfinite(m[key]) and m[key] >= 0, key
    assert m["horizon"] == 64
    # a model that learned the chain draws bigrams close to the data's
    assert m["js_2gram"] < 0.1


def test_evaluate_plot(run, tmp_path, capsys):
    png = tmp_path / "clouds.png"
    assert (
        cli(
            "evaluate",
            str(run),
            "--json",
            "--device",
            "cpu",
            "--n",
            "32",
            "--plot",
            str(png),
            "--horizon",
            "48",
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["horizon"] == 48
    assert Image.open(png).size == (512, 512)


def test_carry_state_scores_consecutive_windows_as_one_stream():
    trainer = checkpoint_free_trainer()
    stream = torch.randint(0, 8, (1, 4 * 16), generator=torch.Generator().manual_seed(1))
    rows = stream.view(4, 16)
    carried = evaluation.sequence_nll(trainer, rows, batch_size=1, carry_state=True)
    g = trainer.generator
    with torch.no_grad():
        whole = g.nll(g.teacher_forced(stream), stream).sum().item()
        fresh = evaluation.sequence_nll(trainer, rows, batch_size=4, carry_state=False)
    assert carried == pytest.approx(whole, rel=1e-5)
    assert abs(carried - fresh) > 1e-3  # the carried state is really used


def checkpoint_free_trainer():
    data = markov_chain(**OPTS)
    cls, cfg = build_config("teacher-forcing", data.info, overrides={"hidden": 16, "embed": 4})
    torch.manual_seed(0)
    return cls(cfg, data.info)


def test_sample_writes_text_png_npy_far_past_the_training_length(run, tmp_path):
    for name in ("s.txt", "s.png", "s.npy"):
        assert (
            cli(
                "sample",
                str(run),
                "-n",
                "5",
                "--steps",
                "200",
                "--temperature",
                "0.7",
                "--out",
                str(tmp_path / name),
                "--device",
                "cpu",
            )
            == 0
        )
    arr = np.load(tmp_path / "s.npy")
    assert arr.shape == (5, 200) and arr.max() < 8
    assert len((tmp_path / "s.txt").read_text().splitlines()) == 5
    assert cli("sample", str(run), "--steps", "0.5", "--out", str(tmp_path / "x.npy")) == 2
    assert cli("sample", str(run), "--out", str(tmp_path / "x.gif"), "--device", "cpu") == 2


def test_sample_options_reach_the_sampler(run, tmp_path):
    """``gm sample --compile true`` compiles the sampling step (dynamo counts a compiled
    frame) and draws, for a seed, the tokens of the default eager sampler on CPU (the
    one-layer fused loop); another seed draws others."""
    from torch._dynamo.utils import counters

    def sample(name, *options, seed="3"):
        args = ["sample", str(run), "-n", "5", "--steps", "40", "--seed", seed, "--device", "cpu"]
        assert cli(*args, *options, "--out", str(tmp_path / name)) == 0
        return np.load(tmp_path / name)

    eager = sample("eager.npy")
    frames = counters["frames"]["ok"]
    compiled = sample("compiled.npy", "--compile", "true", "--cuda-graph", "false")
    assert counters["frames"]["ok"] > frames  # the option reached the sampler
    other = sample("other.npy", "--compile", "true", seed="4")
    assert eager.shape == (5, 40)
    assert np.array_equal(compiled, eager) and not np.array_equal(other, eager)
    assert cli("sample", str(run), "--compile", "maybe", "--out", str(tmp_path / "x.npy")) == 2


def test_text_samples_are_decoded_through_the_alphabet(tmp_path):
    alphabet = "ab \n"
    info = DataInfo("text-toy", "sequence", (12,), vocab_size=4, meta={"alphabet": alphabet})
    cls, cfg = build_config("teacher-forcing", info, overrides={"hidden": 8, "embed": 4})
    tr = cls(cfg, info)
    tokens = tr.sample(3, SampleOptions(steps=30))
    tr.write_samples(tokens, tmp_path / "t.txt", SampleOptions())
    text = (tmp_path / "t.txt").read_text()
    assert text.count("=== sample") == 3 and set(text) <= set(alphabet + "=sample123")
    tr.write_samples(tokens, tmp_path / "t.png", SampleOptions())
    assert Image.open(tmp_path / "t.png").width > 100


def test_pixel_sequences_are_drawn_as_images(tmp_path):
    info = DataInfo(
        "sequential-digits", "sequence", (64,), vocab_size=2, meta={"image_shape": [8, 8]}
    )
    cls, cfg = build_config("professor-forcing", info, overrides={"hidden": 8, "embed": 4})
    tr = cls(cfg, info)
    tokens = tr.sample(4, SampleOptions(steps=128))  # two images' worth per sample
    tr.write_samples(tokens, tmp_path / "d.png", SampleOptions())
    img = Image.open(tmp_path / "d.png")
    # one row per sample, two 8x8 images in it (2 px padding, x4 scale)
    assert img.size == ((2 * 10 + 2) * 4, (4 * 10 + 2) * 4)


def test_user_mistakes_are_one_line_errors(tmp_path):
    vec = DataInfo("v", "vector", (2,))
    with pytest.raises(GMError):
        TeacherForcingTrainer(TeacherForcingTrainer.Config(), vec)
    info = DataInfo("s", "strokes", (10, 3))
    cls, cfg = build_config("teacher-forcing", info, overrides={"hidden": 8, "layers": 1})
    tr = cls(cfg, info)
    with pytest.raises(GMError):
        tr.write_samples(torch.zeros(2, 5, 3), tmp_path / "s.txt", SampleOptions())
    with pytest.raises(GMError):
        build_config("teacher-forcing", info, overrides={"output": "categorical"})[0](
            build_config("teacher-forcing", info, overrides={"output": "categorical"})[1], info
        )
    data = Dataset(
        DataInfo("t", "sequence", (8,), vocab_size=3), {"test": torch.randint(0, 3, (6, 8))}
    )
    small = build_config("teacher-forcing", data.info, overrides={"hidden": 8})
    with pytest.raises(GMError):
        small[0](small[1], data.info).evaluate(data, "test", EvaluateOptions(horizon=4))


def test_plugin_module_does_not_import_torch():
    code = (
        "import sys, gm_professor_forcing.plugin as p; p.gm_models(); p.gm_trainers(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_resume_continues_exactly(tmp_path):
    """Stop after 4 steps and resume to 6 == 6 steps straight (gate EMA, both optimisers, RNG)."""
    over = {
        "hidden": 16,
        "embed": 4,
        "batch_size": 16,
        "d_hidden": 8,
        "d_mlp": 8,
        "log_every": 1,
        "checkpoint_every": 4,
        "gate_g": 0.5,
    }
    a = train(
        "professor-forcing",
        "markov-chain",
        steps=6,
        out=tmp_path / "a",
        device="cpu",
        overrides=over,
        data_options=OPTS,
        progress=False,
    )
    b = train(
        "professor-forcing",
        "markov-chain",
        steps=4,
        out=tmp_path / "b",
        device="cpu",
        overrides=over,
        data_options=OPTS,
        progress=False,
    )
    b = train("professor-forcing", "markov-chain", steps=6, resume=b, device="cpu", progress=False)
    ta, tb = checkpoint.load(a), checkpoint.load(b)
    for name, module in ta.modules().items():
        for k, v in module.state_dict().items():
            assert torch.equal(v, tb.modules()[name].state_dict()[k]), f"{name}.{k}"
