"""The recipe faults of issue 22, each pinned by a test that fails where the fault is back:
a T = 1 noise that grows without bound, heating that per-step parameters cancel, the weight
average, NET's schedules at known points, and ``gm evaluate`` naming its estimator."""

import dataclasses
import math

import pytest
import torch
from wb_testdata import tiny_images, training_steps

from gm.run import Run
from gm_walkback import shared
from gm_walkback.diffusion import (
    DiffusionConfig,
    alpha_bars,
    beta_schedule,
    cosine_betas,
    net_betas,
    schedule_betas,
)
from gm_walkback.operators import GaussianMLP, bounded_std, uncapped_std
from gm_walkback.walkback import WalkbackConfig, WalkbackTrainer


def _trainer(**kw) -> WalkbackTrainer:
    torch.manual_seed(0)
    data = tiny_images()
    cfg = WalkbackConfig(
        network="mlp",
        hidden=64,
        batch_size=64,
        lr=3e-3,
        schedule="appendix",
        walk_steps=6,
        heat_factor=2.0,
        per_step_norm=True,
        norm="batch",
        init_std=0.05,
        **kw,
    )
    return WalkbackTrainer(cfg, data.info), data


def _train(trainer, data, minibatches: int) -> None:
    torch.manual_seed(0)
    x = data.decode(data.raw("train")).float()
    gen = torch.Generator().manual_seed(0)
    batches = (x[torch.randint(0, len(x), (64,), generator=gen)] for _ in range(minibatches))
    training_steps(trainer, batches, minibatches)


def _std_at_t1(trainer, data) -> torch.Tensor:
    x = trainer.prepare(data.decode(data.raw("test")))
    trainer.operator.eval()
    with torch.no_grad():
        return trainer.operator.heads(x, 0)[1]


def test_capped_noise_starts_where_asked_and_never_passes_the_cap():
    for cap in (0.0, 0.08):
        raw = torch.tensor(math.log(math.expm1(uncapped_std(0.05, cap))))
        assert bounded_std(raw, cap).item() == pytest.approx(0.05, rel=1e-5)
    raw = torch.tensor([-4.0, -3.0, 5.0, 500.0])
    capped = bounded_std(raw, 0.08)
    assert (capped <= 0.08).all() and capped[-1] == pytest.approx(0.08)
    assert capped[0] < capped[1] < 0.08  # small values pass almost unchanged, in order
    assert capped[0].item() == pytest.approx(math.log1p(math.exp(-4.0)), rel=0.05)
    assert bounded_std(raw, 0.0)[-1] > 100  # uncapped: softplus itself
    with pytest.raises(Exception, match="max_std"):
        uncapped_std(0.1, 0.08)  # a start above the cap is refused


@pytest.mark.slow  # 6 s (durations run, 1 thread, load 4-7)
def test_t1_noise_stays_bounded_over_real_training():
    """A fast-learning operator trained on heated walks pushes its T = 1 noise up (the fault:
    0.05 -> 0.32 on MNIST); with max_std it never passes the cap."""
    free, _ = _trainer()
    capped, data = _trainer(max_std=0.06)
    _train(free, data, 40)
    _train(capped, data, 40)
    assert _std_at_t1(free, data).max().item() > 0.065  # the fault is real here: it grew
    std = _std_at_t1(capped, data)
    assert std.max().item() <= 0.06 + capped.config.min_std + 1e-6
    assert std.max().item() > 0.055  # and it did train (towards the cap)


def test_learned_noise_heats_with_temperature_after_training():
    """sigma_T = sqrt(T) sigma with sigma free of the state and the step: after training, the
    noise the operator injects at each level rises with that level's temperature as sqrt(T),
    whatever the per-step parameters learned."""
    trainer, data = _trainer(noise="learned", max_std=0.2)
    _train(trainer, data, 30)
    op = trainer.operator.eval()
    walk = trainer.walk()
    x = trainer.prepare(data.decode(data.raw("test")))
    with torch.no_grad():
        stds = [
            op.distribution(x, temp, level).stddev
            for temp, level in zip(walk.temperatures, walk.levels, strict=True)
        ]
    base = stds[0] / math.sqrt(walk.temperatures[0])
    assert (base - 0.05 - trainer.config.min_std).abs().max() > 1e-3  # sigma was learned
    assert walk.temperatures == tuple(2.0 ** (k + 1) for k in range(6))
    for temp, std in zip(walk.temperatures, stds, strict=True):
        torch.testing.assert_close(std, base * math.sqrt(temp))


def test_fixed_noise_is_init_std_and_untrained():
    trainer, data = _trainer(noise="fixed")
    _train(trainer, data, 3)
    std = _std_at_t1(trainer, data)
    assert torch.allclose(std, torch.full_like(std, 0.05 + trainer.config.min_std))


def test_weight_average_is_the_warmed_up_exponential_average():
    net = torch.nn.Linear(1, 1, bias=False)
    avg = shared.WeightAverage(net, 0.9)
    # the average is never trained: no autograd state or gradients for it, ever
    assert not any(p.requires_grad for p in avg.module.parameters())
    expect = net.weight.item()
    for n, value in enumerate([1.0, 2.0, 4.0, -3.0, 0.5] * 4):
        with torch.no_grad():
            net.weight.fill_(value)
        avg.update(net)
        keep = min(0.9, (1 + n) / (10 + n))
        expect = keep * expect + (1 - keep) * value
        assert avg.module.weight.item() == pytest.approx(expect, abs=1e-5)
    with pytest.raises(Exception, match="ema"):
        shared.WeightAverage(net, 1.0)


def test_ema_samples_and_evaluates_with_the_averaged_weights(tmp_path):
    from gm import train

    trainer, data = _trainer(ema=0.99)
    assert trainer.sampler is trainer.ema.module
    _train(trainer, data, 5)
    trained = trainer.operator.net.heads[0].weight
    averaged = trainer.sampler.net.heads[0].weight
    assert not torch.allclose(trained, averaged)  # the average lags the trained weights
    run = train(
        "walkback",
        "wb-tiny-images",
        steps=3,
        out=tmp_path / "run",
        **{"hidden": 16, "batch_size": 32, "ema": 0.9, "network": "mlp"},
        device="cpu",
        progress=False,
    ).path
    loaded = Run.open(run).trainer
    assert loaded.sampler is loaded.ema.module and int(loaded.ema.updates) > 0


def test_net_schedule_at_known_points():
    # NET's code: beta_t = 1 / linspace(T, 2, T)_t, beta_1 += 1e-3
    betas = net_betas(3)
    assert betas.tolist() == pytest.approx([1 / 3 + 1e-3, 1 / 2.5, 1 / 2])
    b1000 = net_betas(1000)
    assert b1000[0].item() == pytest.approx(1e-3 + 1e-3)
    assert b1000[-1].item() == pytest.approx(0.5)
    # prod (1 - beta) ~ 1/T: the diffusion ends near the unit Gaussian
    assert alpha_bars(b1000)[-1].item() == pytest.approx(9.925e-4, rel=1e-3)


def test_cosine_schedule_at_known_points():
    # alpha-bar(t) = cos^2((t/T + s)/(1 + s) pi/2) / cos^2(s/(1 + s) pi/2), s = 0.008
    ab = alpha_bars(cosine_betas(30)).double()
    f = lambda t: math.cos((t / 30 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (1, 10, 15, 29):
        assert ab[t - 1].item() == pytest.approx(f(t) / f(0), rel=1e-5)
    assert ab[14].item() == pytest.approx(0.49384, abs=1e-4)  # half way: about a half
    assert cosine_betas(30)[-1].item() == pytest.approx(0.999)  # clipped, alpha-bar_T ~ 0
    assert ab[-1].item() < 1e-5


def test_thirty_step_net_is_not_the_one_bit_handicap():
    """NET's 1/(T - t + 1)-like schedule over 30 steps leaves alpha-bar_T ~ 1/30 of the data in
    the last state (the prior mismatch) and starts with beta_1 ~ 1/30 (a coarse first step);
    the 30-step default is the cosine schedule, the old one a named option."""
    assert beta_schedule(DiffusionConfig(diffusion_steps=30)) == "cosine"
    assert beta_schedule(DiffusionConfig(diffusion_steps=1000)) == "net"
    cfg30 = DiffusionConfig(diffusion_steps=30)
    assert torch.equal(schedule_betas(cfg30), cosine_betas(30))
    old = schedule_betas(DiffusionConfig(diffusion_steps=30, beta_schedule="net"))
    assert torch.equal(old, net_betas(30))
    assert alpha_bars(old)[-1].item() > 0.02 and old[0].item() > 0.03
    new = schedule_betas(cfg30)
    assert alpha_bars(new)[-1].item() < 1e-5 and new[0].item() < 0.005


def test_operator_refuses_an_unknown_noise():
    with pytest.raises(Exception, match="noise must be one of"):
        GaussianMLP((4,), hidden=8, noise="free")


def test_the_unet_operator_takes_the_noise_options():
    """--set operator=unet gets the same T = 1 noise options as the built-in operators."""
    from gm import plugins

    info = tiny_images().info
    cfg = WalkbackConfig(operator="unet", unet_width=8, noise="learned", max_std=0.08)
    cfg = dataclasses.replace(cfg, init_std=0.05)
    op = plugins.component("transition_operators", "unet").build(cfg, info).eval()
    with torch.no_grad():
        std = op.heads(torch.rand(2, 1, 8, 8), 0)[1]
    assert op.noise == "learned" and op.max_std == 0.08
    torch.testing.assert_close(std, torch.full_like(std, 0.05 + cfg.min_std))
