"""CUDA-only paths (``pytest -m cuda``; bench/gpu.py runs them on the first GPU machine):
the sampling chain with a CUDA graph per step (compiled or not). Under a graph the draws
come from the graph-safe generator, not draw for draw the eager ones, so the graphed chain
is checked against the eager chain in distribution: 4,096 chains, equal moments."""

import pytest
import torch

from gm.testing import cuda_only
from gm_walkback import chains, schedules
from gm_walkback.operators import GaussianMLP

WALK = schedules.doubling(heat=4).reverse(extra_steps=3)  # 7 steps over 4 levels


@cuda_only
@pytest.mark.parametrize("compile", ["off", "on"])
def test_the_graphed_chain_walks_like_the_eager_one(compile):
    torch.manual_seed(0)
    op = GaussianMLP((2,), hidden=32, norm="layer", levels=4, per_step=True).cuda().eval()
    s0 = torch.randn(4096, 2, device="cuda")
    torch.manual_seed(1)
    with torch.no_grad():
        eager, _ = chains.run_chain(op, s0, WALK)
    fast = chains.FastChain(op, compile=compile, cuda_graph="on")
    graphed, _ = fast.run(s0, WALK)
    again, _ = fast.run(s0, WALK)  # the kept graphs, new draws
    assert graphed.is_cuda and torch.isfinite(graphed).all()
    assert not torch.equal(graphed, again)
    for a in (graphed, again):
        torch.testing.assert_close(a.mean(0), eager.mean(0), atol=0.1, rtol=0)
        torch.testing.assert_close(a.std(0), eager.std(0), atol=0.1, rtol=0.1)
    assert (eager - s0).abs().mean() > 0.05  # the chain moves: the comparison can fail
