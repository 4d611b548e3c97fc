"""The shipped operators against known answers: the Bernoulli operator's logits, temperature
and noise variance, the Gaussian operator's temperature scaling, and the constructors'
defaults, which are the paper's networks (appendix E.1 and Table 2)."""

import math

import pytest
import torch

from gm_walkback.operators import BernoulliMLP, GaussianConv, GaussianLinear, GaussianMLP


def _zero_net(op):
    """F = 0 everywhere (every weight and bias zero), so the operator is its skip term."""
    with torch.no_grad():
        for p in op.net.parameters():
            p.zero_()
    return op.eval()


def test_bernoulli_operator_known_probabilities_and_noise_variance():
    op = _zero_net(BernoulliMLP((4,), hidden=8, norm="none"))
    # logits = (1 - alpha) s + alpha F = 0.5 s; s = 2 ln 3 gives p = 3/4
    s = torch.full((5, 4), 2 * math.log(3))
    assert op.noise_variance(s, 0).item() == pytest.approx(0.75 * 0.25)  # p (1 - p)
    assert op.noise_variance(torch.zeros(5, 4), 0).item() == pytest.approx(0.25)
    d = op.distribution(s, 1.0, 0)
    assert d.base_dist.probs[0, 0].item() == pytest.approx(0.75)
    # at temperature T the logits are divided by T: sigmoid(ln 3 / 2) = sqrt(3) / (1 + sqrt(3))
    hot = op.distribution(s, 2.0, 0).base_dist.probs[0, 0].item()
    assert hot == pytest.approx(math.sqrt(3) / (1 + math.sqrt(3)))
    assert d.log_prob(torch.ones(5, 4))[0].item() == pytest.approx(4 * math.log(0.75))


def test_gaussian_operator_scales_variance_by_t_and_std_by_t():
    s = torch.randn(3, 2)
    var = GaussianLinear((2,))
    var.set_linear(0.8, 0.1, 0.04)
    std = GaussianLinear((2,), temperature_scaling="std")
    std.set_linear(0.8, 0.1, 0.04)
    d_var, d_std = var.distribution(s, 9.0, 0).base_dist, std.distribution(s, 9.0, 0).base_dist
    assert torch.allclose(d_var.loc, 0.8 * s + 0.1, atol=1e-6)
    assert torch.allclose(d_var.scale, torch.full_like(s, 0.2 * 3.0), atol=1e-6)  # sqrt(T) std
    assert torch.allclose(d_std.scale, torch.full_like(s, 0.2 * 9.0), atol=1e-6)  # T std
    assert var.noise_variance(s, 0).item() == pytest.approx(0.04, rel=1e-5)
    with pytest.raises(ValueError):
        GaussianLinear((2,), temperature_scaling="nonsense")


def test_constructor_defaults_are_the_papers_networks():
    # appendix E.1: the MNIST likelihood MLP, two 1200-unit layers with batch norm
    bern = BernoulliMLP()
    assert [lin.out_features for lin in bern.net.linears] == [1200, 1200]
    assert {n.kind for n in bern.net.norms} == {"batch"} and bern.alpha == 0.5
    # Table 2: convs 16, 32 (BN), five FC layers 1568 * 1024 ... 1024 * 1568 (LN, leaky ReLU)
    conv = GaussianConv()
    assert [c.out_channels for c in conv.net.encoder] == [16, 32]
    assert [lin.out_features for lin in conv.net.fc] == [1024] * 4 + [1568]
    assert {n.kind for n in conv.net.fc_norms} == {"layer"} and conv.net.slope == 0.02
    # the toy MLP: 2 -> 4096 -> 4096, operator noise std 0.1 at T = 1 at initialisation
    toy = GaussianMLP()
    assert [lin.out_features for lin in toy.net.linears] == [4096, 4096]
    toy.eval()
    with torch.no_grad():
        std = toy.heads(torch.zeros(64, 2), 0)[1]
    assert std.mean().item() == pytest.approx(0.1, rel=0.05)


def test_constructor_defaults_agree_with_the_config_defaults():
    """An operator built directly (gm_walkback.operators) is the one a default config builds:
    the same alpha, noise floor and starting noise, for 2-D points and 28x28x1 images."""
    from gm_walkback.operators import BernoulliConv
    from gm_walkback.walkback import WalkbackConfig

    cfg = WalkbackConfig()
    gaussians = (GaussianMLP(hidden=8), GaussianLinear(), GaussianConv(fc_width=16))
    for op in (*gaussians, BernoulliMLP(hidden=8), BernoulliConv(fc_width=16)):
        assert op.alpha == cfg.alpha, type(op).__name__
    for op in gaussians:
        assert op.min_std == cfg.min_std and op.temperature_scaling == cfg.temperature_scaling
        op.eval()
        shape = (4, 2) if not isinstance(op, GaussianConv) else (4, 1, 28, 28)
        with torch.no_grad():
            std = op.heads(torch.zeros(shape), 0)[1]
        assert std.shape == shape  # 2-D points; one-channel 28x28 images
        assert std.mean().item() == pytest.approx(cfg.init_std + cfg.min_std, rel=0.05)


def test_conv_operators_score_one_log_prob_per_image():
    """The conv operators' distributions sum over (C, H, W) only, one value per image; the
    Bernoulli conv operator's defaults are Table 2's net as well."""
    from gm_walkback.operators import BernoulliConv

    x = torch.rand(3, 1, 28, 28)
    bern = BernoulliConv(fc_width=16).eval()
    assert [c.out_channels for c in bern.net.encoder] == [16, 32]
    assert bern.net.encoder[0].in_channels == 1 and len(bern.net.fc) == 5
    for op in (GaussianConv(fc_width=16).eval(), bern):
        with torch.no_grad():
            d = op.distribution(x, 2.0, 0)
            target = x if op.kind == "gaussian" else (x > 0.5).float()
            assert d.log_prob(target).shape == (3,), type(op).__name__
