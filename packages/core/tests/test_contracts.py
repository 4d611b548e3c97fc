"""Core's own built-ins pass the contracts that plugins subclass."""

from gm.testing import DatasetContract, TrainerContract


class TestGaussianModel(TrainerContract):
    model = "gaussian"
    dataset = "swiss-roll"
    overrides = {"batch_size": 64}


class TestSwissRoll(DatasetContract):
    name = "swiss-roll"
    options = {"n": 500}


class TestMogGrid(DatasetContract):
    name = "mog-grid"


class TestMarkovChain(DatasetContract):
    name = "markov-chain"
    options = {"n": 64}


def test_gaussian_fit_learns_the_data_moments():
    import torch

    from gm.build import resolve
    from gm.data import load_dataset

    data = load_dataset("circle")
    cls, cfg = resolve("gaussian", data.info, overrides={"lr": 0.02})
    trainer = cls(cfg, data.info)
    batches = data.batches("train", 256)
    for _ in range(600):
        trainer.training_step(next(batches))
    fitted = trainer.density.distribution()
    x = data.raw("train")
    assert torch.allclose(fitted.mean, x.mean(0), atol=0.05)
    assert torch.allclose(fitted.covariance_matrix, torch.cov(x.T), atol=0.05)
    ll = trainer.evaluate(data, "test", None)["log_likelihood"]
    # the circle has covariance 0.5 I, so the best Gaussian scores -log(2 pi e 0.5) = -2.1447
    assert abs(ll - (-2.1447)) < 0.02
