"""The bound (Eq. 5) and the importance-sampled log-likelihood (Eq. 10) against closed forms.

A linear-Gaussian operator p_T(s'|s) = N(a s + b, T v) makes every term Gaussian: the
model's marginal p(x) (p* cooled through the reverse walk), the expected bound
E_q[L(x)], and hence the gap the IS estimate must close as M grows.
"""

import math

import pytest
import torch
from torch import distributions as D
from torch import nn

from gm_walkback import chains, schedules

A, B, V = 0.8, 0.1, 0.3
PSTAR_MEAN, PSTAR_VAR = 0.4, 2.0
DIM = 2


class LinearGaussian(nn.Module):
    kind = "gaussian"
    step_dependent = False

    def heads(self, s, step):
        return A * s + B, torch.full_like(s, math.sqrt(V))

    def from_heads(self, heads, temperature):
        mean, std = heads
        return D.Independent(D.Normal(mean, std * temperature**0.5), 1)

    def distribution(self, s, temperature, step):
        return self.from_heads(self.heads(s, step), temperature)


WALK = schedules.doubling(heat=3, n=1)  # temperatures 1, 1, 2, 4


def prior_log_prob(s):
    return D.Normal(PSTAR_MEAN, math.sqrt(PSTAR_VAR)).log_prob(s).sum(-1)


def exact_log_likelihood(x):
    """log p(x) of the generative model: s_K ~ p*, then s_{t-1} ~ N(a s_t + b, T_t v)."""
    mean, var = PSTAR_MEAN, PSTAR_VAR
    for temp in reversed(WALK.temperatures):
        mean, var = A * mean + B, A * A * var + temp * V
    return D.Normal(mean, math.sqrt(var)).log_prob(x).sum(-1)


def expected_bound(x):
    """E_q[L(x)] in closed form: q's moments m_t, V_t and Cov(s_{t-1}, s_t) = a V_{t-1}."""
    m, var = x.double(), torch.zeros_like(x, dtype=torch.float64)
    total = torch.zeros(len(x), dtype=torch.float64)
    for temp in WALK.temperatures:
        m_next, var_next = A * m + B, A * A * var + temp * V
        err_mean = m - A * m_next - B
        err_var = var + A * A * var_next - 2 * A * A * var
        log_p = -0.5 * math.log(2 * math.pi * temp * V) - (err_mean**2 + err_var) / (2 * temp * V)
        log_q = -0.5 * math.log(2 * math.pi * temp * V) - 0.5
        total += (log_p - log_q).sum(-1)
        m, var = m_next, var_next
    log_pstar = -0.5 * math.log(2 * math.pi * PSTAR_VAR) - ((m - PSTAR_MEAN) ** 2 + var) / (
        2 * PSTAR_VAR
    )
    return total + log_pstar.sum(-1)


def weights_fn(op):
    process = chains.WalkbackProcess(op, WALK)
    return lambda xs: chains.log_weights(
        xs, len(WALK), process.forward, process.reverse, prior_log_prob
    )


@pytest.fixture
def points():
    torch.manual_seed(0)
    return torch.randn(32, DIM) * 0.8 + 0.5


def test_bound_matches_its_closed_form_and_lies_below_the_likelihood(points):
    torch.manual_seed(1)
    w = (
        weights_fn(LinearGaussian())(points.repeat_interleave(4000, 0))
        .view(len(points), 4000)
        .double()
    )
    mc, se = w.mean(1), w.std(1) / math.sqrt(w.shape[1])
    exact_bound = expected_bound(points)
    assert ((mc - exact_bound).abs() < 4 * se + 1e-3).all(), (mc - exact_bound, se)
    gap = exact_log_likelihood(points).double() - exact_bound
    assert (gap > 0.05).all()  # a real gap for IS to close, not a trivially tight bound


def test_importance_sampling_approaches_the_exact_log_likelihood(points):
    exact = exact_log_likelihood(points)
    errors = {}
    for m in (1, 10, 100, 2000):
        torch.manual_seed(2)
        ll, bound = chains.importance_log_likelihood(
            weights_fn(LinearGaussian()), points, m, chunk=65536
        )
        errors[m] = (exact - ll).mean().item()
        assert (bound <= ll + 1e-5).all()  # logmeanexp >= mean
    assert errors[1] > errors[10] > errors[100] > errors[2000] > -0.02, errors
    assert abs(errors[2000]) < 0.03, errors
    gap = (exact - expected_bound(points)).mean().item()
    assert errors[1] == pytest.approx(gap, abs=0.15)  # M = 1 is the bound


def test_walkback_process_reuses_the_network_only_when_allowed(points):
    calls = []

    class Counting(LinearGaussian):
        step_dependent = True

        def heads(self, s, step):
            calls.append(step)
            return super().heads(s, step)

    walk = schedules.doubling(heat=3, n=1)  # levels 0, 0, 1, 2
    process = chains.WalkbackProcess(Counting(), walk)
    chains.log_weights(points, len(walk), process.forward, process.reverse, prior_log_prob)
    # forward at x (level 0) + per step one reverse evaluation; a forward at the same state
    # reuses the reverse evaluation only when the next step has the same level (step 1 -> 2)
    assert calls == [0, 0, 0, 1, 1, 2, 2]


def test_reversibility_uses_the_t1_steps_parameters_only():
    """The measure is of the chain at T = 1, level 0: a per-step operator's hotter levels'
    parameters, however wrong, change nothing."""
    from gm_walkback.operators import GaussianMLP

    torch.manual_seed(0)
    op = GaussianMLP((2,), hidden=16, norm="layer", levels=3, per_step=True).eval()
    s = torch.randn(32, 2)
    keys = ("entropy_production", "step_entropy")  # (the ratio is NaN for vectors)

    def measure():
        torch.manual_seed(1)
        out = chains.reversibility(op, s, 20)
        return [out[k] for k in keys]

    want = measure()
    with torch.no_grad():
        for norm in op.net.norms:
            norm.weight[1:].uniform_(-3, 3)
            norm.bias[1:].uniform_(-3, 3)
    assert measure() == want
    with torch.no_grad():
        op.net.norms[0].weight[0].mul_(3)
    assert measure() != want  # level 0's do
