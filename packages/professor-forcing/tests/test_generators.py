"""The generator's passes: feedback of its own draws, gradients, temperature, heads."""

import math

import pytest
import torch

from gm_professor_forcing.generators import (
    CategoricalHead,
    ContinuousGRU,
    MixtureHead,
    TokenGRU,
)


@pytest.mark.parametrize("layers", [1, 2])  # 1: the fused node, 2: step by step
def test_free_running_feeds_back_its_own_samples(layers):
    """Teacher-forcing the free-running draws reproduces the free-running hidden states and
    outputs: step t's input really was the draw of step t-1 (through the fused nn.GRU path,
    so both passes also share weights and gate order)."""
    torch.manual_seed(0)
    g = TokenGRU(vocab_size=6, hidden=16, layers=layers, embed=5)
    samples, free = g.free_running(4, 30)
    tf = g.teacher_forced(samples)
    assert torch.allclose(tf.hidden, free.hidden, atol=1e-5)
    assert torch.allclose(tf.outputs, free.outputs, atol=1e-5)
    # and not a pass that ignores its inputs: other tokens give other states
    other = (samples + 1) % 6
    assert not torch.allclose(g.teacher_forced(other).hidden, free.hidden, atol=1e-3)


def test_continuous_free_running_feeds_back_its_own_samples():
    torch.manual_seed(0)
    g = ContinuousGRU(dim=3, hidden=16, layers=1, output="mixture", components=2)
    samples, free = g.free_running(3, 20)
    assert torch.allclose(g.teacher_forced(samples).hidden, free.hidden, atol=1e-5)
    assert set(samples[..., 2].unique().tolist()) <= {0.0, 1.0}


def test_free_running_gradient_flows_through_states_not_draws():
    torch.manual_seed(0)
    g = ContinuousGRU(dim=3, hidden=16, layers=1, output="gaussian")
    samples, free = g.free_running(3, 10)
    assert not samples.requires_grad  # the draws are held fixed
    free.hidden[:, -1].sum().backward()
    assert g.gru.weight_hh_l0.grad.abs().sum() > 0  # through the recurrence
    assert g.gru.weight_ih_l0.grad.abs().sum() > 0  # through the (fixed) inputs' projection
    # the readout reaches the states only through the draws, which carry no gradient
    assert g.readout.weight.grad is None


def test_temperature_divides_logits_not_probabilities():
    """Draws at temperature T are draws from softmax(z / T): exactly the same draws as
    temperature 1 on z / T, and empirical frequencies match softmax(z / T)."""
    head = CategoricalHead(4)
    z = torch.tensor([[2.0, 0.5, -1.0, 0.0]]).expand(20000, 4)
    torch.manual_seed(1)
    hot = head.sample(z, 2.5)
    torch.manual_seed(1)
    assert torch.equal(hot, head.sample(z / 2.5, 1.0))
    for t in (0.5, 2.5):
        torch.manual_seed(2)
        freq = torch.bincount(head.sample(z, t), minlength=4).float() / len(z)
        want = torch.softmax(z[0] / t, 0)
        assert (freq - want).abs().max() < 0.015, (t, freq, want)
        assert (freq - torch.softmax(z[0], 0)).abs().max() > 0.05  # T changed the law
    assert torch.equal(head.sample(z[:3], 0.0), torch.zeros(3, dtype=torch.long))  # T = 0: argmax


def test_mixture_nll_matches_torch_distributions():
    torch.manual_seed(0)
    k = 3
    head = MixtureHead(k)
    params = torch.randn(2, 5, head.num_params)
    x = torch.cat([torch.randn(2, 5, 2), (torch.rand(2, 5, 1) < 0.3).float()], -1)
    logit_pi, mx, my, lsx, lsy, rho, pen = head.split(params)
    sx, sy = lsx.exp(), lsy.exp()
    cov = torch.stack(
        [torch.stack([sx * sx, rho * sx * sy], -1), torch.stack([rho * sx * sy, sy * sy], -1)], -2
    )
    comp = torch.distributions.MultivariateNormal(torch.stack([mx, my], -1), covariance_matrix=cov)
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=logit_pi), comp
    )
    want = -mix.log_prob(x[..., :2]) - torch.distributions.Bernoulli(logits=pen).log_prob(x[..., 2])
    assert torch.allclose(head.nll(params, x), want, atol=1e-4)


def test_mixture_sampling_matches_its_nll():
    """Draws from one fixed mixture have the mean NLL that the head assigns them in
    expectation: the Monte-Carlo entropy estimate agrees with a fresh-sample estimate."""
    torch.manual_seed(0)
    head = MixtureHead(2)
    p = torch.randn(1, 1, head.num_params).expand(40000, 1, -1)
    x1, x2 = head.sample(p, 1.0), head.sample(p, 1.0)
    a, b = head.nll(p, x1).mean(), head.nll(p, x2).mean()
    assert abs(a - b) < 0.05
    # and the draw is a sample of the head's own law: its mean offset matches the mixture's mean
    logit_pi, mx, my = head.split(p[:1])[:3]
    w = torch.softmax(logit_pi, -1)
    assert torch.allclose(
        x1[:, 0, :2].mean(0), torch.stack([(w * mx).sum(), (w * my).sum()]), atol=0.05
    )


def test_scheduled_with_no_true_tokens_is_free_running():
    """p_true = 0 feeds every step the model's own draw: the same states as free running
    (given the same random stream after the per-token coins)."""
    g = TokenGRU(vocab_size=5, hidden=12, layers=1, embed=4)
    x = torch.randint(0, 5, (3, 15), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(7)
    behaviour = g.scheduled(x, 0.0)
    torch.manual_seed(7)
    torch.rand(3, 15)  # the coins scheduled() draws first
    _, free = g.free_running(3, 15)
    assert torch.allclose(behaviour.hidden, free.hidden, atol=1e-6)
    assert torch.equal(g.scheduled(x, 1.0).hidden, g.teacher_forced(x).hidden)


@pytest.mark.parametrize("p", [0.3, 0.8])
def test_scheduled_mixes_true_and_drawn_tokens(p):
    """Between the extremes the states differ from both teacher forcing and free running."""
    torch.manual_seed(0)
    g = TokenGRU(vocab_size=5, hidden=12, layers=1, embed=4)
    x = torch.randint(0, 5, (64, 20))
    h = g.scheduled(x, p).hidden
    tf = g.teacher_forced(x).hidden
    same = (h - tf).abs().amax(-1) < 1e-6  # steps whose whole history was true tokens
    assert same[:, 0].all() and not same.all()
    assert math.isclose(same[:, 1].float().mean().item(), p, abs_tol=0.2)


@pytest.mark.parametrize("decay", ["linear", "exponential", "inverse-sigmoid"])
def test_scheduled_sampling_decays(decay):
    from gm.build import resolve
    from gm.data import DataInfo
    from gm.errors import GMError

    info = DataInfo("t", "sequence", (8,), vocab_size=3)
    cls, cfg = resolve(
        "scheduled-sampling", info, overrides={"hidden": 8, "decay": decay, "steps": 1000}
    )
    tr = cls(cfg, info)
    eps = [tr.p_true(i) for i in range(0, 1201, 50)]
    assert eps[0] > 0.9 and all(a >= b for a, b in zip(eps[:-1], eps[1:], strict=True))
    assert tr.p_true(1000) == pytest.approx(0.5, abs=1e-6)  # auto constants: 0.5 at the end
    tr.config.min_true = 0.45
    assert min(tr.p_true(i) for i in range(0, 3000, 100)) == pytest.approx(0.45)
    bad = {"linear": None, "exponential": 1.5, "inverse-sigmoid": 0.5}[decay]
    if bad is not None:
        with pytest.raises(GMError):
            cls(
                resolve(
                    "scheduled-sampling",
                    info,
                    overrides={"hidden": 8, "decay": decay, "decay_k": bad},
                )[1],
                info,
            )
