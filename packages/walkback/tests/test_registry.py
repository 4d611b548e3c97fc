"""Both trainers take their transition operator from the registry by name: the built-in names
a config's defaults stand for, and an operator that has only ``distribution`` (no heads, no
kind, no network), registered by a plugin object here, trains, samples and evaluates."""

import math

import pytest
import torch
from torch import distributions as D
from torch import nn

import gm
from gm import plugins
from gm.build import resolve
from gm.data import load_dataset
from gm.engine import seed_everything
from gm.errors import GMError
from gm.specs import TransitionOperatorSpec
from gm_walkback import diffusion, operators, walkback


class PlainGaussian(nn.Module):
    """N(s + g(s), (T c)^2): only ``distribution``, as docs/plugins.md asks of an operator.
    Built calls are counted, so a test can tell it was the registry that built it."""

    built = 0

    @classmethod
    def build(cls, config, info):
        cls.built += 1
        return cls(math.prod(info.shape))

    def __init__(self, dim: int):
        super().__init__()
        self.g = nn.Sequential(nn.Linear(dim, 16), nn.Tanh(), nn.Linear(16, dim))
        self.log_c = nn.Parameter(torch.full((), math.log(0.3)))

    def distribution(self, s, temperature, step):
        mean = s + self.g(s.flatten(1)).view_as(s)
        std = (self.log_c.exp() * temperature).expand_as(s)
        return D.Independent(D.Normal(mean, std, validate_args=False), s.dim() - 1)


class _Plugin:
    @gm.hookimpl
    def gm_transition_operators(self):
        return [TransitionOperatorSpec("test-plain-gaussian", f"{__name__}:PlainGaussian", "")]


@pytest.fixture(scope="module", autouse=True)
def registered():
    pm = plugins.manager()
    plugin = _Plugin()
    pm.register(plugin, name="wb-test-operators")
    plugins.registry.cache_clear()
    yield
    pm.unregister(plugin)
    plugins.registry.cache_clear()


def trainer_for(model, dataset="swiss-roll", **overrides):
    data = load_dataset(dataset, options={"n": 256})
    cls, cfg = resolve(model, data.info, overrides={"batch_size": 64, **overrides})
    seed_everything(0)
    return cls(cfg, data.info, "cpu"), data


@pytest.mark.parametrize(
    "model, overrides, cls",
    [
        ("walkback", {"hidden": 16}, operators.GaussianMLP),
        ("walkback", {"operator": "bernoulli", "hidden": 16}, operators.BernoulliMLP),
        ("walkback", {"network": "linear"}, operators.GaussianLinear),
        ("walkback", {"operator": "gaussian-linear"}, operators.GaussianLinear),
        ("diffusion", {"hidden": 16, "diffusion_steps": 4}, diffusion.NETReverseMLP),
    ],
)
def test_the_default_names_build_todays_operators(model, overrides, cls):
    trainer, _ = trainer_for(model, **overrides)
    op = trainer.operator if model == "walkback" else trainer.model
    assert type(op) is cls


OWN = {  # every operator this plugin registers, with a config and data it fits
    "gaussian-mlp": ("walkback", (2,), {"hidden": 8}),
    "gaussian-linear": ("walkback", (2,), {}),
    "gaussian-conv": ("walkback", (1, 8, 8), {"conv_channels": (4,), "fc_layers": 1}),
    "bernoulli-mlp": ("walkback", (1, 4, 4), {"hidden": 8}),
    "bernoulli-conv": ("walkback", (1, 8, 8), {"conv_channels": (4,), "fc_layers": 1}),
    "net-mlp": ("diffusion", (2,), {"hidden": 8, "diffusion_steps": 4}),
    "net-conv": ("diffusion", (1, 8, 8), {"conv_channels": (4,), "diffusion_steps": 4}),
}


def test_every_registered_operator_builds_through_the_registry_and_meets_the_contract():
    from gm.testing import check_transition_operator

    mine = {
        n
        for n, r in plugins.registry("transition_operators").items()
        if r.plugin != "wb-test-operators"
    }
    assert set(OWN) <= mine
    for name, (model, shape, fields) in OWN.items():
        info = gm.data.DataInfo("t", "image" if len(shape) == 3 else "vector", shape)
        config = {"walkback": walkback.WalkbackConfig, "diffusion": diffusion.DiffusionConfig}
        cfg = config[model](**fields, fc_width=16) if "conv" in name else config[model](**fields)
        op = plugins.component("transition_operators", name).build(cfg, info).eval()
        s = torch.rand(3, *shape).round() if name.startswith("bernoulli") else torch.rand(3, *shape)
        with torch.no_grad():
            check_transition_operator(op, s)


def test_the_mnist_recipes_name_the_conv_and_mlp_operators():
    """The recipe picks the table's network (for a CUDA device; the CPU setup's MLP on the
    CPU); the family name follows it."""
    info = gm.data.DataInfo("mnist-5k", "image", (1, 28, 28))
    cfg = resolve("walkback", info, "cpu")[1]
    assert walkback.operator_name(cfg) == "gaussian-mlp"
    cfg = resolve("walkback", info, "cuda")[1]
    assert walkback.operator_name(cfg) == "gaussian-conv"
    small = gm.data.DataInfo("digits", "image", (1, 8, 8), meta={"binary": True})
    assert walkback.operator_name(resolve("walkback", small)[1]) == "bernoulli-mlp"
    conv = diffusion.DiffusionTrainer.default_config(info)
    assert diffusion.operator_name(conv) == "net-conv"


def test_an_unknown_operator_is_one_error_naming_the_known_ones():
    with pytest.raises(GMError, match="gaussian-mlp"):
        trainer_for("walkback", operator="no-such-operator")
    with pytest.raises(GMError, match="linear network is a Gaussian operator"):
        trainer_for("walkback", operator="bernoulli", network="linear")


@pytest.mark.parametrize("model", ["walkback", "diffusion"])
def test_a_distribution_only_operator_trains_samples_and_evaluates(model):
    before = PlainGaussian.built
    extra = {"tmax": 8.0, "n_max": 1} if model == "walkback" else {"diffusion_steps": 5}
    trainer, data = trainer_for(model, operator="test-plain-gaussian", lr=1e-2, **extra)
    assert PlainGaussian.built == before + 1
    op = trainer.operator if model == "walkback" else trainer.model
    assert isinstance(op, PlainGaussian)
    start = [p.detach().clone() for p in op.parameters()]
    batches = data.batches("train", 64)
    for i in range(3):
        trainer.step = i
        assert torch.isfinite(trainer.training_step(next(batches))["loss"])
    assert any(not torch.equal(a, p) for a, p in zip(start, op.parameters(), strict=True))
    options = trainer.SampleOptions() if model == "diffusion" else trainer.SampleOptions(fast="on")
    with torch.no_grad():
        samples = trainer.sample(32, options)
    assert samples.shape == (32, 2) and torch.isfinite(samples).all()
    out = trainer.evaluate(
        data, "test", trainer.EvaluateOptions(trajectories=2, examples=16, samples=32)
    )
    assert math.isfinite(out["lower_bound"]) and math.isfinite(out["energy_distance"])


def test_a_distribution_only_operators_noise_is_read_at_temperature_one():
    """Tmax's sigma^2 for an operator without noise_variance: its variance at T = 1 (c^2
    for PlainGaussian, whose std is c T), from the first minibatch."""
    trainer, data = trainer_for("walkback", operator="test-plain-gaussian", lr=0.0, tmax_every=0)
    trainer.training_step(next(data.batches("train", 64)))
    c2 = trainer.operator.log_c.exp().item() ** 2
    assert trainer.stats.noise_var.item() == pytest.approx(c2, rel=1e-5)


def test_the_diffusion_kl_term_is_kl_q_to_p_closed_or_estimated():
    """The loss's KL(q(z_{t-1}|z_t, z_0) || p): the closed form is torch's KL in that
    direction (not p to q); for a reverse not recognised as a factorised Normal (here the same
    Gaussian as a MultivariateNormal), one draw's log q - log p, whose mean is the same KL."""
    torch.manual_seed(0)
    n = 20_000
    mean, var = torch.randn(1, 3).expand(n, 3), (torch.rand(1, 3) + 0.5).expand(n, 3)
    loc, scale = torch.randn(1, 3).expand(n, 3), torch.full((n, 3), 0.7)
    p = D.Independent(D.Normal(loc, scale), 1)
    exact = diffusion.posterior_kl(p, mean, var)
    want = D.kl_divergence(D.Independent(D.Normal(mean, var.sqrt()), 1), p)
    torch.testing.assert_close(exact, want)
    assert not torch.allclose(
        want, D.kl_divergence(p, D.Independent(D.Normal(mean, var.sqrt()), 1))
    )
    opaque = D.MultivariateNormal(loc, scale_tril=torch.diag_embed(scale))
    estimate = diffusion.posterior_kl(opaque, mean, var)
    assert estimate.std() > 0.1  # really a draw, not the closed form
    assert abs(estimate.mean() - exact[0]) < 4 * estimate.std() / n**0.5
