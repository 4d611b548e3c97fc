"""The shipped trainer's estimators against closed forms, through a real registered operator.

``--set network=linear`` is the Gaussian operator p_T(s'|s) = N(a s + b, T v) (elementwise).
With p* Gaussian, every quantity has a closed form: the model's marginal p(x) (p* cooled
through the reverse walk), the expected bound E_q[L(x)] (Eq. 5), the 8-bit cell
probabilities behind bits/dim, the moments of s_K (what p* must fit), and the entropy
production of a chain started off its stationary distribution. ``trainer.evaluate`` and
``trainer.training_step`` are checked against them, so a sign, a dropped term, the wrong
prior, the wrong temperature scaling or a missing shift shows up as a wrong number.
"""

import math

import pytest
import torch
from torch import distributions as D

from gm.build import resolve
from gm.data import DataInfo, Dataset
from gm.engine import seed_everything
from gm_walkback import chains
from gm_walkback.walkback import WalkbackEvaluateOptions

A, B, V = 0.8, 0.1, 0.3
PSTAR_MEAN, PSTAR_VAR = 0.4, 2.0
TEMPS = (1.0, 2.0, 4.0)  # doubling, n = 0, Tmax = 8: H = 3


def linear_trainer(shape=(2,), a=A, b=B, v=V, **overrides):
    info = DataInfo("lg", "image" if len(shape) == 3 else "vector", shape)
    cls, cfg = resolve(
        "walkback",
        info,
        overrides={
            "network": "linear",
            "schedule": "doubling",
            "tmax": 8.0,
            "n_max": 0,
            "min_std": 1e-6,
            "batch_size": 512,
            **overrides,
        },
    )
    seed_everything(0)
    trainer = cls(cfg, info, "cpu")
    trainer.operator.set_linear(a, b, v)
    trainer.stats.pstar_mean.fill_(PSTAR_MEAN)
    trainer.stats.pstar_var.fill_(PSTAR_VAR)
    return trainer


def marginal(temps=TEMPS, a=A, b=B, v=V, mean=PSTAR_MEAN, var=PSTAR_VAR):
    """Mean and variance of s_0 under the generative walk: s_K ~ p*, s_t-1 ~ N(a s_t + b, T v)."""
    for temp in reversed(temps):
        mean, var = a * mean + b, a * a * var + temp * v
    return mean, var


def expected_bound(x, temps=TEMPS):
    """E_q[L(x)] per row: q's moments m_t, V_t and Cov(s_t-1, s_t) = a V_t-1."""
    m, var = x.double(), torch.zeros_like(x, dtype=torch.float64)
    total = torch.zeros(len(x), dtype=torch.float64)
    for temp in temps:
        m_next, var_next = A * m + B, A * A * var + temp * V
        err_mean = m - A * m_next - B
        err_var = var + A * A * var_next - 2 * A * A * var
        log_p = -0.5 * math.log(2 * math.pi * temp * V) - (err_mean**2 + err_var) / (2 * temp * V)
        log_q = -0.5 * math.log(2 * math.pi * temp * V) - 0.5
        total += (log_p - log_q).flatten(1).sum(1)
        m, var = m_next, var_next
    log_pstar = -0.5 * math.log(2 * math.pi * PSTAR_VAR) - ((m - PSTAR_MEAN) ** 2 + var) / (
        2 * PSTAR_VAR
    )
    return total + log_pstar.flatten(1).sum(1)


def vector_data(n=24):
    torch.manual_seed(0)
    test = torch.randn(n, 2) * 0.8 + 0.5
    return Dataset(DataInfo("lg", "vector", (2,)), {"train": test, "test": test})


QUICK = {"chains": 16, "burn_in": 1, "chain_steps": 2, "samples": 16}


def test_evaluate_bound_and_likelihood_match_their_closed_forms():
    trainer = linear_trainer()
    data = vector_data()
    x = data.tensor("test")
    mean, var = marginal()
    exact_ll = D.Normal(mean, math.sqrt(var)).log_prob(x).sum(1).mean().item()
    exact_bound = expected_bound(x).mean().item()
    assert exact_ll - exact_bound > 0.1  # a real gap for importance sampling to close
    torch.manual_seed(1)
    out = trainer.evaluate(data, "test", WalkbackEvaluateOptions(trajectories=3000, **QUICK))
    assert out["walk_steps"] == 3
    assert out["lower_bound"] == pytest.approx(exact_bound, abs=0.03)
    assert out["log_likelihood"] == pytest.approx(exact_ll, abs=0.03)
    torch.manual_seed(1)
    one = trainer.evaluate(data, "test", WalkbackEvaluateOptions(trajectories=1, **QUICK))
    assert one["log_likelihood"] < exact_ll - 0.05  # M = 1 is the bound, below log p(x)


def test_shipped_gaussian_operators_heat_the_variance_linearly():
    """Algorithm 1: "injects noise of variance T sigma^2"; std scaling is the named option."""
    from gm_walkback.operators import GaussianConv, GaussianMLP

    s = torch.rand(3, 1, 8, 8)
    for op, x in (
        (GaussianMLP((1, 8, 8), hidden=8), s),
        (GaussianConv((1, 8, 8), channels=(4,), fc_layers=1, fc_width=8), s),
        (linear_trainer().operator, s[:, 0, 0, :2]),
    ):
        op.eval()
        with torch.no_grad():
            d1, d4 = op.distribution(x, 1.0, 0), op.distribution(x, 4.0, 0)
        assert torch.allclose(d4.base_dist.scale, 2 * d1.base_dist.scale)
        assert torch.allclose(d4.mean, d1.mean)
    cfg = resolve("walkback", DataInfo("mnist-5k", "image", (1, 28, 28)))[1]
    assert cfg.temperature_scaling == "variance"
    std = linear_trainer(temperature_scaling="std").operator
    x = s[:, 0, 0, :2]
    scale = [std.distribution(x, t, 0).base_dist.scale for t in (1.0, 4.0)]
    assert torch.allclose(scale[1], 4 * scale[0])


def cell_log_prob(k, mean, var):
    """log P(the 8-bit value k) per dimension when the model's [0, 1] density is N(mean, var)
    and a pixel value k covers [k/256, (k+1)/256)."""
    n = D.Normal(torch.tensor(mean, dtype=torch.float64), math.sqrt(var))
    return torch.log(n.cdf((k + 1) / 256) - n.cdf(k / 256))


def image_data(values, n):
    raw = torch.tensor(values, dtype=torch.uint8).view(1, 1, 2, 2).repeat(n, 1, 1, 1)
    return Dataset(DataInfo("lg", "image", (1, 2, 2)), {"train": raw, "test": raw})


def test_bits_per_dim_is_the_hand_computed_value():
    """bits/dim = -log2 P(8-bit image) / D, with P the model's cell probabilities."""
    values = [100, 120, 128, 140]
    trainer = linear_trainer((1, 2, 2), a=0.8, b=0.1, v=0.01)
    trainer.stats.pstar_mean.fill_(0.5)
    trainer.stats.pstar_var.fill_(0.05)
    mean, var = marginal(a=0.8, b=0.1, v=0.01, mean=0.5, var=0.05)
    k = torch.tensor(values, dtype=torch.float64)
    by_hand = -cell_log_prob(k, mean, var).sum().item() / (4 * math.log(2))
    torch.manual_seed(3)
    out = trainer.evaluate(
        image_data(values, 8), "test", WalkbackEvaluateOptions(trajectories=2000, **QUICK)
    )
    assert out["bits_per_dim"] == pytest.approx(by_hand, abs=0.01)
    assert out["bound_bits_per_dim"] > out["bits_per_dim"]


def test_each_trajectory_draws_its_own_dequantisation():
    """A model narrower than an 8-bit cell: the estimate must integrate the density over the
    cell (a fresh uniform draw per trajectory), not score one dequantised point per example
    (which is below log P by Jensen's inequality)."""
    values = [127, 128, 128, 127]
    v, pv = 1e-8, 4e-6  # walk noise far below p*'s spread: a tight bound, a cell-wide model
    trainer = linear_trainer((1, 2, 2), a=1.0, b=0.0, v=v)
    trainer.stats.pstar_mean.fill_(0.5)
    trainer.stats.pstar_var.fill_(pv)
    mean, var = marginal(a=1.0, b=0.0, v=v, mean=0.5, var=pv)
    k = torch.tensor(values, dtype=torch.float64)
    by_hand = -cell_log_prob(k, mean, var).sum().item() / (4 * math.log(2))
    torch.manual_seed(4)
    out = trainer.evaluate(
        image_data(values, 64), "test", WalkbackEvaluateOptions(trajectories=200, **QUICK)
    )
    # one shared draw per example measured 1.30 here against 1.078 by hand
    assert out["bits_per_dim"] == pytest.approx(by_hand, abs=0.02), by_hand


def test_reversibility_is_the_entropy_production_over_the_cell_entropy():
    """For N(a s + b, v) the chain is reversible w.r.t. pi = N(b/(1-a), v/(1-a^2)), so
    ln p(s'|s) - ln p(s|s') = ln pi(s') - ln pi(s): started off pi, the mean production
    over K steps is (E ln pi(s_K) - ln pi(s_0)) / K > 0; the step entropy is
    0.5 ln(2 pi e v) per dimension, + ln 256 per dimension counted in 8-bit cells."""
    a, b, v, steps, start = 0.5, 0.2, 0.09, 3, 2.0
    op = linear_trainer((1, 2, 2), a=a, b=b, v=v).operator
    mu, s2 = b / (1 - a), v / (1 - a * a)
    m, var = start, 0.0
    for _ in range(steps):
        m, var = a * m + b, a * a * var + v

    def log_pi(mean, variance):  # E ln pi(s) for s ~ N(mean, variance), per dimension
        return -0.5 * math.log(2 * math.pi * s2) - ((mean - mu) ** 2 + variance) / (2 * s2)

    production = 4 * (log_pi(m, var) - log_pi(start, 0.0)) / steps
    cells = 4 * math.log(256)
    entropy = 4 * 0.5 * math.log(2 * math.pi * math.e * v) + cells
    torch.manual_seed(5)
    with torch.no_grad():
        out = chains.reversibility(op, torch.full((4096, 1, 2, 2), start), steps, cells)
    assert production > 1.0
    assert out["entropy_production"] == pytest.approx(production, rel=0.03)
    assert out["step_entropy"] == pytest.approx(entropy, rel=1e-3)
    assert out["reversibility"] == pytest.approx(production / entropy, rel=0.03)


def test_evaluate_counts_the_step_entropy_in_8_bit_cells():
    trainer = linear_trainer((1, 2, 2), a=0.5, b=0.25, v=0.0025)
    torch.manual_seed(6)
    out = trainer.evaluate(
        image_data([100, 120, 128, 140], 4),
        "test",
        WalkbackEvaluateOptions(trajectories=2, chains=256, burn_in=20, chain_steps=20),
    )
    cell = 4 * (0.5 * math.log(2 * math.pi * math.e * 0.0025) + math.log(256))
    assert out["step_entropy"] == pytest.approx(cell, rel=0.01)
    assert abs(out["reversibility"]) < 0.02  # at stationarity this chain is reversible


@pytest.mark.parametrize("stats", ["accumulate", "ema"])
def test_pstar_fits_the_accumulated_moments_of_s_k_not_the_data(stats):
    """With lr = 0 the operator stays N(a s + b, T v); s_K's moments are then known: p* must
    match them (mean a^K x + ..., variance grown by the heated noise), not the data's."""
    trainer = linear_trainer(lr=0.0, pstar_stats=stats)
    torch.manual_seed(7)
    x = torch.randn(4096, 2) * 0.1 + 1.5
    steps = 4 if stats == "accumulate" else 1  # ema: the first walk sets p* outright
    for _ in range(steps):
        trainer.training_step(x)
    m, var = x.double(), torch.zeros_like(x, dtype=torch.float64)
    for temp in TEMPS:
        m, var = A * m + B, A * A * var + temp * V
    want_mean = m.mean(0)
    want_var = var.mean(0) + m.var(0, unbiased=False)
    assert torch.allclose(trainer.stats.pstar_mean.double(), want_mean, atol=0.05)
    assert torch.allclose(trainer.stats.pstar_var.double(), want_var, rtol=0.08)
    if stats == "accumulate":
        assert trainer.stats.pstar_count.item() == 4 * 4096  # accumulated over every walk


def test_reversibility_in_plain_nats_and_its_undefined_ratio():
    """Without cells (the default) the step entropy is the differential entropy, negative for a
    narrow operator: the ratio is then undefined (nan), not a negative percentage; any
    positive entropy, however small, gives the ratio."""
    v = 0.0025
    op = linear_trainer((1, 2, 2), a=0.5, b=0.2, v=v).operator
    differential = 4 * 0.5 * math.log(2 * math.pi * math.e * v)  # -6.3 nats
    s = torch.full((2048, 1, 2, 2), 2.0)
    torch.manual_seed(8)
    with torch.no_grad():
        plain = chains.reversibility(op, s, 3)
    assert plain["step_entropy"] == pytest.approx(differential, abs=0.08)  # MC: sd ~0.02
    assert math.isnan(plain["reversibility"])
    torch.manual_seed(8)
    with torch.no_grad():
        small = chains.reversibility(op, s, 3, 0.5 - differential)  # step entropy 0.5 nats
    assert 0 < small["step_entropy"] < 1
    ratio = small["entropy_production"] / small["step_entropy"]
    assert small["reversibility"] == pytest.approx(ratio, rel=1e-9)
