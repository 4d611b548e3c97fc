"""The UNet operator: the transition-operator contract, the step conditioning, the heads
each model needs through ``--set operator=unet``, and the device-dependent widths."""

import pytest
import torch

from gm.data import DataInfo, load_dataset
from gm.engine import build_config, seed_everything
from gm.errors import GMError
from gm.testing import TransitionOperatorContract
from gm_walkback import ddpm, diffusion, operators, shared, walkback
from gm_walkback.unet import UNet, UNetOperator

IMAGES = DataInfo("t", "image", (1, 8, 8))


class TestUNetGaussian(TransitionOperatorContract):
    def make_operator(self):
        cfg = walkback.WalkbackConfig(unet_width=8, per_step_norm=True)
        return UNetOperator.build(cfg, DataInfo("t", "image", (3, 8, 8)))

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
