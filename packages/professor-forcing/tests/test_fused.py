"""The fused free-running node equals the step-by-step autograd version: draws, states,
outputs and every gradient."""

import pytest
import torch

from gm_professor_forcing.generators import TokenGRU


def _pair():
    torch.manual_seed(0)
    fused = TokenGRU(vocab_size=7, hidden=20, layers=1, embed=6)
    reference = TokenGRU(vocab_size=7, hidden=20, layers=1, embed=6)
    reference.load_state_dict(fused.state_dict())
    reference.fused = "off"
    return fused, reference


def _loss(behaviour):
    w = torch.linspace(-1, 1, behaviour.hidden.shape[-1])
    return (behaviour.hidden * w).pow(2).sum() + behaviour.outputs.sin().sum()


def _grads(g):
    return {k: p.grad.clone() for k, p in g.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_fused_free_running_matches_step_by_step(temperature):
    fused, reference = _pair()
    results = []
    for g in (fused, reference):
        torch.manual_seed(3)
        tokens, behaviour = g.free_running(5, 25, temperature)
        _loss(behaviour).backward()
        results.append((tokens, behaviour, _grads(g)))
    (ta, ba, ga), (tb, bb, gb) = results
    assert torch.equal(ta, tb)
    assert torch.allclose(ba.hidden, bb.hidden, atol=1e-5)
    assert torch.allclose(ba.outputs, bb.outputs, atol=1e-5)
    assert ga.keys() == gb.keys() and "gru.weight_hh_l0" in ga and "embedding.weight" in ga
    for k in ga:
        assert torch.allclose(ga[k], gb[k], atol=1e-4, rtol=1e-4), k


def test_fused_scheduled_sampling_matches_step_by_step():
    fused, reference = _pair()
    x = torch.randint(0, 7, (6, 18), generator=torch.Generator().manual_seed(1))
    results = []
    for g in (fused, reference):
        torch.manual_seed(4)
        behaviour = g.scheduled(x, 0.6)
        _loss(behaviour).backward()
        results.append((behaviour, _grads(g)))
    (ba, ga), (bb, gb) = results
    assert torch.allclose(ba.hidden, bb.hidden, atol=1e-5)
    for k in ga:
        assert torch.allclose(ga[k], gb[k], atol=1e-4, rtol=1e-4), k


def test_fused_continues_from_a_state_with_its_gradient():
    fused, reference = _pair()
    h0 = torch.randn(1, 3, 20, requires_grad=True)
    prev = torch.tensor([1, 2, 3])
    grads = []
    for g in (fused, reference):
        torch.manual_seed(5)
        _, behaviour = g.free_running(3, 10, state=h0, prev=prev)
        (grad,) = torch.autograd.grad(_loss(behaviour), h0)
        grads.append(grad)
    assert torch.allclose(*grads, atol=1e-5)


def test_sampling_without_states_draws_the_same_tokens():
    fused, _ = _pair()
    torch.manual_seed(6)
    a = fused.sample_tokens(4, 40, 0.8)
    torch.manual_seed(6)
    with torch.no_grad():
        b, _ = fused.free_running(4, 40, 0.8)
    assert torch.equal(a, b)
