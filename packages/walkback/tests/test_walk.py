"""The walk itself, on real trainers: H never falls as the operator's noise grows, std
scaling heats by sqrt(Tmax), the clamp holds at every inpainting step, batch-norm running
statistics only follow the trained pass, n follows the run seed, validation keeps the best."""

import json

import pytest
import torch
from wb_testdata import training_steps

from gm import train
from gm.build import resolve
from gm.data import DataInfo, Dataset, load_dataset
from gm.engine import seed_everything
from gm.run import Run
from gm_walkback import chains, schedules
from gm_walkback.networks import StepNorm


def toy_trainer(seed=0, **overrides):
    data = load_dataset("swiss-roll", options={"n": 1024})
    cls, cfg = resolve(
        "walkback",
        data.info,
        overrides={
            "recipe": "custom",
            "schedule": "doubling",
            "hidden": 32,
            "batch_size": 128,
            "per_step_norm": False,
            **overrides,
        },
    )
    seed_everything(seed)
    return cls(cfg, data.info, "cpu"), data


@pytest.mark.slow  # 5 s (durations run, 1 thread, load 4-7)
def test_heated_levels_never_fall_while_the_operators_noise_grows():
    """A real trainer starting from a small noise (std 0.01): the noise grows several-fold in
    40 minibatches, which would shorten a re-estimated walk by 3 levels; H must stay."""
    trainer, data = toy_trainer(init_std=0.01, tmax_every=5, lr=1e-3)
    x = data.tensor("train")
    gen = torch.Generator().manual_seed(0)
    heats, first_var = [], None
    batches = (x[torch.randint(0, len(x), (128,), generator=gen)] for _ in range(40))
    for metrics in training_steps(trainer, batches, 40):
        heats.append(int(metrics["heat"]))
        first_var = first_var or metrics["noise_std"].item() ** 2
    noise_var = trainer.stats.noise_var.item()
    assert noise_var > 4 * first_var  # the noise really grew
    estimate = schedules.heat_levels(trainer.stats.data_var.item() / noise_var, 16)
    assert estimate <= heats[0] - 2  # a re-estimated H would have fallen
    assert heats == sorted(heats) and heats[-1] >= heats[0]  # it never falls
    assert len(trainer.walk(0)) == heats[-1]


def test_std_scaling_heats_to_the_square_root_of_tmax():
    """Tmax is a variance ratio: with std = T softplus(.), the variance grows as T^2, so the
    walk needs log2 sqrt(Tmax) heated levels to reach the same noise."""
    variance, _ = toy_trainer(tmax=64.0)
    std, _ = toy_trainer(tmax=64.0, temperature_scaling="std")
    assert len(variance.walk(0)) == 6 and len(std.walk(0)) == 3
    # the hottest step's noise variance is ~ the same: 2^5 sigma^2 against (2^2)^2 sigma^2
    assert variance.walk(0).temperatures[-1] == 32.0 and std.walk(0).temperatures[-1] == 4.0


def test_a_fixed_tmax_of_one_is_one_step_at_t_1():
    """--set tmax=1: the noise already reaches the data, so H is its floor of one step at
    T = 1 whatever the running estimates say (they ask for ~7 levels here)."""
    trainer, data = toy_trainer(tmax=1.0, n_max=0)
    trainer.training_step(data.tensor("train")[:128])
    estimate = trainer.stats.data_var.item() / trainer.stats.noise_var.item()
    assert schedules.heat_levels(estimate, 16) >= 4
    assert int(trainer.stats.heat) <= 1 and trainer.walk(0).temperatures == (1.0,)


def test_clamp_holds_at_every_step_of_both_chains():
    trainer, _ = toy_trainer(tmax=16.0)
    op = trainer.operator.eval()
    walk = trainer.generation_walk(0, 3)
    s0 = torch.randn(16, 2) * 3
    values = torch.randn(16, 2)
    known = torch.zeros(16, 2, dtype=torch.bool)
    known[:, 0] = True
    for run in (
        lambda: chains.run_chain(op, s0, walk, known=known, values=values, every=1),
        lambda: chains.FastChain(op, compile="off").run(
            s0, walk, known=known, values=values, every=1
        ),
    ):
        _, frames = run()
        assert len(frames) == len(walk) + 1
        for f in frames:
            assert torch.equal(f[:, 0], values[:, 0])  # known entries, at every step
        assert not torch.allclose(frames[-1][:, 1], s0[:, 1])  # the rest moved


def test_inpaint_returns_known_pixels_exactly_as_given():
    data = load_dataset("wb-tiny-images")
    cls, cfg = resolve("walkback", data.info, overrides={"hidden": 16, "tmax": 8.0})
    seed_everything(0)
    trainer = cls(cfg, data.info, "cpu")
    trainer.train(False)
    x = data.decode(data.raw("test")[:8])
    known = torch.zeros_like(x, dtype=torch.bool)
    known[..., :4, :] = True
    with torch.no_grad():
        for start in ("masked", "pstar"):
            out = trainer.inpaint(x, known, start=start)
            assert torch.equal(out[known], x[known])  # not a dequantised copy
            assert not torch.equal(out[~known], x[~known])


def test_forward_sampling_pass_leaves_batch_norm_running_stats_alone():
    """Only the trained walk-back pass updates them (once per walk step), not the no-grad
    forward draw: with K steps the running stats move K times, not 2K times."""
    data = load_dataset("wb-tiny-images")
    cls, cfg = resolve(
        "walkback",
        data.info,
        overrides={"hidden": 16, "tmax": 8.0, "n_max": 0, "per_step_norm": False},
    )
    seed_everything(0)
    trainer = cls(cfg, data.info, "cpu")
    norms = [m for m in trainer.operator.modules() if isinstance(m, StepNorm)]
    assert norms and norms[0].kind == "batch"
    counts = []
    for m in norms[:1]:
        m.register_forward_hook(lambda mod, args, out: counts.append(mod.update_stats))
    trainer.training_step(data.raw("train")[:32].float() / 255)
    k = len(trainer.walk(0))
    assert counts.count(True) == k and counts.count(False) == k + 1  # + the noise estimate


def test_the_n_sequence_follows_the_run_seed():
    a = [toy_trainer(seed=1)[0] for _ in range(2)]
    b = toy_trainer(seed=2)[0]

    def seq(t):
        out = []
        for u in range(30):
            t.step = u
            out.append(t._draw_n())
        return out

    assert seq(a[0]) == seq(a[1])  # reproducible for a seed (and so equal on every rank)
    assert seq(a[0]) != seq(b)


def test_validation_keeps_the_best_weights(tmp_path):
    run = train(
        "walkback",
        "swiss-roll",
        steps=6,
        out=tmp_path / "run",
        hidden=16,
        validate_every=2,
        validate_examples=64,
        walk_steps=4,
        device="cpu",
        progress=False,
    ).path
    rows = [json.loads(ln) for ln in (run / "validation.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    best = max(r["validation_bound"] for r in rows)
    assert rows[-1]["best_validation_bound"] == best
    trainer = Run.open(run / "best").trainer  # a loadable run folder
    assert torch.isfinite(trainer.sample(8, trainer.SampleOptions())).all()  # weights only


def test_validation_uses_the_valid_split_when_there_is_one():
    trainer, _ = toy_trainer(tmax=4.0)
    x = torch.randn(64, 2)
    far = torch.randn(64, 2) * 100
    near = Dataset(DataInfo("v", "vector", (2,)), {"train": x, "test": far, "valid": x})
    bad = Dataset(DataInfo("v", "vector", (2,)), {"train": x, "test": far})
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        v_near = trainer.validate(near, tmp, 1)["validation_bound"]
        v_far = trainer.validate(bad, tmp, 1)["validation_bound"]
    assert v_near > v_far


def test_first_minibatch_sets_the_running_variances_from_the_data():
    """After the first minibatch (lr = 0, no norm): the data variance is the batch's, and the
    operator's noise variance is the one it has at the data (step 0), not along the walk."""
    trainer, data = toy_trainer(tmax=16.0, lr=0.0)
    x = data.tensor("train")[:128]
    trainer.training_step(x)
    st = trainer.stats
    assert st.data_var.item() == pytest.approx(x.var(0, unbiased=False).mean().item(), rel=1e-6)
    with torch.no_grad():
        at_data = trainer.operator.noise_variance(x, 0).item()
    assert st.noise_var.item() == pytest.approx(at_data, rel=1e-6)


def test_mean_generation_is_the_last_steps_mean_at_its_level_and_temperature():
    """generate(mean=True): draws through all but the last step, then that step's mean (a
    Bernoulli operator with per-step parameters, so level and temperature both matter)."""
    info = DataInfo("bin8", "image", (1, 8, 8), meta={"binary": True})
    cls, cfg = resolve(
        "walkback", info, overrides={"hidden": 16, "tmax": 16.0, "per_step_norm": True}
    )
    seed_everything(0)
    trainer = cls(cfg, info, "cpu")
    with torch.no_grad():
        for norm in trainer.operator.net.norms:  # distinct per-step affines
            norm.weight.normal_(1.0, 0.5)
            norm.bias.normal_(0.0, 0.5)
    trainer.train(False)
    walk = trainer.generation_walk()
    assert len(set(walk.levels)) > 1 and len(set(walk.temperatures)) > 1
    torch.manual_seed(3)
    with torch.no_grad():
        got, _ = trainer.generate(8, walk, mean=True)
    torch.manual_seed(3)
    with torch.no_grad():
        s = trainer.prior().sample((8,))
        s, _ = chains.run_chain(trainer.operator, s, walk.prefix(len(walk) - 1))
        want = trainer.operator.distribution(s, walk.temperatures[-1], walk.levels[-1]).mean
    assert torch.allclose(got, want)
