"""NET (the diffusion baseline) against identities: its training loss is the negative bound
less the prior term (so the loss trains what evaluate reports), and its log-likelihood in
data units carries the standardisation's Jacobian with the right sign."""

import copy
import itertools
import math

import torch
from wb_testdata import training_steps

from gm.build import resolve
from gm.data import DataInfo, Dataset
from gm.engine import seed_everything
from gm_walkback.diffusion import DiffusionEvaluateOptions

INFO = DataInfo("net-test", "vector", (2,))


def net(**overrides):
    cls, cfg = resolve(
        "diffusion",
        INFO,
        overrides={"hidden": 16, "diffusion_steps": 4, "batch_size": 4096, **overrides},
    )
    seed_everything(0)
    return cls(cfg, INFO, "cpu")


def points(n=4096, scale=1.0):
    torch.manual_seed(0)
    return (torch.randn(n, 2) * torch.tensor([0.5, 1.5]) + 0.3) * scale


def test_training_loss_is_the_negative_bound_less_the_prior_kl():
    """E[T KL_t (t >= 2) + -log p(z0|z1)] = -E[L] - KL(q(z_T|z0) || N(0, 1)), in standardised
    units (L from evaluate, less its Jacobian); lr = 0 keeps the reverse fixed."""
    trainer = net(lr=0.0)
    x = points()
    torch.manual_seed(1)
    losses = [m["loss"].item() for m in training_steps(trainer, itertools.repeat(x), 40)]
    data = Dataset(INFO, {"train": x, "test": x})
    torch.manual_seed(2)
    out = trainer.evaluate(
        data, "test", DiffusionEvaluateOptions(trajectories=1, examples=0, samples=16)
    )
    jac = -2 * trainer.standard.scale.log().item()
    z0 = trainer.standardize(x)
    ab = trainer.model.alpha_bar[-1]
    kl_prior = (0.5 * (ab * z0**2 + (1 - ab) - 1 - torch.log(1 - ab))).sum(1).mean().item()
    want = -(out["lower_bound"] - jac) - kl_prior
    assert abs(sum(losses) / len(losses) - want) < 0.1, (sum(losses) / len(losses), want)


def test_log_likelihood_carries_the_standardisation_jacobian():
    """The same model on data scaled by 2 (and its standardiser scaled with it) sees the same
    standardised points: its log-density is lower by D ln 2 exactly."""
    a = net()
    a.training_step(points())  # measures the standardiser
    b = copy.deepcopy(a)
    b.standard.shift.mul_(2)
    b.standard.scale.mul_(2)
    opts = DiffusionEvaluateOptions(trajectories=4, examples=256, samples=16)
    x = points(256)
    res = []
    for trainer, data in ((a, x), (b, 2 * x)):
        torch.manual_seed(3)
        res.append(trainer.evaluate(Dataset(INFO, {"train": data, "test": data}), "test", opts))
    assert math.isclose(
        res[1]["log_likelihood"], res[0]["log_likelihood"] - 2 * math.log(2), abs_tol=1e-4
    )


def test_reverse_variance_coefficient_is_scaled_by_one_over_sqrt_t():
    """NET's code: var = sigmoid(F_sigma / sqrt(T) + logit(beta_t))."""
    trainer = net(diffusion_steps=16)
    m = trainer.model
    with torch.no_grad():
        for p in m.net.heads[1].parameters():
            p.zero_()
        m.net.heads[1].bias.fill_(2.0)
        _, std = m.heads(torch.zeros(1, 2), 5)
    beta = m.betas[5]
    want = torch.sigmoid(2.0 / 4 + torch.log(beta) - torch.log1p(-beta)).sqrt()
    assert torch.allclose(std, want.expand_as(std))


def test_dequantisation_stays_in_each_8_bit_cell():
    """k -> (k + U) / 256 in [k/256, (k+1)/256), for NET and walkback alike."""
    info = DataInfo("cells", "image", (1, 4, 4))
    k = torch.arange(16, dtype=torch.float64).view(1, 1, 4, 4) * 17  # 0 .. 255
    x = (k / 255).float().repeat(64, 1, 1, 1)
    for model in ("diffusion", "walkback"):
        cls, cfg = resolve(model, info, overrides={"hidden": 8})
        trainer = cls(cfg, info, "cpu")
        z = trainer.prepare(x).double() * 256
        assert ((z >= k) & (z < k + 1)).all(), model
        assert (z - k).std() > 0.2  # uniform noise, not a constant offset


def test_bits_per_dim_cannot_beat_uniform_8_bit_noise():
    """On independent uniform 8-bit pixels no model's cross-entropy is below their entropy,
    8 bits/dim (IS is a lower bound on the likelihood in expectation, the bound lower still),
    and bits/dim is -(LL - D ln 256) / (D ln 2): the continuous density of the dequantised
    points plus the log-volume of a 1/256 cell."""
    from gm_walkback.diffusion import DiffusionEvaluateOptions as Opts

    info = DataInfo("uniform-8bit", "image", (1, 4, 4))
    g = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (512, 1, 4, 4), generator=g, dtype=torch.uint8)
    cls, cfg = resolve("diffusion", info, overrides={"hidden": 16, "diffusion_steps": 4})
    seed_everything(0)
    trainer = cls(cfg, info, "cpu")
    data = Dataset(info, {"train": raw, "test": raw})
    trainer.training_step(data.decode(raw[:256]).float())  # measures the standardiser
    torch.manual_seed(4)
    out = trainer.evaluate(data, "test", Opts(trajectories=4, examples=256))
    dims = 16
    want = -(out["log_likelihood"] - dims * math.log(256)) / (dims * math.log(2))
    assert math.isclose(out["bits_per_dim"], want, rel_tol=1e-9)
    assert out["bits_per_dim"] > 7.95, out
    assert out["bound_bits_per_dim"] >= out["bits_per_dim"] - 1e-6


def test_reverse_mean_is_the_shrunk_state_plus_the_scaled_network_mean():
    """NET's code: mu = z_t sqrt(1 - beta_t) + F_mu sqrt(beta_t)."""
    trainer = net(diffusion_steps=16)
    m = trainer.model
    with torch.no_grad():
        for p in m.net.heads[0].parameters():
            p.zero_()
        m.net.heads[0].bias.fill_(0.7)
        z = torch.randn(3, 2)
        mean, _ = m.heads(z, 5)
    beta = m.betas[5]
    assert torch.allclose(mean, z * (1 - beta).sqrt() + 0.7 * beta.sqrt(), atol=1e-6)


def test_net_beta_schedule_and_default_networks():
    """beta_t = 1 / linspace(T, 2, T)_t with beta_1 + 1e-3 (NET's baseline); images up to
    16x16 get the MLP, larger ones the conv net."""
    from gm_walkback.diffusion import DiffusionTrainer, net_betas

    want = torch.tensor([0.25 + 1e-3, 0.3, 0.375, 0.5], dtype=torch.float64)
    assert torch.allclose(net_betas(4), want)
    four = net(diffusion_steps=4, beta_schedule="net").model.betas.double()
    assert torch.allclose(four, want, atol=1e-7)
    small = DiffusionTrainer.default_config(DataInfo("d", "image", (1, 16, 16)))
    assert (small.network, small.hidden) == ("mlp", 1200)  # the paper's MNIST MLP width
    # hidden = 0 means "by device": 256 on a CPU, 4096 on a GPU (gm.build resolves it)
    assert DiffusionTrainer.default_config(INFO).hidden == 0
    assert [resolve("diffusion", INFO, d)[1].hidden for d in ("cpu", "cuda")] == [256, 4096]
    big = DiffusionTrainer.default_config(DataInfo("m", "image", (1, 28, 28)))
    assert (big.network, big.conv_channels) == ("conv", (16, 32))
