"""Trainer.optimizer_step's ``enabled`` gate: a false gate leaves parameters, moments and
step counts bit for bit as they were (fused Adam's found_inf, or the where-based restore of
any other optimiser); a true gate is exactly a plain step. Trainer.adam honours
``fused_optimizer``. On CUDA too (``-m cuda``): fused Adam's found_inf there, and foreach
Adam's host-side step counts, the documented fallback that reads the gate once."""

import copy

import pytest
import torch

from gm.config import TrainConfig
from gm.data import DataInfo
from gm.testing import on_cuda
from gm.trainer import Trainer

DEVICES = ["cpu", on_cuda()]
INFO = DataInfo("toy", "vector", (3,))


def _setup(fused: str, device: str = "cpu"):
    torch.manual_seed(0)
    trainer = Trainer(TrainConfig(fused_optimizer=fused, lr=0.1), INFO, device)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    model = model.to(device)
    return trainer, model, trainer.adam(model.parameters(), betas=(0.5, 0.9))


def _loss(model, seed):
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(seed))
    return model(x.to(next(model.parameters()).device)).pow(2).mean()


def _gate(open_: bool, device: str) -> torch.Tensor:
    return torch.tensor(open_, device=device)


def _snapshot(model, opt):
    params = [p.detach().clone() for p in model.parameters()]
    state = [{k: v.clone() for k, v in opt.state[p].items()} for p in model.parameters()]
    return params, state


def _identical(a, b):
    (pa, sa), (pb, sb) = a, b
    assert all(torch.equal(x, y) for x, y in zip(pa, pb, strict=True))
    assert len(sa) == len(sb)
    for x, y in zip(sa, sb, strict=True):
        assert x.keys() == y.keys()
        assert all(torch.equal(x[k], y[k]) for k in x)


@pytest.mark.parametrize("fused", ["on", "off"])
def test_adam_honours_fused_optimizer(fused):
    _, _, opt = _setup(fused)
    assert bool(opt.defaults["fused"]) is (fused == "on")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fused", ["on", "off"])  # found_inf, the where-based restore
@pytest.mark.parametrize("clip", [None, 0.01])
def test_a_closed_gate_changes_nothing_and_an_open_one_is_a_plain_step(fused, clip, device):
    trainer, model, opt = _setup(fused, device)
    trainer.optimizer_step(_loss(model, 1), opt, clip=clip)  # Adam has moments and a step
    before = _snapshot(model, opt)
    for _ in range(2):
        trainer.optimizer_step(_loss(model, 2), opt, clip=clip, enabled=_gate(False, device))
    _identical(_snapshot(model, opt), before)
    assert all(p.grad is None for p in model.parameters())
    # open: exactly what a plain step does from the same state
    twin = copy.deepcopy(model)
    twin_opt = trainer.adam(twin.parameters(), betas=(0.5, 0.9))
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # not sharing step tensors
    trainer.optimizer_step(_loss(model, 3), opt, clip=clip, enabled=_gate(True, device))
    trainer.optimizer_step(_loss(twin, 3), twin_opt, clip=clip)
    _identical(_snapshot(model, opt), _snapshot(twin, twin_opt))
    assert not torch.equal(before[0][0], next(model.parameters()))  # the step moved it
    assert not hasattr(opt, "found_inf")  # no gate left behind for a later plain step


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fused", ["on", "off"])
def test_a_closed_first_step_leaves_a_fresh_optimiser(fused, device):
    """Closed on the very first step: the weights stay, and the next open step equals a
    fresh optimiser's first step (the state the gate created is a fresh one's zeros)."""
    trainer, model, opt = _setup(fused, device)
    twin = copy.deepcopy(model)
    twin_opt = trainer.adam(twin.parameters(), betas=(0.5, 0.9))
    start = [p.detach().clone() for p in model.parameters()]
    trainer.optimizer_step(_loss(model, 1), opt, enabled=_gate(False, device))
    assert all(torch.equal(a, p) for a, p in zip(start, model.parameters(), strict=True))
    trainer.optimizer_step(_loss(model, 2), opt, enabled=_gate(True, device))
    trainer.optimizer_step(_loss(twin, 2), twin_opt)
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters(), strict=True)
    )
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(opt.state[p]["step"], twin_opt.state[q]["step"])


@pytest.mark.parametrize(
    "fused, device", [("on", "cpu"), ("off", "cpu"), on_cuda("on", "cuda")]
)  # foreach Adam on CUDA keeps its step on the host: the documented one-read fallback
def test_the_gate_is_never_read_on_the_host(fused, device, monkeypatch):
    """Neither path turns ``enabled`` into a Python bool (on a GPU that is a sync)."""
    trainer, model, opt = _setup(fused, device)
    trainer.optimizer_step(_loss(model, 1), opt)
    before = _snapshot(model, opt)
    plain_bool = torch.Tensor.__bool__

    def no_host_read(t):
        if t.dtype == torch.bool and t.dim() == 0:
            raise AssertionError("the gate was read on the host")
        return plain_bool(t)

    monkeypatch.setattr(torch.Tensor, "__bool__", no_host_read)
    trainer.optimizer_step(_loss(model, 2), opt, enabled=_gate(False, device))
    monkeypatch.undo()
    _identical(_snapshot(model, opt), before)
