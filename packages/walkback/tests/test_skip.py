"""The skip operator (gm_walkback.operators, ``skip="full" | "diagonal"``): a residual F on the
heated reversible chain of a Gaussian G fitted to the data. Known answers: with F = 0 its
T = 1 chain leaves G invariant, heated its stationary law is G's covariance times T, and its
log-densities are the closed-form Gaussian's (the rotation to G's axes costs nothing); after
real training its T = 1 noise stays under G's and heats exactly as T."""

import dataclasses
import math

import pytest
import torch
from torch import distributions as D
from wb_testdata import tiny_images, training_steps

from gm.data import DataInfo
from gm_walkback import recipes, shared
from gm_walkback.operators import GaussianMLP
from gm_walkback.walkback import WalkbackConfig, WalkbackTrainer


def _gaussian(dims: int = 3, seed: int = 0):
    """(mean, covariance, its eigenvalues and axes) of a random correlated Gaussian."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dims, dims, generator=g, dtype=torch.float64)
    cov = a @ a.T + 0.1 * torch.eye(dims, dtype=torch.float64)
    mean = torch.randn(dims, generator=g, dtype=torch.float64)
    lam, axes = torch.linalg.eigh(cov)
    return mean, cov, lam, axes


def _operator(skip="full", noise="fixed", c=0.25, dims=3, seed=0, min_std=0.0):
    torch.manual_seed(seed)
    op = GaussianMLP((dims,), hidden=16, noise=noise, skip=skip, skip_c=c, min_std=min_std)
    mean, cov, lam, axes = _gaussian(dims, seed)
    if skip == "diagonal":
        op.set_skip(mean.float(), cov.diagonal().float(), None)
        return op.eval(), mean, torch.diag(cov.diagonal())
    op.set_skip(mean.float(), lam.float(), axes.float())
    return op.eval(), mean, cov


def _chain(op, s, temperature, steps):
    with torch.no_grad():
        for _ in range(steps):
            s = op.distribution(s, temperature, 0).sample()
    return s


@pytest.mark.parametrize("skip", ["full", "diagonal"])
def test_t1_chain_with_f_zero_leaves_g_invariant(skip):
    op, mean, cov = _operator(skip)
    torch.manual_seed(1)
    g = D.MultivariateNormal(mean, cov)
    s = _chain(op, g.sample((40_000,)).float(), 1.0, 30)
    torch.testing.assert_close(s.double().mean(0), mean, atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(s.double().T), cov, atol=0.1 * cov.abs().max(), rtol=0)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_chain_from_far_away_converges_to_g_heated_by_t(temperature):
    """From a point far from G the chain forgets it: after many steps its law is
    N(mu, T Sigma) (stationary variance T lam along every axis), at c = 0.25."""
    op, mean, cov = _operator("full", c=0.25)
    torch.manual_seed(2)
    s = torch.full((40_000, 3), 10.0)
    s = _chain(op, s, temperature, 120)  # 0.75^60 ~ 3e-8 of the start is left
    torch.testing.assert_close(s.double().mean(0), mean, atol=0.05 * temperature, rtol=0)
    want = temperature * cov
    torch.testing.assert_close(torch.cov(s.double().T), want, atol=0.06 * want.abs().max(), rtol=0)


@pytest.mark.parametrize("skip", ["full", "diagonal"])
@pytest.mark.parametrize("noise", ["fixed", "learned", "network"])
def test_log_prob_is_the_closed_form_gaussian(skip, noise):
    """p_T(s'|s) = N(mu + sqrt(1 - c)(s - mu) + U diag(sqrt(c lam)) U^T F(s), U diag(T (c lam g
    + min_std^2)) U^T) with g = sigmoid(raw (+ U^T F_sigma(s) for noise="network")): the
    operator's log_prob, mean and marginal std against torch's full-covariance normal, with F
    and g away from their starts (a wrong rotation or scale shows here)."""
    c, temperature, floor = 0.3, 2.5, 0.05
    op, mean, _ = _operator(skip, noise=noise, c=c, min_std=floor)
    with torch.no_grad():
        for head in op.net.heads:
            for p in head.parameters():
                p.normal_(0, 0.5)
        if noise != "fixed":
            op.raw_gain.normal_(0, 1)
    lam, axes = op.skip_var.double(), op.skip_axes.double() if skip == "full" else None
    if axes is None:
        axes = torch.eye(3, dtype=torch.float64)
    torch.manual_seed(3)
    s, x = torch.randn(5, 3), torch.randn(5, 3)
    with torch.no_grad():
        f, f_sigma = (h.double() for h in op.net(s, 0))
        dist = op.distribution(s, temperature, 0)
        got = dist.log_prob(x).double()
        drawn = torch.stack([dist.sample() for _ in range(4000)]).double()
        raw = op.raw_gain.double() if noise != "fixed" else torch.full((3,), math.inf)
    g = torch.sigmoid(raw + f_sigma @ axes if noise == "network" else raw.expand(5, 3))
    assert dist.batch_shape == (5,) and dist.event_shape == (3,)
    centre = mean + math.sqrt(1 - c) * (s.double() - mean) + (f @ axes) * (c * lam).sqrt() @ axes.T
    cov = axes @ torch.diag_embed(temperature * (c * lam * g + floor**2)) @ axes.T
    want = D.MultivariateNormal(centre, cov).log_prob(x.double())
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)
    want = D.MultivariateNormal(centre, cov).entropy()
    torch.testing.assert_close(dist.entropy().double(), want, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(dist.mean.double(), centre, atol=1e-5, rtol=1e-5)
    var = cov.diagonal(dim1=-2, dim2=-1)
    torch.testing.assert_close(dist.stddev.double(), var.sqrt(), atol=1e-6, rtol=1e-5)
    spread = var.max().sqrt().item()
    torch.testing.assert_close(drawn.mean(0), centre, atol=0.1 * spread, rtol=0)


def test_operator_starts_as_gs_chain_and_tmax_is_one_over_c():
    op = GaussianMLP((4,), hidden=8, noise="learned", skip="full", skip_c=1 / 32)
    assert op.skip_tmax == 32.0
    s = torch.randn(6, 4)
    with torch.no_grad():
        mean, std = op.heads(s, 0)
    torch.testing.assert_close(mean, math.sqrt(1 - 1 / 32) * s)  # F = 0: G = N(0, I) yet
    torch.testing.assert_close(std, torch.full_like(std, math.sqrt(0.95 / 32 + 1e-8)))
    assert GaussianMLP((4,), hidden=8).skip_tmax == 0.0
    # a state-dependent gain starts at the same place (F's variance head at 0 too)
    op = GaussianMLP((4,), hidden=8, noise="network", skip="full", skip_c=1 / 32)
    with torch.no_grad():
        torch.testing.assert_close(op.heads(s, 0)[1], std)
    with pytest.raises(Exception, match="skip must be one of"):
        GaussianMLP((4,), hidden=8, skip="half")
    with pytest.raises(Exception, match="skip_c"):
        GaussianMLP((4,), hidden=8, skip="full", skip_c=1.5)


# --- a short real training run --------------------------------------------------------------
DEFAULT = {k: recipes.CPU_IMAGE[k] for k in ("skip", "noise")}  # the CPU image default's


def test_the_cpu_image_default_is_the_full_skip_with_a_learned_gain(monkeypatch):
    monkeypatch.setattr(shared, "cuda_available", lambda: False)
    cfg = WalkbackTrainer.default_config(DataInfo("mnist", "image", (1, 28, 28)))
    assert (cfg.skip, cfg.noise, cfg.network, cfg.skip_c) == ("full", "learned", "mlp", 1 / 8)
    monkeypatch.setattr(shared, "cuda_available", lambda: True)  # the paper's, on a GPU
    cfg = WalkbackTrainer.default_config(DataInfo("mnist", "image", (1, 28, 28)))
    assert (cfg.skip, cfg.noise, cfg.network) == ("none", "network", "conv")


def _trained(minibatches: int = 30, **kw) -> tuple[WalkbackTrainer, torch.Tensor]:
    torch.manual_seed(0)
    data = tiny_images()
    cfg = WalkbackConfig(
        network="mlp",
        hidden=64,
        batch_size=64,
        lr=3e-3,
        per_step_norm=True,
        norm="batch",
        skip_c=1 / 8,
        **{**DEFAULT, **kw},
    )
    trainer = WalkbackTrainer(cfg, data.info)
    x = data.decode(data.raw("train")).float()
    gen = torch.Generator().manual_seed(0)
    batches = (x[torch.randint(0, len(x), (64,), generator=gen)] for _ in range(minibatches))
    training_steps(trainer, batches, minibatches)
    test = trainer.prepare(data.decode(data.raw("test")))
    return trainer, test


def test_trained_noise_stays_under_gs_and_heats_exactly_as_t():
    """After real training (the walk heats to T = 4 with c = 1/8): the T = 1 noise per axis
    is at most c lam (G's own step), it was learned (moved off its start), and the noise at
    every level is exactly T_l times the T = 1 noise, whatever the per-step parameters
    learned (a noise that read the level would differ per level)."""
    trainer, x = _trained()
    op = trainer.operator.eval()
    walk = trainer.walk(0)
    assert trainer.heat == 3 and walk.temperatures == (1.0, 2.0, 4.0)
    assert op.step_dependent  # per-step parameters exist, and F uses them
    c, lam = op.skip_c, op.skip_var
    with torch.no_grad():
        var1 = op.heads(x, 0)[1].pow(2)
        assert (var1 <= c * lam + op.min_std**2 + 1e-9).all()
        gain = var1 / (c * lam)
        assert (gain - 0.95).abs().max() > 0.01  # the gain was trained
        for temp, level in zip(walk.temperatures, walk.levels, strict=True):
            dist = op.distribution(x, temp, level)
            torch.testing.assert_close(dist.base.variance, temp * var1)
        means = [op.heads(x, lv)[0] for lv in walk.levels]
    assert not torch.allclose(means[0], means[-1])  # F's mean does read the level


def test_the_paper_operators_noise_does_not_heat_as_t_after_training():
    """The fault the skip's gain removes, seen by the same measure: F's variance head with
    per-step parameters (the paper's operator) learns a noise per level that is not T_l times
    its T = 1 noise."""
    trainer, x = _trained(skip="none", noise="network", tmax=4.0, init_std=0.05)
    op, walk = trainer.operator.eval(), trainer.walk(0)
    with torch.no_grad():
        var1 = op.distribution(x, 1.0, 0).variance
        ratios = [
            (op.distribution(x, t, lv).variance / var1).median().item()
            for t, lv in zip(walk.temperatures, walk.levels, strict=True)
        ]
    assert max(abs(r - t) / t for r, t in zip(ratios, walk.temperatures, strict=True)) > 0.05


def test_skip_follows_the_training_data_and_round_trips(tmp_path):
    """G is the data's: after training its mean and covariance are those of every dequantised
    batch seen; a saved run loads (safetensors) with the same G, p*, moments and densities."""
    from gm import checkpoint
    from gm.engine import train

    run = train(
        "walkback",
        "wb-tiny-images",
        steps=20,
        out=tmp_path / "run",
        overrides={"hidden": 16, "batch_size": 32, "network": "mlp", "skip": "full"},
        device="cpu",
        progress=False,
        seed=0,
    )
    assert not list(run.rglob("*.pt")) and not list(run.rglob("*.pkl"))
    loaded = checkpoint.load(run)
    op = loaded.operator
    assert op.skip == "full" and loaded.stats.full
    assert loaded.moments.count.item() == 20 * 32
    data = tiny_images()
    x = loaded.prepare(data.decode(data.raw("test"))[:8])
    again = checkpoint.load(run)
    loaded.train(False)
    again.train(False)
    with torch.no_grad():
        a = loaded.sampler.distribution(x, 2.0, 1).log_prob(x)
        b = again.sampler.distribution(x, 2.0, 1).log_prob(x)
        pa, pb = loaded.prior().log_prob(x), again.prior().log_prob(x)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(pa, pb)


@pytest.mark.parametrize("skip", ["diagonal", "full"])
def test_g_is_the_gaussian_of_the_training_batches(skip):
    """G follows the moments of every (dequantised) batch seen: the diagonal every step, the
    full covariance from the warmup (2 D examples: 64 x 2 / 64 = 2 steps here) on."""
    torch.manual_seed(0)
    data = tiny_images()
    cfg = WalkbackConfig(network="mlp", hidden=16, batch_size=64, skip=skip)
    trainer = WalkbackTrainer(cfg, data.info)
    assert trainer.skip_warmup == 2
    x = data.decode(data.raw("train")).float()
    batches = [x[i * 64 : (i + 1) * 64] for i in range(3)]
    training_steps(trainer, iter(batches), 3)
    op, seen = trainer.operator, torch.cat(batches).flatten(1).double()
    assert trainer.moments.count.item() == len(seen)
    mean, cov = seen.mean(0), torch.cov(seen.T, correction=0)
    torch.testing.assert_close(op.skip_mean.flatten().double(), mean, atol=4e-3, rtol=0)
    if skip == "full":
        got = (op.skip_axes * op.skip_var) @ op.skip_axes.T
        torch.testing.assert_close(got.double(), cov, atol=4e-3, rtol=0)
        # exactly the moments' eigendecomposition (set at the warmup step, the last one)
        _, lam, axes = trainer.moments.gaussian(full=True)
        torch.testing.assert_close(op.skip_var, lam)
    else:
        torch.testing.assert_close(op.skip_var.double(), cov.diagonal(), atol=4e-3, rtol=0)


def test_full_pstar_is_the_accumulated_gaussian_of_the_walk_ends():
    """With the full skip p* has the full covariance of every s_K so far (its log-density
    against torch's full-covariance normal of the same moments)."""
    trainer, x = _trained(minibatches=3)
    st = trainer.stats
    # the walks of the first 2 steps (the warmup, on G's diagonal) are forgotten, and until
    # 2 D = 128 walk ends are in p* is diagonal along G's axes U, with the walk ends' variances
    assert trainer.skip_warmup == 2 and st.pstar_count.item() == 64
    mean = (st.pstar_sum / st.pstar_count).flatten()
    cov = st.pstar_sum2 / st.pstar_count - torch.outer(mean, mean)
    u = trainer.operator.skip_axes.double()
    along = D.MultivariateNormal(mean, u @ torch.diag(torch.diag(u.T @ cov @ u)) @ u.T)
    want = along.log_prob(x.flatten(1).double())
    torch.testing.assert_close(trainer.prior().log_prob(x).double(), want, atol=1e-2, rtol=1e-4)
    trainer, x = _trained(minibatches=6)
    st = trainer.stats
    assert st.pstar_count.item() == (6 - 2) * 64
    mean = (st.pstar_sum / st.pstar_count).flatten()
    cov = st.pstar_sum2 / st.pstar_count - torch.outer(mean, mean)
    lam, axes = torch.linalg.eigh(cov)
    cov = (axes * lam.clamp_min(1e-6 * lam.mean())) @ axes.T
    want = D.MultivariateNormal(mean, cov).log_prob(x.flatten(1).double())
    torch.testing.assert_close(trainer.prior().log_prob(x).double(), want, atol=1e-2, rtol=1e-4)
    torch.testing.assert_close(st.pstar_var.flatten().double(), cov.diagonal(), atol=1e-6, rtol=0)


def test_full_skip_refuses_ema_pstar_and_linear_refuses_the_skip():
    data = tiny_images()
    cfg = WalkbackConfig(network="mlp", hidden=8, skip="full", pstar_stats="ema")
    with pytest.raises(Exception, match="pstar_stats"):
        WalkbackTrainer(cfg, data.info)
    lin = dataclasses.replace(cfg, network="linear", pstar_stats="accumulate")
    with pytest.raises(Exception, match="skip=none"):
        WalkbackTrainer(lin, data.info)
