"""Temperature schedules, and per-step parameters during extra sampling steps."""

import math

import pytest
import torch

from gm_walkback import chains, schedules
from gm_walkback.operators import GaussianMLP


def test_doubling_is_algorithm_1():
    walk = schedules.doubling(heat=4, n=2)  # K = 4 + 2; heat after step t > n
    assert walk.temperatures == (1.0, 1.0, 1.0, 2.0, 4.0, 8.0)
    assert walk.levels == (0, 0, 0, 1, 2, 3)
    assert schedules.heat_levels(1000.0, cap=16) == 10  # ceil(log2 1000)
    assert schedules.heat_levels(1e9, cap=16) == 16
    assert schedules.heat_levels(1.5, cap=16) == 1


def test_appendix_schedule_and_generation_order():
    walk = schedules.appendix(30, math.sqrt(2))  # appendix F: T_t = T_0 sqrt(2)^t, t = 1..K
    assert len(walk) == 30 and walk.temperatures[0] == pytest.approx(math.sqrt(2))
    assert walk.temperatures[-1] == pytest.approx(math.sqrt(2) ** 30)
    gen = walk.reverse(extra_steps=3)
    assert gen.levels[:30] == tuple(range(29, -1, -1)) and gen.levels[30:] == (0, 0, 0)
    assert gen.temperatures[30:] == (1.0, 1.0, 1.0)


def test_extra_sampling_steps_use_the_coldest_steps_parameters():
    """The original code indexed its per-step normalisation by the step number and wrapped
    to the hottest step's parameters for extra steps; the T = 1 step's are right."""
    torch.manual_seed(0)
    op = GaussianMLP((2,), hidden=16, norm="layer", levels=4, per_step=True)
    with torch.no_grad():  # make the levels' parameters clearly different
        for norm in op.net.norms:
            norm.weight.copy_(torch.randn_like(norm.weight) + 1)
            norm.bias.copy_(torch.randn_like(norm.bias))
    op.eval()
    walk = schedules.doubling(heat=4, n=0).reverse(extra_steps=3)
    s0 = torch.randn(8, 2)
    seen = []
    handle = op.net.register_forward_pre_hook(lambda m, args: seen.append(args[1]))
    torch.manual_seed(5)
    out, _ = chains.run_chain(op, s0, walk)
    handle.remove()
    assert seen == [3, 2, 1, 0, 0, 0, 0]
    # the same chain by hand: cooling, then three steps of the level-0 (T = 1) operator
    torch.manual_seed(5)
    s = s0
    for lv in (3, 2, 1, 0):
        s = chains.draw(op.distribution(s, 2.0**lv, lv))
    state = torch.get_rng_state()
    cooled = s
    for _ in range(3):
        s = chains.draw(op.distribution(s, 1.0, 0))
    assert torch.equal(out, s)
    torch.set_rng_state(state)  # the same noise through the hottest level's parameters differs
    wrong = cooled
    for _ in range(3):
        wrong = chains.draw(op.distribution(wrong, 1.0, 3))
    assert not torch.allclose(wrong, out)


def test_compiled_style_step_with_tensor_indices_matches_eager():
    torch.manual_seed(0)
    op = GaussianMLP((2,), hidden=16, norm="layer", levels=4, per_step=True).eval()
    walk = schedules.doubling(heat=4).reverse(extra_steps=2)
    s0 = torch.randn(8, 2)
    torch.manual_seed(1)
    eager, _ = chains.run_chain(op, s0, walk)

    torch.manual_seed(1)
    tensors = s0  # the walk as a compiled or graphed step takes it: device-tensor arguments
    for t, lv in chains.walk_args(walk, s0.device, tensors=True):
        assert torch.is_tensor(t) and torch.is_tensor(lv)
        tensors = chains.chain_step(op, tensors, t, lv)
    assert torch.allclose(eager, tensors)
    _, frames = chains.run_chain(op, s0, walk, every=2)
    assert len(frames) == 1 + math.ceil(len(walk) / 2)


@pytest.mark.slow  # 6 s (durations run, 1 thread, load 4-7)
def test_a_chain_step_is_one_graph_without_host_reads():
    """A whole step (per-step batch norm indexed by a device tensor, the Gaussian draw, the
    inpainting clamp) traces to one graph through aten with fake tensors: any read of a
    value back to the host (``.item()``, indexing by a 0-d tensor) fails here, so the step
    can be compiled or captured as a CUDA graph."""
    from gm_walkback.operators import GaussianConv

    torch.manual_seed(0)
    ops = [
        GaussianMLP((1, 8, 8), hidden=16, norm="batch", levels=4, per_step=True).eval(),
        GaussianConv(
            (1, 8, 8), channels=(4,), fc_layers=1, fc_width=8, norm="batch", levels=4, per_step=True
        ).eval(),
    ]
    s = torch.rand(3, 1, 8, 8)
    known = torch.rand(3, 1, 8, 8) < 0.5
    step = torch.compile(chains.chain_step, backend="aot_eager", fullgraph=True)
    for op in ops:
        out = step(op, s, torch.tensor(2.0), torch.tensor(3), known, s)
        assert out.shape == s.shape and torch.equal(out[known], s[known])
