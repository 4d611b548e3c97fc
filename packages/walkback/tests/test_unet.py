"""The UNet operator: the transition-operator contract, the step conditioning, the heads
each model needs through ``--set operator=unet``, and the device-dependent widths."""

import pytest
import torch

from gm.data import DataInfo, load_dataset
from gm.engine import build_config, seed_everything
from gm.errors import GMError
from gm.testing import TransitionOperatorContract
from gm_walkback import ddpm, diffusion, operators, shared, walkback
from gm_walkback.unet import ResBlock, UNet, UNetOperator, step_embedding

IMAGES = DataInfo("t", "image", (1, 8, 8))


class TestUNetGaussian(TransitionOperatorContract):
    def make_operator(self):
        cfg = walkback.WalkbackConfig(unet_width=8, per_step_norm=True)
        return UNetOperator.build(cfg, DataInfo("t", "image", (3, 8, 8)))

    def make_state(self, batch=4):
        return torch.rand(batch, 3, 8, 8)


class TestUNetGaussianSkip(TransitionOperatorContract):
    """The UNet inside the skip operator (a residual on the data Gaussian's heated chain)."""

    def make_operator(self):
        cfg = walkback.WalkbackConfig(
            unet_width=8, per_step_norm=True, skip="full", noise="learned"
        )
        op = UNetOperator.build(cfg, DataInfo("t", "image", (3, 8, 8)))
        assert op.skip == "full" and op.skip_axes.shape == (192, 192)
        return op

    def make_state(self, batch=4):
        return torch.rand(batch, 3, 8, 8)


class TestUNetBernoulli(TransitionOperatorContract):
    def make_operator(self):
        info = DataInfo("t", "image", (1, 8, 8), meta={"binary": True})
        return UNetOperator.build(walkback.WalkbackConfig(unet_width=8), info)

    def make_state(self, batch=4):
        return torch.randint(0, 2, (batch, 1, 8, 8)).float()


def test_the_unet_follows_the_step_one_per_example_or_one_for_all():
    torch.manual_seed(0)
    net = UNet((1, 28, 28), width=8).eval()
    with torch.no_grad():  # the FiLM layers start at zero: give them weights to test with
        for block in net.modules():
            if hasattr(block, "film"):
                block.film.weight.normal_(0, 0.5)
        s = torch.randn(3, 1, 28, 28)
        a, b = net(s, 0)[0], net(s, 700)[0]
        mixed = net(s, torch.tensor([0, 700, 0]))[0]
    assert a.shape == s.shape and (a - b).abs().max() > 1e-3
    torch.testing.assert_close(mixed[0], a[0])
    torch.testing.assert_close(mixed[1], b[1])
    flat = UNet((1, 28, 28), width=8, conditioned=False).eval()
    with torch.no_grad():
        for block in flat.modules():
            if hasattr(block, "film"):
                block.film.weight.normal_(0, 0.5)
        torch.testing.assert_close(flat(s, 0)[0], flat(s, 700)[0])


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 9, 13)])
def test_the_unet_keeps_any_image_size_and_has_two_downsamplings(shape):
    net = UNet(shape, width=8)
    assert len(net.downsample) == 2  # 28 -> 14 -> 7
    outs = net(torch.randn(2, *shape), 3)
    assert [o.shape for o in outs] == [(2, *shape)] * 2
    with pytest.raises(GMError, match="image data"):
        UNet((784,))


def test_the_variance_head_starts_at_the_models_initial_noise():
    op = UNetOperator.build(walkback.WalkbackConfig(unet_width=8, init_std=0.05), IMAGES).eval()
    with torch.no_grad():
        std = op.heads(torch.rand(4, 1, 8, 8), 0)[1]
    assert std.mean().item() == pytest.approx(0.05 + op.min_std, rel=0.1)


@pytest.mark.parametrize(
    "model, reverse",
    [
        ("walkback", operators.GaussianOperator),
        ("diffusion", diffusion.NETReverse),
        ("ddpm", ddpm.DDPMReverse),
    ],
)
def test_operator_unet_builds_and_trains_for_every_model(model, reverse):
    """``--set operator=unet``: walkback's Gaussian operator (mean, variance), NET's reverse
    (mean, variance) and ddpm's reverse (x0, v) around the UNet; one step changes it."""
    data = load_dataset("wb-tiny-images")
    extra = {"tmax": 4.0, "n_max": 0} if model == "walkback" else {"diffusion_steps": 5}
    cls, cfg = build_config(
        model, data.info, overrides={"operator": "unet", "batch_size": 8, **extra}
    )
    seed_everything(0)
    trainer = cls(cfg, data.info, "cpu")
    op = trainer.operator if model == "walkback" else trainer.model
    assert isinstance(op, reverse) and isinstance(op.net, UNet)
    assert op.net.width == shared.CPU_UNET_WIDTH  # unet_width = 0 on a CPU run
    before = [p.detach().clone() for p in op.net.parameters()]
    trainer.step = 0
    assert torch.isfinite(trainer.training_step(next(data.batches("train", 8)))["loss"])
    assert any(not torch.equal(a, p) for a, p in zip(before, op.net.parameters(), strict=True))


def test_widths_follow_the_device_where_the_model_resolves_its_config():
    cfg = ddpm.DDPMConfig()
    cpu = shared.resolve_widths(cfg, torch.device("cpu"))
    gpu = shared.resolve_widths(cfg, torch.device("cuda"))
    assert (cpu.hidden, cpu.unet_width) == (shared.CPU_HIDDEN, shared.CPU_UNET_WIDTH)
    assert (gpu.hidden, gpu.unet_width) == (shared.GPU_HIDDEN, shared.GPU_UNET_WIDTH)
    given = shared.resolve_widths(ddpm.DDPMConfig(hidden=1200, unet_width=64), torch.device("cpu"))
    assert (given.hidden, given.unet_width) == (1200, 64)


def test_the_papers_mlp_width_is_one_setting():
    """--set hidden=1200 (appendix E.1's width) for walkback's MLP operator, NET and ddpm."""
    info = DataInfo("t", "vector", (2,))
    for model in ("walkback", "diffusion", "ddpm"):
        cls, cfg = build_config(model, info, overrides={"hidden": 1200, "depth": 2})
        trainer = cls(cfg, info, "cpu")
        op = trainer.operator if model == "walkback" else trainer.model
        assert [lin.out_features for lin in op.net.linears] == [1200, 1200], model


def test_the_step_embedding_is_the_sinusoids_of_known_frequencies():
    """dim 8: frequencies 10000^(-k/4) = 1, 0.1, 0.01, 0.001; cosines then sines."""
    e = step_embedding(torch.tensor([0, 5]), 2, 8, torch.device("cpu"))
    f = torch.tensor([1.0, 0.1, 0.01, 0.001])
    torch.testing.assert_close(e[0], torch.cat([torch.ones(4), torch.zeros(4)]))
    torch.testing.assert_close(e[1], torch.cat([torch.cos(5 * f), torch.sin(5 * f)]))
    one = step_embedding(3, 2, 8, torch.device("cpu"))  # an int: the same for every row
    torch.testing.assert_close(one, torch.cat([torch.cos(3 * f), torch.sin(3 * f)]).expand(2, 8))


def test_a_residual_block_scales_and_shifts_by_the_step():
    """x + conv2(SiLU(GN(conv1(SiLU(GN(x)))) (1 + scale) + shift)), scale and shift from the
    step's embedding (here the FiLM layer's bias alone)."""
    torch.manual_seed(0)
    block = ResBlock(4, 4, emb=3, groups=2)
    scale, shift = torch.tensor([0.5, -0.2, 1.0, 0.0]), torch.tensor([0.1, 0.0, -0.3, 0.2])
    with torch.no_grad():
        block.film.bias.copy_(torch.cat([scale, shift]))
        x, emb = torch.randn(2, 4, 5, 5), torch.randn(2, 3)
        h = block.conv1(torch.nn.functional.silu(block.norm1(x)))
        h = block.norm2(h) * (1 + scale[:, None, None]) + shift[:, None, None]
        want = x + block.conv2(torch.nn.functional.silu(h))
        torch.testing.assert_close(block(x, emb), want)


def test_nets_unet_reverse_starts_at_variance_beta():
    """NET's reverse around the UNet starts as NET's does: F_sigma ~ 0, so var = beta_t."""
    cfg = diffusion.DiffusionConfig(operator="unet", unet_width=8, diffusion_steps=5)
    op = UNetOperator.build(cfg, IMAGES).eval()
    with torch.no_grad():
        std = op.heads(torch.rand(4, 1, 8, 8), torch.full((4,), 2))[1]
    assert std.pow(2).mean().item() == pytest.approx(op.betas[2].item(), rel=0.05)
