"""ddpm against known answers: the cosine schedule, respacing, the ELBO of the exact reverse
of Gaussian data (which is the exact log-likelihood), the hybrid loss's stopped mean, the
EMA, and a small model on a 2-D toy beating a Gaussian fit."""

import math

import pytest
import torch
from torch import nn
from wb_testdata import training_steps

from gm.build import resolve
from gm.data import DataInfo, Dataset, load_dataset
from gm.engine import seed_everything
from gm.errors import GMError
from gm.testing import TrainerContract
from gm_walkback import ddpm, shared

LINE = DataInfo("gauss-1d", "vector", (1,))


def trainer(info=LINE, **overrides):
    cls, cfg = resolve("ddpm", info, overrides={"hidden": 16, **overrides})
    seed_everything(0)
    return cls(cfg, info, "cpu")


def test_cosine_alpha_bar_at_known_points():
    """abar_0 = 1, abar_T ~ 0 and abar_{T/2} = f(T/2) / f(0) of Nichol & Dhariwal's formula;
    the betas' cumulative product is that curve (none clipped before the last steps)."""
    T, s = 1000, 0.008
    betas = ddpm.cosine_betas(T, s)
    ab = torch.cumprod(1 - betas, 0)
    half = (
        math.cos((0.5 + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    )
    assert ab[T // 2 - 1].item() == pytest.approx(half, rel=1e-9)  # abar at t = T/2
    assert 1 - ab[0].item() < 1e-4 and ab[-1].item() < 1e-6
    assert (betas > 0).all() and betas.max().item() == pytest.approx(0.999)
    assert ab[249].item() == pytest.approx(
        math.cos((0.25 + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    )


@pytest.mark.parametrize("k", [1, 7, 50, 1000])
def test_strided_betas_recover_the_full_schedules_alpha_bars(k):
    T = 1000
    betas = ddpm.cosine_betas(T)
    ts = ddpm.strided(T, k)
    assert len(ts) == k and ts[-1] == T - 1 and (k == 1 or ts[0] == 0)
    assert (ts.diff() > 0).all()
    new = ddpm.respaced_betas(betas, ts)
    full = torch.cumprod(1 - betas, 0)[ts]
    torch.testing.assert_close(torch.cumprod(1 - new, 0), full, rtol=1e-9, atol=1e-15)
    if k == T:
        torch.testing.assert_close(new, betas, rtol=1e-9, atol=1e-12)
    with pytest.raises(GMError, match="--steps"):
        ddpm.strided(T, T + 1)


def _posterior_tables(betas):
    """The forward posterior's tables in float64, written out here from Ho et al. eq. 7."""
    ab = torch.cumprod(1 - betas, 0)
    ab_prev = torch.cat([torch.ones(1, dtype=ab.dtype), ab[:-1]])
    var = betas * (1 - ab_prev) / (1 - ab)
    c0 = betas * ab_prev.sqrt() / (1 - ab)
    return ab, var, c0


class ExactReverse(nn.Module):
    """The network whose ddpm reverse is the true reverse q(z_{t-1} | z_t) of data
    z_0 ~ N(mu, var): its x0 prediction is E[z_0 | z_t], and v puts the variance at
    beta~_t + c0_t^2 Var[z_0 | z_t] (the law of total variance). For predict="x0", F is
    the correction to the skip of a Gaussian with mean ``skip[0]`` and variance ``skip[1]``."""

    def __init__(self, betas, mu, var, predict, skip=(0.0, 1.0)):
        super().__init__()
        self.mu, self.var, self.predict, self.skip = mu, var, predict, skip
        self.betas = betas.double()
        self.ab, self.post_var, self.c0 = _posterior_tables(self.betas)

    def forward(self, z, t):
        z = z.double()
        t = torch.as_tensor(t).reshape(-1)
        ab, b = self.ab[t].view(-1, 1), self.betas[t].view(-1, 1)
        gain = ab.sqrt() * self.var / (ab * self.var + 1 - ab)
        x0 = self.mu + gain * (z - ab.sqrt() * self.mu)
        x0_var = self.var * (1 - ab) / (ab * self.var + 1 - ab)
        true_var = self.post_var[t].view(-1, 1) + self.c0[t].view(-1, 1) ** 2 * x0_var
        clipped = torch.cat([self.post_var[1:2], self.post_var[1:]])[t].view(-1, 1)
        top = b  # v = 1: beta_t for eps, the skip Gaussian's reverse variance for x0
        if self.predict == "x0":
            m, sv = self.skip
            denom = ab * sv + 1 - ab
            skip_var = sv * (1 - ab) / denom
            top = self.post_var[t].view(-1, 1) + self.c0[t].view(-1, 1) ** 2 * skip_var
            skip = m + ab.sqrt() * sv / denom * (z - ab.sqrt() * m)
            f = (x0 - skip) / skip_var.sqrt()
        else:
            f = (z - ab.sqrt() * x0) / (1 - ab).sqrt()
        v = (true_var.log() - clipped.log()) / (top.log() - clipped.log())
        return [f.float(), (2 * v - 1).float()]


@pytest.mark.parametrize("predict, exact_skip", [("x0", False), ("x0", True), ("eps", False)])
@pytest.mark.slow  # 17 s (durations run, 1 thread, load 4-7)
def test_the_bound_of_the_exact_reverse_is_the_exact_log_likelihood(predict, exact_skip):
    """With p(z_{t-1}|z_t) the true reverse of Gaussian data and q(z_T) ~ N(0, 1), the model's
    joint is q's, so the ELBO gap KL(q(z_1:T|x) || p(z_1:T|x)) is 0: ``evaluate``'s bound
    (every term, the decoder, the prior KL and the standardisation's Jacobian) is the exact
    mean log-density, and the reverse chain's samples are the data's law."""
    T = 100
    tr = trainer(diffusion_steps=T, predict=predict)
    shift, scale, m, s = 1.0, 3.5, 1.5, 0.7  # z_0 ~ N(1/7, 0.04): far from unit variance
    tr.standard.shift.fill_(shift)
    tr.standard.scale.fill_(scale)
    mu, var = (m - shift) / scale, (s / scale) ** 2
    skip = (mu, var) if exact_skip else (0.0, 1.0)  # the data's moments: F = 0 is exact
    tr.ema.skip_mean.fill_(skip[0])
    tr.ema.skip_var.fill_(skip[1])
    tr.ema.net = ExactReverse(ddpm.cosine_betas(T), mu, var, predict, skip)
    torch.manual_seed(0)
    x = torch.randn(20_000, 1) * s + m
    data = Dataset(LINE, {"train": x, "test": x})
    torch.manual_seed(1)
    out = tr.evaluate(data, "test", ddpm.DDPMEvaluateOptions(examples=0, samples=2000))
    exact = torch.distributions.Normal(m, s).log_prob(x).mean().item()
    assert out["lower_bound"] == pytest.approx(exact, abs=0.02), (out, exact)
    # a model one step off (the reverse of data with twice the variance) is clearly below
    tr.ema.net = ExactReverse(ddpm.cosine_betas(T), mu, 2 * var, predict, skip)
    worse = tr.evaluate(data, "test", ddpm.DDPMEvaluateOptions(examples=4000, samples=16))
    assert worse["lower_bound"] < exact - 0.05
    # the exact reverse's samples are N(m, s^2)
    tr.ema.net = ExactReverse(ddpm.cosine_betas(T), mu, var, predict, skip)
    if exact_skip:  # the Gaussian's exact reverse is F = 0, v = 1
        f, f_v = tr.ema.outputs(torch.randn(5, 1), 7)
        assert f.abs().max() < 1e-5 and (f_v - 1).abs().max() < 1e-4
    torch.manual_seed(2)
    with torch.no_grad():
        samples = tr.sample(20_000, tr.SampleOptions()).double()
    assert samples.mean().item() == pytest.approx(m, abs=0.03)
    assert samples.std().item() == pytest.approx(s, rel=0.03)


def test_the_kl_terms_vanish_where_the_reverse_is_the_posterior():
    """For a point mass z_0 = mu the true reverse is the forward posterior itself: every
    KL term (t >= 2) is 0, and so is the prior term up to abar_T (its closed form)."""
    T = 50
    rev = ddpm.DDPMReverse(
        ExactReverse(ddpm.cosine_betas(T), 0.8, 0.0, "x0"), ddpm.cosine_betas(T), (1,)
    )
    z0 = torch.full((64, 1), 0.8)
    torch.manual_seed(0)
    for i in range(1, T):
        z = rev.sample_z(z0, torch.randn_like(z0), i)
        kl = ddpm._term(rev, z0, z, i, *rev.outputs(z, i))
        assert kl.abs().max().item() < 1e-4, i
    ab = torch.cumprod(1 - ddpm.cosine_betas(T), 0)[-1].item()
    want = 0.5 * (ab * 0.8**2 + (1 - ab) - 1 - math.log(1 - ab))
    assert ddpm.prior_kl(rev, z0)[0].item() == pytest.approx(want, abs=1e-7)


@pytest.mark.parametrize("predict, skip", [("x0", "full"), ("x0", "diagonal"), ("eps", "none")])
def test_the_target_is_what_makes_the_x0_prediction_exact(predict, skip):
    info = DataInfo("three", "vector", (3,))
    tr = trainer(info, diffusion_steps=20, predict=predict, skip=skip)
    torch.manual_seed(0)
    z0, noise = torch.randn(32, 3) @ torch.randn(3, 3), torch.randn(32, 3)
    training_steps(tr, iter([z0] * 3), 3)  # sets the skip's Gaussian
    z0 = tr.standardize(z0)  # the model's space
    t = torch.randint(0, 20, (32,))
    rev = tr.model
    z = rev.sample_z(z0, noise, t)
    torch.testing.assert_close(rev.x0(z, t, rev.target(z0, noise, t)), z0, atol=1e-3, rtol=1e-3)
    if skip != "none":  # under its own Gaussian the target has unit variance
        assert 0.5 < rev.target(z0, noise, t).var().item() < 2.0


def test_the_hybrid_loss_learns_the_mean_from_l_simple_only():
    """L_vlb's mean is stopped (Nichol & Dhariwal): its gradient reaches the variance head
    and not the mean head; L_simple's reaches the mean head and not the variance head."""
    tr = trainer(diffusion_steps=20)
    torch.manual_seed(0)
    z0 = torch.randn(64, 1)
    t = torch.randint(0, 20, (64,))
    simple, vlb = ddpm.hybrid_terms(tr.model, z0, t, torch.randn_like(z0))
    mean_head, var_head = tr.model.net.heads
    g_mean = torch.autograd.grad(vlb.sum(), mean_head.weight, retain_graph=True, allow_unused=True)
    assert g_mean[0] is None or g_mean[0].abs().max() == 0
    assert torch.autograd.grad(vlb.sum(), var_head.weight, retain_graph=True)[0].abs().max() > 0
    assert torch.autograd.grad(simple.sum(), mean_head.weight, retain_graph=True)[0].abs().max() > 0
    g_var = torch.autograd.grad(simple.sum(), var_head.weight, allow_unused=True)[0]
    assert g_var is None or g_var.abs().max() == 0


def test_the_vlb_term_at_t_1_is_the_decoder_nll_and_in_bits():
    """hybrid_terms' L_t at t = 1 is -log N(z_0; mu, Sigma) per dimension in bits; later
    steps give the KL (in bits as well)."""
    tr = trainer(diffusion_steps=20)
    rev = tr.model
    torch.manual_seed(0)
    z0, noise = torch.randn(8, 1), torch.randn(8, 1)
    for i in (0, 5):
        t = torch.full((8,), i)
        _, vlb = ddpm.hybrid_terms(rev, z0, t, noise)
        z = rev.sample_z(z0, noise, i)
        with torch.no_grad():
            mean, log_var = rev.mean_log_var(z, i, *rev.outputs(z, i))
            if i == 0:
                want = -torch.distributions.Normal(mean, (0.5 * log_var).exp()).log_prob(z0)
            else:
                qm, qv = rev.posterior(z0, z, i)
                want = torch.distributions.kl_divergence(
                    torch.distributions.Normal(qm, qv.sqrt()),
                    torch.distributions.Normal(mean, (0.5 * log_var).exp()),
                )
        torch.testing.assert_close(vlb.detach(), want[:, 0] / math.log(2), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("skip", ["diagonal", "full"])
def test_the_skip_is_the_gaussian_of_all_the_data_seen(skip):
    """The x0 skip's Gaussian: the mean and (diagonal or full) covariance of every
    standardised batch so far, in the reverse and its EMA; the full one after its warm-up
    on the diagonal (fewer rows than 2 D)."""
    tr = trainer(DataInfo("two", "vector", (2,)), diffusion_steps=10, lr=0.0, skip=skip)
    assert tr.skip_warmup == 1  # 2 D = 4 rows: the first batch
    torch.manual_seed(0)
    mix = torch.tensor([[1.0, 0.0], [2.0, 3.0]])
    a, b = torch.randn(64, 2) @ mix, torch.randn(32, 2) + 2
    training_steps(tr, iter([a, b]), 2)
    z = tr.standardize(torch.cat([a, b])).double()
    cov = torch.cov(z.T, correction=0)
    for rev in (tr.model, tr.ema):
        torch.testing.assert_close(rev.skip_mean.double(), z.mean(0))
        if skip == "full":
            u, lam = rev.skip_axes.double(), rev.skip_var.double()
            torch.testing.assert_close(u @ torch.diag(lam) @ u.T, cov, rtol=1e-4, atol=1e-6)
        else:
            torch.testing.assert_close(rev.skip_var.double(), cov.diagonal(), rtol=1e-4, atol=1e-6)


def test_the_full_skip_is_the_gaussians_posterior_mean():
    """With F = 0 the x0 prediction is E[z_0 | z_t] of the full-covariance Gaussian G:
    mu + sqrt(abar) S (abar S + (1 - abar) I)^-1 (z_t - sqrt(abar) mu)."""
    rev = ddpm.DDPMReverse(nn.Identity(), ddpm.cosine_betas(20), (2,), "x0", "full")
    mu, cov = torch.tensor([0.5, -1.0]), torch.tensor([[2.0, 1.2], [1.2, 1.0]])
    lam, axes = torch.linalg.eigh(cov)
    rev.skip_mean.copy_(mu)
    rev.skip_var.copy_(lam)
    rev.skip_axes.copy_(axes)
    z = torch.randn(6, 2)
    for i in (0, 7, 19):
        ab = rev.alpha_bar[i]
        gain = ab.sqrt() * cov @ torch.linalg.inv(ab * cov + (1 - ab) * torch.eye(2))
        want = mu + (z - ab.sqrt() * mu) @ gain.T
        torch.testing.assert_close(rev.x0(z, i, torch.zeros_like(z)), want, rtol=1e-5, atol=1e-5)
        # v = 1's variance: the diagonal of G's reverse covariance beta~ + c0^2 Cov[z_0|z_t]
        post = cov - gain @ (ab * cov + (1 - ab) * torch.eye(2)) @ gain.T
        top = rev.post_var[i] + rev.post_c0[i] ** 2 * post.diagonal()
        torch.testing.assert_close(rev.log_var_top(z, i)[0], top.log(), rtol=1e-4, atol=1e-5)


def test_ema_follows_the_weights_with_the_warmed_up_decay():
    tr = trainer(diffusion_steps=10, ema_decay=0.9)
    x = torch.randn(64, 1)
    tr.step = 0
    tr.training_step(x)  # decay min(0.9, 1/10): the EMA is mostly the new weights
    before = [p.detach().clone() for p in tr.ema.parameters()]
    tr.step = 30  # decay min(0.9, 31/40) = 0.775
    tr.training_step(x)
    for e, old, p in zip(tr.ema.parameters(), before, tr.model.parameters(), strict=True):
        torch.testing.assert_close(e, 0.775 * old + 0.225 * p.detach())
    tr.step = 10_000
    assert tr.ema_decay() == 0.9


def test_respaced_sampling_calls_the_network_at_the_strided_timesteps():
    tr = trainer(diffusion_steps=100)
    calls = []

    class Recorder(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, z, t):
            calls.append(int(torch.as_tensor(t).reshape(-1)[0]))
            return self.net(z, t)

    tr.ema.net = Recorder(tr.ema.net)
    with torch.no_grad():
        out = tr.sample(5, tr.SampleOptions(steps=10))
    assert out.shape == (5, 1) and torch.isfinite(out).all()
    assert calls == ddpm.strided(100, 10).flip(0).tolist()
    with pytest.raises(GMError, match="--steps"):
        tr.sample(5, tr.SampleOptions(steps=101))


@pytest.mark.slow  # 10 s (durations run, 1 thread, load 4-7)
def test_a_small_ddpm_beats_a_gaussian_fit_on_a_2d_toy():
    data = load_dataset("swiss-roll", options={"n": 2048})
    tr = trainer(data.info, hidden=64, diffusion_steps=50, batch_size=256)
    training_steps(tr, data.batches("train", 256, seed=0), 700)
    tr.train(False)
    x = data.tensor("test")[:1000]
    torch.manual_seed(0)
    gauss = torch.distributions.MultivariateNormal(x.mean(0), torch.cov(x.T)).sample((1000,))
    with torch.no_grad():
        samples = tr.sample(1000, tr.SampleOptions())
    model, fit = shared.energy_distance(samples, x), shared.energy_distance(gauss, x)
    assert model < 0.6 * fit, (model, fit)


def test_image_bits_per_dim_is_walkbacks_convention():
    """On uniform 8-bit pixels: bits/dim = -(L - D ln 256) / (D ln 2) of the bound L, and
    no bound beats their entropy, 8 bits/dim."""
    info = DataInfo("uniform-8bit", "image", (1, 4, 4))
    g = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (256, 1, 4, 4), generator=g, dtype=torch.uint8)
    data = Dataset(info, {"train": raw, "test": raw})
    tr = trainer(info, diffusion_steps=20)
    training_steps(tr, iter([data.decode(raw).float()] * 30), 30)
    out = tr.evaluate(data, "test", ddpm.DDPMEvaluateOptions(examples=128, trajectories=2))
    want = -(out["lower_bound"] - 16 * math.log(256)) / (16 * math.log(2))
    assert out["bound_bits_per_dim"] == pytest.approx(want, rel=1e-12)
    assert out["bound_bits_per_dim"] > 8.0 and out["examples"] == 128


def test_an_operator_that_is_not_a_ddpm_reverse_is_one_error():
    with pytest.raises(GMError, match="operator=unet"):
        trainer(operator="net-mlp")
    with pytest.raises(GMError, match="not a ddpm reverse"):
        trainer(operator="gaussian-mlp")


class TestDDPMToy(TrainerContract):
    model = "ddpm"
    dataset = "swiss-roll"
    data_options = {"n": 512}
    overrides = {"hidden": 32, "batch_size": 64, "diffusion_steps": 20}


class TestDDPMImagesUNet(TrainerContract):
    model = "ddpm"
    dataset = "wb-tiny-images"
    overrides = {"operator": "unet", "unet_width": 8, "batch_size": 16, "diffusion_steps": 10}


def test_the_skip_keeps_float32_under_bf16_autocast():
    """The engine trains under bf16 autocast on GPUs; the skip's rotations must not drop to
    bf16 (its noise at t = 1 is ~0.006, below bf16's resolution of values near 1)."""
    rev = ddpm.DDPMReverse(nn.Identity(), ddpm.cosine_betas(20), (16,), "x0", "full")
    torch.manual_seed(0)
    axes, _ = torch.linalg.qr(torch.randn(16, 16))
    rev.skip_axes.copy_(axes)
    rev.skip_var.copy_(torch.rand(16) + 0.1)
    z, f = torch.randn(4, 16), torch.randn(4, 16)
    want = rev.x0(z, 0, f)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = rev.x0(z, 0, f)
        top = rev.log_var_top(z, 0)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(top, rev.log_var_top(z, 0), rtol=1e-6, atol=1e-6)
