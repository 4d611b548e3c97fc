"""The walk-back loss scores s_{t-1} under the operator applied at s_t (not at s_{t-1})."""

import pytest
import torch
from wb_testdata import training_steps

from gm.build import resolve
from gm.data import load_dataset
from gm.engine import seed_everything


def make_trainer(dataset="swiss-roll", **overrides):
    data = load_dataset(dataset, options={"n": 512})
    cls, cfg = resolve(
        "walkback",
        data.info,
        overrides={
            "hidden": 32,
            "batch_size": 64,
            "tmax": 16.0,
            "schedule": "doubling",
            **overrides,
        },
    )
    seed_everything(0)
    return cls(cfg, data.info, "cpu"), data


def test_step_loss_is_the_reverse_log_likelihood():
    trainer, data = make_trainer()
    op = trainer.operator
    s_prev = data.tensor("train")[:64]
    with torch.no_grad():
        s_next = op.distribution(s_prev, 2.0, 0).sample()
    inputs = []
    handle = op.net.register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
    loss = trainer.step_loss(s_prev, s_next, 2.0, 0)
    handle.remove()
    assert len(inputs) == 1 and torch.equal(inputs[0], s_next)  # F is applied at s_t
    right = -op.distribution(s_next, 2.0, 0).log_prob(s_prev).mean()
    wrong = -op.distribution(s_prev, 2.0, 0).log_prob(s_next).mean()
    assert torch.allclose(loss, right)
    assert not torch.allclose(loss, wrong)


def test_training_step_applies_the_loss_at_the_state_the_walk_moved_to():
    trainer, data = make_trainer(n_max=2)
    calls = []  # (input, gradient enabled) of every network evaluation
    trainer.operator.net.register_forward_pre_hook(
        lambda m, args: calls.append((args[0].detach().clone(), torch.is_grad_enabled()))
    )
    trainer.train(True)
    x = next(data.batches("train", 64))
    trainer.training_step(x)
    walk_calls = calls[1:]  # the first call measures the operator variance at the data
    sampling = [c for c, grad in walk_calls if not grad]
    scoring = [c for c, grad in walk_calls if grad]
    assert len(sampling) == len(scoring) >= 4 and torch.equal(sampling[0], x)
    for t in range(
        len(scoring) - 1
    ):  # the loss of step t is computed at s_t, where step t+1 starts
        assert torch.equal(scoring[t], sampling[t + 1])
        assert not torch.equal(scoring[t], sampling[t])


@pytest.mark.slow  # 7 s (durations run, 1 thread, load 4-7)
def test_walkback_learns_an_attractor_around_the_data():
    """Data at 3 +- 0.05 (1-D): after training, the operator's mean pulls states towards the
    data. Scoring the wrong way round (the forward step under the operator at s_{t-1}) only
    asks the mean to predict itself and gives no such pull."""
    from gm.data import DataInfo, Dataset

    g = torch.Generator().manual_seed(0)
    x = 3 + 0.05 * torch.randn(2048, 1, generator=g)
    data = Dataset(DataInfo("point", "vector", (1,)), {"train": x})
    cls, cfg = resolve(
        "walkback",
        data.info,
        overrides={"hidden": 64, "batch_size": 128, "lr": 1e-3, "tmax": 64.0, "n_max": 2},
    )
    seed_everything(0)
    trainer = cls(cfg, data.info, "cpu")
    training_steps(trainer, data.batches("train", 128), 150)
    trainer.train(False)
    probe = torch.tensor([[2.0], [4.0]])
    with torch.no_grad():
        mean = trainer.operator.distribution(probe, 1.0, 0).mean
    assert ((mean - 3).abs() < 0.8 * (probe - 3).abs()).all(), mean


def test_batch_update_minimises_the_sum_of_the_step_losses():
    """update="batch": one optimiser step on the walk's summed loss (the bound is a sum over
    steps, so a mean would weigh long walks less); the logged loss is the per-step mean."""
    trainer, data = make_trainer(update="batch", n_max=2)
    steps, stepped = [], []
    step_loss, optimizer_step = trainer.step_loss, trainer.optimizer_step

    def recording_step_loss(*args):
        loss = step_loss(*args)
        steps.append(loss.item())
        return loss

    def recording_optimizer_step(loss, *args, **kwargs):
        stepped.append(loss.item())
        return optimizer_step(loss, *args, **kwargs)

    trainer.step_loss, trainer.optimizer_step = recording_step_loss, recording_optimizer_step
    trainer.train(True)
    out = trainer.training_step(next(data.batches("train", 64)))
    assert len(steps) >= 4 and len(stepped) == 1
    assert stepped[0] == pytest.approx(sum(steps), rel=1e-5)
    assert out["loss"].item() == pytest.approx(sum(steps) / len(steps), rel=1e-5)
