"""CUDA-only paths (``pytest -m cuda``; bench/gpu.py runs them on the first GPU machine):
the sampler as a CUDA graph draws the eager loop's samples (the noise is drawn outside the
graph), and on CUDA, where "auto" keeps the gate a device tensor (no host read), training
steps with the gates open and closed match the eager options."""

import pytest
import torch
from test_fast_paths import EAGER, SMALL

from gm import build
from gm.builtins.toy import markov_chain
from gm.testing import cuda_only
from gm_professor_forcing import sampling
from gm_professor_forcing.generators import ContinuousGRU, TokenGRU

DATA = markov_chain(n=64, length=16)


@cuda_only
@pytest.mark.parametrize(
    "make",
    [
        lambda: TokenGRU(vocab_size=7, hidden=16, layers=2, embed=4),
        lambda: ContinuousGRU(3, hidden=16, layers=2, output="mixture", components=3),
    ],
    ids=["tokens-2-layers", "mixture"],
)
@pytest.mark.parametrize("compile", ["off", "on"])
def test_the_graphed_sampler_draws_the_eager_samples(make, compile):
    torch.manual_seed(0)
    g = make().cuda().eval()
    runs = {}
    for name, seed, graph in [("eager", 3, "off"), ("graphed", 3, "on"), ("other", 4, "on")]:
        torch.manual_seed(seed)
        fast = "off" if name == "eager" else compile
        runs[name] = sampling.sample(g, 5, 12, 0.8, compile=fast, cuda_graph=graph)
    eager, graphed, other = runs["eager"], runs["graphed"], runs["other"]
    assert graphed.shape[:2] == (5, 12) and graphed.is_cuda
    if eager.is_floating_point():
        torch.testing.assert_close(graphed, eager, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(other, eager, atol=1e-2)
    else:
        assert torch.equal(graphed, eager)
        assert not torch.equal(other, eager)


def _trainer(**over):
    cls, cfg = build.resolve("professor-forcing", DATA.info, "cuda", overrides={**SMALL, **over})
    torch.manual_seed(0)
    return build.trainer(cls, cfg, DATA.info, "cuda")


@cuda_only
@pytest.mark.parametrize("gates", [{"gate_g": -1.0}, {"gate_g": 2.0}, {"gate_d": -1.0}])
def test_gated_steps_on_cuda_match_the_eager_options(gates):
    fast, eager = _trainer(**gates), _trainer(**EAGER, **gates)
    for i in range(3):
        batch = DATA.raw("train")[16 * i : 16 * (i + 1)].cuda()
        torch.manual_seed(10 + i)
        a = fast.training_step(batch)
        torch.manual_seed(10 + i)
        b = eager.training_step(batch)
        for k in a:
            torch.testing.assert_close(a[k], b[k], atol=1e-4, rtol=1e-4, msg=k)
    for pa, pb in zip(fast.generator.parameters(), eager.generator.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, atol=1e-4, rtol=1e-4)
