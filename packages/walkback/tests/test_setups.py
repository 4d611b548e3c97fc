"""The paper's setups are what `gm train walkback --dataset D` builds, by data shape."""

import torch

from gm.data import DataInfo
from gm_walkback.operators import BernoulliMLP, GaussianConv, build_operator
from gm_walkback.walkback import WalkbackTrainer


def test_celeba_gets_the_papers_conv_network():
    info = DataInfo("celeba", "image", (3, 64, 64))
    cfg = WalkbackTrainer.default_config(info)
    assert (cfg.network, cfg.conv_channels, cfg.fc_layers, cfg.fc_width, cfg.norm) == (
        "conv",
        (64, 128, 256),
        5,
        1024,
        "batch",
    )
    assert cfg.per_step_norm and cfg.operator == "gaussian" and cfg.schedule == "doubling"
    op = build_operator(cfg, info.shape, cfg.max_levels)
    assert isinstance(op, GaussianConv)
    net = op.net
    assert [c.out_channels for c in net.encoder] == [64, 128, 256]
    assert [lin.out_features for lin in net.fc] == [1024, 1024, 1024, 1024, 256 * 8 * 8]
    assert len(net.decoders) == 2  # separate mean and variance decoders
    op.eval()
    with torch.no_grad():
        d = op.distribution(torch.rand(2, 3, 64, 64), 4.0, 3)
    assert d.mean.shape == (2, 3, 64, 64)


def test_mnist_cifar_and_binary_setups():
    mnist = WalkbackTrainer.default_config(DataInfo("mnist", "image", (1, 28, 28)))
    assert (mnist.conv_channels, mnist.norm) == ((16, 32), "layer")
    cifar = WalkbackTrainer.default_config(DataInfo("cifar10", "image", (3, 32, 32)))
    assert cifar.conv_channels == (64, 128, 256)
    info = DataInfo("binarized-mnist", "image", (1, 28, 28))
    binary = WalkbackTrainer.default_config(info)
    assert binary.operator == "bernoulli"
    small = DataInfo("bin8", "image", (1, 8, 8), meta={"binary": True})
    cfg = WalkbackTrainer.default_config(small)
    assert isinstance(build_operator(cfg, small.shape, 4), BernoulliMLP)


def test_toy_setup_is_the_papers():
    cfg = WalkbackTrainer.default_config(DataInfo("swiss-roll", "vector", (2,)))
    assert (cfg.schedule, cfg.walk_steps, cfg.heat_factor, cfg.lr, cfg.alpha) == (
        "appendix",
        30,
        1.1,
        1e-4,
        0.5,
    )
    assert cfg.hidden == 0  # resolved per device: 4096 (paper) on a GPU, 256 on CPU
    trainer = WalkbackTrainer(cfg, DataInfo("swiss-roll", "vector", (2,)), "cpu")
    assert trainer.config.hidden == 256 and trainer.operator.net.linears[0].out_features == 256
