"""The paper's setups are what `gm train walkback --dataset D` builds, by data shape and name,
and `--set recipe=...` selects the paper's recipes exactly as its appendix states them."""

import math

import pytest
import torch

from gm.data import DataInfo
from gm.engine import build_config
from gm_walkback import recipes, shared
from gm_walkback.operators import BernoulliMLP, GaussianConv
from gm_walkback.walkback import WalkbackTrainer, build_operator

MNIST = DataInfo("mnist-5k", "image", (1, 28, 28))


@pytest.fixture(autouse=True)
def _gpu_machine(monkeypatch):
    """These are the paper's setups: the defaults a machine with a CUDA device gets."""
    monkeypatch.setattr(shared, "cuda_available", lambda: True)


def _arch(cfg):
    return (cfg.network, cfg.conv_channels, cfg.fc_layers, cfg.fc_width, cfg.norm, cfg.fc_norm)


def test_celeba_gets_table_3():
    info = DataInfo("celeba", "image", (3, 64, 64))
    cfg = WalkbackTrainer.default_config(info)
    assert _arch(cfg) == ("conv", (64, 128, 256), 5, 1024, "batch", "batch")
    assert cfg.fc_activation == "relu" and cfg.per_step_norm and cfg.operator == "gaussian"
    op = build_operator(cfg, info)
    assert isinstance(op, GaussianConv)
    net = op.net
    assert [c.out_channels for c in net.encoder] == [64, 128, 256]
    assert [lin.out_features for lin in net.fc] == [1024, 1024, 1024, 1024, 256 * 8 * 8]
    assert {n.kind for n in net.fc_norms} == {"batch"} and net.slope == 0.0  # ReLU
    assert len(net.decoders) == 2  # separate mean and variance decoders
    op.eval()
    with torch.no_grad():
        d = op.distribution(torch.rand(2, 3, 64, 64), 4.0, 3)
    assert d.mean.shape == (2, 3, 64, 64)


def test_mnist_is_table_2_and_cifar_table_4_svhn_table_5():
    mnist = WalkbackTrainer.default_config(MNIST)
    assert _arch(mnist) == ("conv", (16, 32), 5, 1024, "batch", "layer")
    assert mnist.fc_activation == "leaky"
    assert (mnist.lr, mnist.alpha) == (1e-4, 0.5)  # Tables 2-5: Adam, learning rate 0.0001
    net = build_operator(mnist, MNIST).net
    assert {n.kind for n in net.enc_norms} == {"batch"}
    assert {n.kind for n in net.fc_norms} == {"layer"} and net.slope == 0.02
    assert net.fc[0].in_features == 1568 and net.fc[-1].out_features == 1568
    # Table 2's rows: 5x5 stride-2 convs 16, 32 (BN, ReLU); strided deconvs 16 (BN, ReLU), 1
    # (no norm); two output layers (mean and variance)
    assert [(c.kernel_size, c.stride) for c in net.encoder] == [((5, 5), (2, 2))] * 2
    assert len(net.decoders) == 2
    assert [d.out_channels for d in net.decoders[0]] == [16, 1]
    assert [d.stride for d in net.decoders[0]] == [(2, 2)] * 2
    assert [n.kind for n in net.dec_norms[0]] == ["batch"]  # the last deconv has no norm
    cifar_info = DataInfo("cifar10", "image", (3, 32, 32))
    cifar = WalkbackTrainer.default_config(cifar_info)
    assert _arch(cifar) == ("conv", (64, 128, 256), 5, 2048, "batch", "batch")
    assert cifar.fc_activation == "relu"
    cnet = build_operator(cifar, cifar_info).net
    assert cnet.fc[0].in_features == 4096 and cnet.fc[0].out_features == 2048  # 4096 * 2048
    assert [lin.out_features for lin in cnet.fc] == [2048] * 4 + [4096]  # ... 2048 * 4096
    assert [d.out_channels for d in cnet.decoders[0]] == [128, 64, 3]  # Table 4's deconvs
    assert {n.kind for n in cnet.fc_norms} == {"batch"} and cnet.slope == 0.0  # BN, ReLU
    svhn = WalkbackTrainer.default_config(DataInfo("svhn", "image", (3, 32, 32)))
    assert svhn.fc_width == 1024 and svhn.fc_activation == "relu"
    binary = WalkbackTrainer.default_config(DataInfo("binarized-mnist", "image", (1, 28, 28)))
    assert binary.operator == "bernoulli"
    small = DataInfo("bin8", "image", (1, 8, 8), meta={"binary": True})
    cfg = WalkbackTrainer.default_config(small)
    assert isinstance(build_operator(cfg, small), BernoulliMLP)


def test_appendix_recipe_is_the_appendix_as_written():
    cls, cfg = build_config("walkback", MNIST, overrides={"recipe": "appendix"})  # --set
    t = cls(cfg, MNIST, "cpu")
    cfg = t.config
    # appendix F: K = 30 walk-away steps, T_t = sqrt(2)^t; Tables 2-5: reconstruction error
    assert (cfg.schedule, cfg.walk_steps, cfg.loss) == ("appendix", 30, "reconstruction")
    assert cfg.heat_factor == pytest.approx(math.sqrt(2))
    assert _arch(cfg) == ("conv", (16, 32), 5, 1024, "batch", "layer")
    walk = t.walk(0)
    assert len(walk) == 30 and walk.temperatures[0] == pytest.approx(math.sqrt(2))
    assert len(t.generation_walk()) == 30  # N = 30 annealing steps, the reversed schedule
    assert t.generation_walk().temperatures[0] == pytest.approx(math.sqrt(2) ** 30)


def test_algorithm1_recipe_and_explicit_settings_win():
    cls, cfg = build_config("walkback", MNIST, overrides={"recipe": "algorithm1"})
    t = cls(cfg, MNIST, "cpu")
    assert (t.config.schedule, t.config.loss, t.config.update) == ("doubling", "walkback", "online")
    # a field set explicitly (differing from the dataset default) is kept over the recipe
    cls, mine = build_config("walkback", MNIST, overrides={"recipe": "appendix", "walk_steps": 12})
    assert cls(mine, MNIST, "cpu").config.walk_steps == 12
    with pytest.raises(ValueError):
        recipes.settings("nonsense", "x", (2,))


def test_toy_setup_is_the_papers():
    info = DataInfo("swiss-roll", "vector", (2,))
    cfg = WalkbackTrainer.default_config(info)
    assert (cfg.schedule, cfg.walk_steps, cfg.heat_factor, cfg.lr, cfg.alpha) == (
        "appendix",
        30,
        1.1,
        1e-4,
        0.5,
    )
    assert cfg.per_step_norm  # appendix I: per-step parameters were needed for the MoG
    assert cfg.hidden == 0  # resolved per device: 4096 (paper) on a GPU, 256 on CPU
    trainer = WalkbackTrainer(cfg, info, "cpu")
    assert trainer.config.hidden == 256 and trainer.operator.net.linears[0].out_features == 256
    assert trainer.operator.step_dependent
    assert trainer.operator.net.norms[0].weight.shape[0] == 30  # one affine per walk step


def test_the_documented_defaults():
    """What the README's "Defaults by data" says: toys train 1000 minibatches; N1 = 5; the
    reconstruction loss's forward noise x 1e-5 (the authors' code); two hidden layers."""
    toy = WalkbackTrainer.default_config(DataInfo("swiss-roll", "vector", (2,)))
    assert toy.steps == 1000
    image = WalkbackTrainer.default_config(MNIST)
    assert (image.n_max, image.batch_size, image.lr, image.depth) == (5, 100, 1e-4, 2)
    assert image.reconstruction_noise == 1e-5


def test_a_cpu_machine_gets_the_cpu_setup_and_the_paper_is_four_flags_away(monkeypatch):
    monkeypatch.setattr(shared, "cuda_available", lambda: False)
    cls, cfg = build_config("walkback", MNIST)
    assert cfg.recipe == "algorithm1" and cfg.steps == WalkbackTrainer.CPU_STEPS
    assert (cfg.network, cfg.hidden, cfg.norm, cfg.lr) == ("mlp", 256, "batch", 1e-3)
    assert (cfg.schedule, cfg.loss, cfg.ema) == ("doubling", "walkback", 0.999)
    assert (cfg.skip, cfg.noise) == ("full", "learned")
    # every image recipe runs on the CPU setup there, an explicit --set of it kept
    for recipe in ("algorithm1", "appendix"):
        over = {"recipe": recipe, "network": "mlp", "hidden": 256}
        cls, mine = build_config("walkback", MNIST, overrides=over)
        t = cls(mine, MNIST, "cpu")
        assert (t.config.network, t.config.hidden, t.config.lr) == ("mlp", 256, 1e-3)
        assert t.config.schedule == ("appendix" if recipe == "appendix" else "doubling")
        # the appendix's reconstruction loss scores F itself: the paper's operator, no skip
        assert t.config.skip == ("none" if recipe == "appendix" else "full")
    # --set network=conv --set lr=1e-4 --set skip=none --set noise=network: the paper's
    # Table 2 setup on the CPU
    paper = {"network": "conv", "lr": 1e-4, "skip": "none", "noise": "network"}
    cls, paper = build_config("walkback", MNIST, overrides=paper)
    t = cls(paper, MNIST, "cpu")
    assert _arch(t.config) == ("conv", (16, 32), 5, 1024, "batch", "layer")
    assert (t.config.lr, t.config.noise, t.config.skip) == (1e-4, "network", "none")
    # the toys keep their appendix setup on any machine
    toy = WalkbackTrainer.default_config(DataInfo("swiss-roll", "vector", (2,)))
    assert toy.recipe == "appendix" and toy.lr == 1e-4
