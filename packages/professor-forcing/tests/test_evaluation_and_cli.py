"""Training to the known NLL, gm evaluate's measures, gm sample's outputs, user mistakes."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from gm import pictures, train
from gm.build import resolve
from gm.builtins.toy import markov_chain
from gm.cli import main
from gm.data import DataInfo, Dataset
from gm.errors import GMError
from gm.run import Run
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
        hidden=32,
        embed=8,
        batch_size=32,
        lr=1e-2,
        log_every=50,
        data_options=OPTS,
        progress=False,
    ).path


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
    assert m["entropy_rate"] == pytest.approx(rate)
    # the floor of a 16-token window from a stationary start: (H(pi) + 15 rate) / 16
    assert m["nll_floor"] == pytest.approx((unigram + 15 * rate) / 16)
    assert "true_nll" not in m  # the old, mislabelled name (it held the rate)
    assert m["nll_floor"] - 0.02 < m["nll"] < rate + 0.1 < unigram, (m["nll"], rate, unigram)
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


@pytest.mark.slow  # 11 s (durations run, 1 thread, load 4-7)
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
    assert Image.open(png).size == (2 * 512 + 8, 512)  # PCA beside t-SNE


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
    cls, cfg = resolve("teacher-forcing", data.info, overrides={"hidden": 16, "embed": 4})
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


def test_token_samples_print_as_text_on_stdout_by_default(run, tmp_path, capsys):
    """No --out: the text itself on stdout (no picture written); the same as --out F.txt."""
    before = sorted(p.name for p in run.iterdir())
    assert cli("sample", str(run), "-n", "4", "--steps", "30", "--device", "cpu") == 0
    shown = capsys.readouterr().out
    assert sorted(p.name for p in run.iterdir()) == before  # nothing written
    assert cli("sample", str(run), "-n", "4", "--steps", "30", "--device", "cpu",
               "--out", str(tmp_path / "s.txt")) == 0  # fmt: skip
    assert shown == (tmp_path / "s.txt").read_text()
    rows = shown.splitlines()
    assert len(rows) == 4 and all(len(r.split()) == 30 for r in rows)


@pytest.mark.parametrize(
    "modality,shape,meta,form",
    [
        ("sequence", (12,), {"alphabet": "ab \n"}, "text"),
        ("sequence", (16,), {}, "text"),
        ("sequence", (64,), {"image_shape": [8, 8]}, "picture"),
        ("strokes", (20, 3), {}, "picture"),
    ],
)
def test_the_sample_form_follows_the_modality(modality, shape, meta, form):
    vocab = 4 if modality == "sequence" else None
    info = DataInfo("d", modality, shape, vocab_size=vocab, meta=meta)
    assert TeacherForcingTrainer.sample_form(info) == form


@pytest.mark.slow  # 19 s (durations run, 1 thread, load 4-7)
def test_sample_options_reach_the_sampler(run, tmp_path):
    """``gm sample --compile on`` compiles the sampling step (dynamo counts a compiled
    frame) and draws, for a seed, the tokens of the default eager sampler on CPU (the
    one-layer fused loop); another seed draws others."""
    from torch._dynamo.utils import counters

    def sample(name, *options, seed="3"):
        args = ["sample", str(run), "-n", "5", "--steps", "40", "--seed", seed, "--device", "cpu"]
        assert cli(*args, *options, "--out", str(tmp_path / name)) == 0
        return np.load(tmp_path / name)

    eager = sample("eager.npy")
    frames = counters["frames"]["ok"]
    compiled = sample("compiled.npy", "--compile", "on", "--cuda-graph", "off")
    assert counters["frames"]["ok"] > frames  # the option reached the sampler
    other = sample("other.npy", "--compile", "on", seed="4")
    assert eager.shape == (5, 40)
    assert np.array_equal(compiled, eager) and not np.array_equal(other, eager)
    assert cli("sample", str(run), "--compile", "maybe", "--out", str(tmp_path / "x.npy")) == 2


def test_text_samples_are_decoded_through_the_alphabet(tmp_path):
    alphabet = "ab \n"
    info = DataInfo("text-toy", "sequence", (12,), vocab_size=4, meta={"alphabet": alphabet})
    cls, cfg = resolve("teacher-forcing", info, overrides={"hidden": 8, "embed": 4})
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
    cls, cfg = resolve("professor-forcing", info, overrides={"hidden": 8, "embed": 4})
    tr = cls(cfg, info)
    tokens = tr.sample(4, SampleOptions(steps=128))  # two images' worth per sample
    tr.write_samples(tokens, tmp_path / "d.png", SampleOptions())
    img = Image.open(tmp_path / "d.png")
    # one row per sample, two 8x8 images in it (2 px padding, upscaled to about 96 px)
    k = pictures.scale_for(8)
    assert k == 12 and img.size == ((2 * 10 + 2) * k, (4 * 10 + 2) * k)


def test_user_mistakes_are_one_line_errors(tmp_path):
    vec = DataInfo("v", "vector", (2,))
    with pytest.raises(GMError):
        TeacherForcingTrainer(TeacherForcingTrainer.Config(), vec)
    info = DataInfo("s", "strokes", (10, 3))
    cls, cfg = resolve("teacher-forcing", info, overrides={"hidden": 8, "layers": 1})
    tr = cls(cfg, info)
    with pytest.raises(GMError):
        tr.write_samples(torch.zeros(2, 5, 3), tmp_path / "s.txt", SampleOptions())
    with pytest.raises(GMError):
        resolve("teacher-forcing", info, overrides={"output": "categorical"})[0](
            resolve("teacher-forcing", info, overrides={"output": "categorical"})[1], info
        )
    data = Dataset(
        DataInfo("t", "sequence", (8,), vocab_size=3), {"test": torch.randint(0, 3, (6, 8))}
    )
    small = resolve("teacher-forcing", data.info, overrides={"hidden": 8})
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
        **over,
        data_options=OPTS,
        progress=False,
    ).path
    b = train(
        "professor-forcing",
        "markov-chain",
        steps=4,
        out=tmp_path / "b",
        device="cpu",
        **over,
        data_options=OPTS,
        progress=False,
    ).path
    b = train("professor-forcing", steps=6, resume=b, device="cpu", progress=False).path
    ta, tb = Run.open(a).trainer, Run.open(b).trainer
    for name, module in ta.modules().items():
        for k, v in module.state_dict().items():
            assert torch.equal(v, tb.modules()[name].state_dict()[k]), f"{name}.{k}"


# --- the hidden-state study: distances with known answers, equal horizons --------------------
def test_distances_on_point_clouds_with_known_answers():
    grid = torch.stack(torch.meshgrid(torch.arange(10.0), torch.arange(10.0), indexing="ij"), -1)
    grid = grid.reshape(-1, 2)
    assert evaluation.centroid_distance(grid + torch.tensor([3.0, 4.0]), grid) == pytest.approx(5)
    # each shifted point is 0.5 from its own grid point and farther from every other
    shifted = grid + torch.tensor([0.3, 0.4])
    assert evaluation.nn_distance(shifted, grid, chunk=7) == pytest.approx(0.5, abs=1e-5)
    far = torch.tensor([[100.0, 0.0], [0.0, -50.0]])
    assert evaluation.nn_distance(far, grid) == pytest.approx((91 + 50) / 2, abs=1e-5)


def test_study_compares_free_running_and_real_states_at_the_same_horizon():
    """On stream data the reference cloud is teacher forcing over 4 consecutive real rows,
    steps 3L..4L; the free-running cloud is the draws' own states at those steps."""
    from gm_professor_forcing import regimes

    data = regimes.regime_switch(n=64, length=8, d_min=3, d_max=6, stream_rows=4)
    cls, cfg = resolve("teacher-forcing", data.info, overrides={"hidden": 6, "embed": 4})
    torch.manual_seed(0)
    tr = cls(cfg, data.info)
    x = data.raw("test")  # 16 rows = 4 streams of 4 windows
    opts = EvaluateOptions(n=8, points=10_000, batch_size=3)
    torch.manual_seed(1)
    m, samples, (reference, far) = evaluation.hidden_state_study(tr, x, opts, stream_rows=4)
    assert m["horizon"] == 32 and m["reference_is_stream"] == 1
    g = tr.generator
    with torch.no_grad():
        own = g.teacher_forced(samples).hidden[:, 24:32].reshape(-1, 6)  # the draws' states
        streams = x.reshape(4, 32)
        real = g.teacher_forced(streams).hidden[:, 24:32].reshape(-1, 6)
    assert samples.shape == (2, 32)  # 4 streams: 2 reference, 2 held out, 2 free runs
    torch.testing.assert_close(far.sort(0).values, own.sort(0).values)
    # the reference is 2 of the 4 real streams at steps 24..32 (the other 2 are the floor)
    ref_sorted = reference.sort(0).values
    pairs = [real.reshape(4, 8, 6)[[i, j]].reshape(-1, 6) for i in range(4) for j in range(4)]
    assert any(torch.allclose(ref_sorted, p.sort(0).values) for p in pairs)
    assert m["centroid_distance"] == pytest.approx(evaluation.centroid_distance(far, reference))
    # without streams, windows are joined at random and the study says so
    m2, _, _ = evaluation.hidden_state_study(tr, x, opts, stream_rows=1)
    assert m2["reference_is_stream"] == 0 and m2["horizon"] == 32


@pytest.mark.slow  # 9 s (durations run, 1 thread, load 4-7)
def test_tsne_keeps_separated_clouds_apart_and_mixed_clouds_together():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 10, generator=g)
    b = torch.randn(200, 10, generator=g)
    apart = evaluation.tsne(a, b + 20.0, points=200)
    together = evaluation.tsne(a, b, points=200)
    d_apart = evaluation.centroid_distance(*apart)
    d_together = evaluation.centroid_distance(*together)
    assert d_apart > 5 * d_together, (d_apart, d_together)


# --- what the mutation check found the tests could not see ------------------------------------
def test_ngram_js_known_answers():
    a = torch.tensor([[0, 1, 0, 1, 0, 1]])
    assert evaluation.ngram_js(a, a, 2, 3) == pytest.approx(0.0, abs=1e-12)
    b = torch.tensor([[2, 2, 2, 2, 2, 2]])
    assert evaluation.ngram_js(a, b, 2, 3) == pytest.approx(1.0)  # disjoint supports: 1 bit
    # unigrams {0: 1} against {0: 1/2, 1: 1/2}, against the definition computed by hand
    p, q = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5])
    m = (p + q) / 2
    kl = lambda u: sum(float(x * math.log2(x / y)) for x, y in zip(u, m, strict=True) if x > 0)  # noqa: E731
    want = 0.5 * kl(p) + 0.5 * kl(q)
    got = evaluation.ngram_js(torch.tensor([[0, 0, 0, 0]]), torch.tensor([[0, 1, 0, 1]]), 1, 2)
    assert got == pytest.approx(want)
    # bigram ids must not collide: (0, 1) and (1, 0) are different 2-grams
    assert evaluation.ngram_js(torch.tensor([[0, 1]]), torch.tensor([[1, 0]]), 2, 2) == 1.0


def test_carry_state_scores_every_row_when_streams_do_not_divide_them():
    trainer = checkpoint_free_trainer()
    rows = torch.randint(0, 8, (5, 16), generator=torch.Generator().manual_seed(2))
    g = trainer.generator
    with torch.no_grad():
        stream = rows[:4].reshape(2, 32)  # 2 streams of 2 windows, then row 4 alone
        want = (
            g.nll(g.teacher_forced(stream), stream).sum()
            + g.nll(g.teacher_forced(rows[4:]), rows[4:]).sum()
        )
    got = evaluation.sequence_nll(trainer, rows, batch_size=2, carry_state=True)
    assert got == pytest.approx(want.item(), rel=1e-5)


def test_study_needs_two_sequences_and_uses_all_it_is_given():
    trainer = checkpoint_free_trainer()
    x = markov_chain(**OPTS).raw("test")[:2]
    m, samples, (reference, far) = evaluation.hidden_state_study(
        trainer, x, EvaluateOptions(n=2, points=10_000, horizon=16)
    )
    assert samples.shape == (1, 16) and reference.shape == (16, 16) and far.shape == (16, 16)
    with pytest.raises(GMError):
        evaluation.hidden_state_study(trainer, x[:1], EvaluateOptions(n=2, horizon=16))


def test_evaluate_refuses_data_with_more_symbols_than_the_model_knows():
    trainer = checkpoint_free_trainer()
    data = markov_chain(n=16, length=16, vocab=9)
    with pytest.raises(GMError, match="9 symbols"):
        trainer.evaluate(data, "test", EvaluateOptions(n=4))
    fewer = markov_chain(n=16, length=16, vocab=8)
    assert "nll" in trainer.evaluate(fewer, "test", EvaluateOptions(n=4, horizon=19))
    m = trainer.evaluate(fewer, "test", EvaluateOptions(n=4, horizon=20))
    assert "js_2gram" in m  # draws longer than L + 3: n-gram divergences past L
    assert "js_2gram" not in trainer.evaluate(fewer, "test", EvaluateOptions(n=4, horizon=19))


def test_pca_projects_on_the_reference_clouds_own_axes():
    """A reference cloud far from the origin, spread along e1 then e2 in 3-D: its projection is
    centred, keeps its spread on the first axis, and a free cloud shifted by (2, 0, 7) lands 2
    along the first axis (the shift along e3, off the plane, is dropped)."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(2000, 3, generator=g) * torch.tensor([5.0, 2.0, 0.1])
    reference = base + torch.tensor([40.0, -30.0, 20.0])
    free = reference + torch.tensor([2.0, 0.0, 7.0])
    ref2, free2 = evaluation.pca(reference, free)
    assert ref2.mean(0).abs().max() < 1e-3
    assert ref2[:, 0].std().item() == pytest.approx(5.0, rel=0.05)
    assert ref2[:, 1].std().item() == pytest.approx(2.0, rel=0.05)
    shift = (free2 - ref2).mean(0).abs()
    assert shift[0].item() == pytest.approx(2.0, abs=0.01) and shift[1].item() < 0.05


def test_study_floor_compares_equal_halves_when_the_streams_are_odd():
    """3 streams for 4 asked: 1 reference, 1 held out (the third unused), so the floor is the
    centroid distance between two single real streams at steps 3L..4L."""
    from gm_professor_forcing import regimes

    data = regimes.regime_switch(n=64, length=8, d_min=3, d_max=6, stream_rows=4)
    cls, cfg = resolve("teacher-forcing", data.info, overrides={"hidden": 6, "embed": 4})
    torch.manual_seed(0)
    tr = cls(cfg, data.info)
    x = data.raw("test")[:12]  # 3 streams of 4 windows
    torch.manual_seed(1)
    opts = EvaluateOptions(n=4, points=10_000, batch_size=1)
    m, _, _ = evaluation.hidden_state_study(tr, x, opts, stream_rows=4)
    with torch.no_grad():
        real = tr.generator.teacher_forced(x.reshape(3, 32)).hidden[:, 24:32]
    pairs = [evaluation.centroid_distance(real[i], real[j]) for i in range(3) for j in range(3)]
    assert min(abs(m["centroid_distance_floor"] - p) for p in pairs if p > 0) < 1e-5


def test_rows_without_stream_meta_are_never_read_as_streams():
    """Markov-chain rows are independent windows: at a 2L horizon the real sequences are
    random rows joined, not consecutive rows passed off as a stream."""
    data = markov_chain(n=32, length=8)
    assert "stream_rows" not in data.info.meta
    cls, cfg = resolve("teacher-forcing", data.info, overrides={"hidden": 6, "embed": 4})
    tr = cls(cfg, data.info)
    m = tr.evaluate(data, "test", EvaluateOptions(n=4, horizon=16))
    assert m["reference_is_stream"] == 0 and m["horizon"] == 16


def test_the_thesis_setups_are_recipes_of_professor_forcing():
    """`gm train pf-char-ptb` is `gm train professor-forcing --set recipe=pf-char-ptb`: one
    meaning of recipe, the thesis's settings over the trainer's defaults, --set over both."""
    from gm.data import DataInfo

    info = DataInfo("markov-chain", "sequence", (64,), 8)
    ptb = resolve("pf-char-ptb", info)[1]
    assert (ptb.recipe, ptb.hidden, ptb.d_hidden, ptb.lr) == ("pf-char-ptb", 1024, 2048, 1e-4)
    assert resolve("professor-forcing", info, overrides={"recipe": "pf-char-ptb"})[1] == ptb
    plain = resolve("professor-forcing", info)[1]
    assert plain.recipe == "" and (plain.d_hidden, plain.lr) != (2048, 1e-4)
    assert resolve("pf-char-ptb", info, overrides={"hidden": 64})[1].hidden == 64
