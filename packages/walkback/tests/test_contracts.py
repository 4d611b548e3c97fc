"""gm.testing's contracts for the operators and both models, on toy and tiny image data."""

import torch

from gm.testing import TrainerContract, TransitionOperatorContract
from gm_walkback.operators import BernoulliConv, BernoulliMLP, GaussianConv, GaussianMLP

SMALL = {"hidden": 32, "batch_size": 64, "n_max": 2, "tmax": 16.0, "schedule": "doubling"}


class TestWalkbackToy(TrainerContract):
    model = "walkback"
    dataset = "swiss-roll"
    data_options = {"n": 512}
    overrides = SMALL


class TestWalkbackAppendixBatch(TrainerContract):
    model = "walkback"
    dataset = "mog-grid"
    data_options = {"n": 512}
    overrides = {**SMALL, "schedule": "appendix", "walk_steps": 6, "update": "batch"}


class TestWalkbackReconstruction(TrainerContract):
    model = "walkback"
    dataset = "circle"
    data_options = {"n": 512}
    overrides = {**SMALL, "loss": "reconstruction"}


class TestWalkbackImagesMLP(TrainerContract):
    model = "walkback"
    dataset = "wb-tiny-images"
    overrides = {"hidden": 32, "batch_size": 32, "n_max": 1, "tmax": 8.0}


class TestWalkbackImagesConv(TrainerContract):
    model = "walkback"
    dataset = "wb-tiny-images"
    overrides = {
        "network": "conv",
        "conv_channels": "4,8",
        "fc_layers": 2,
        "fc_width": 16,
        "norm": "batch",
        "batch_size": 16,
        "n_max": 1,
        "tmax": 8.0,
    }


class TestWalkbackBernoulli(TrainerContract):
    model = "walkback"
    dataset = "wb-tiny-images"
    overrides = {"operator": "bernoulli", "hidden": 32, "batch_size": 32, "n_max": 1, "tmax": 8.0}


class TestDiffusionToy(TrainerContract):
    model = "diffusion"
    dataset = "swiss-roll"
    data_options = {"n": 512}
    overrides = {"hidden": 32, "batch_size": 64, "diffusion_steps": 20}


class TestDiffusionImages(TrainerContract):
    model = "diffusion"
    dataset = "wb-tiny-images"
    overrides = {
        "network": "conv",
        "conv_channels": "4,8",
        "fc_layers": 2,
        "fc_width": 16,
        "batch_size": 16,
        "diffusion_steps": 10,
    }


class TestGaussianMLP(TransitionOperatorContract):
    def make_operator(self):
        return GaussianMLP((2,), hidden=16, norm="layer", levels=3, per_step=True)

    def make_state(self, batch=4):
        return torch.randn(batch, 2)


class TestGaussianConv(TransitionOperatorContract):
    def make_operator(self):
        return GaussianConv(
            (3, 8, 8),
            channels=(4, 8),
            fc_layers=2,
            fc_width=16,
            norm="batch",
            levels=3,
            per_step=True,
        )

    def make_state(self, batch=4):
        return torch.rand(batch, 3, 8, 8)


class TestBernoulliMLP(TransitionOperatorContract):
    def make_operator(self):
        return BernoulliMLP((1, 4, 4), hidden=16, norm="none")

    def make_state(self, batch=4):
        return torch.randint(0, 2, (batch, 1, 4, 4)).float()


class TestBernoulliConv(TransitionOperatorContract):
    def make_operator(self):
        return BernoulliConv(
            (1, 8, 8), channels=(4,), fc_layers=1, fc_width=8, norm="layer", levels=2, per_step=True
        )

    def make_state(self, batch=4):
        return torch.randint(0, 2, (batch, 1, 8, 8)).float()


SKIP = {"skip": "full", "noise": "learned", "skip_c": 0.125, "batch_size": 32, "n_max": 1}


class TestWalkbackImagesSkip(TrainerContract):
    """The CPU image default's operator: the MLP inside the full-covariance skip (its G, the
    data's moments and p*'s covariance are part of the checkpoint and of an exact resume)."""

    model = "walkback"
    dataset = "wb-tiny-images"
    overrides = {**SKIP, "hidden": 32, "ema": 0.9}


class TestWalkbackImagesConvSkip(TrainerContract):
    model = "walkback"
    dataset = "wb-tiny-images"
    overrides = {
        **SKIP,
        "skip": "diagonal",
        "network": "conv",
        "conv_channels": "4,8",
        "fc_layers": 2,
        "fc_width": 16,
        "norm": "batch",
        "batch_size": 16,
    }
