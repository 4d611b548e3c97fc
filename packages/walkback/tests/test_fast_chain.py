"""The sampling chain's fast path (chains.FastChain) is the eager chain: same seed, same
states (bit for bit with only inference mode; to float tolerance with channels-last convs or
torch.compile, which reorder arithmetic)."""

import pytest
import torch

from gm_walkback import chains, schedules
from gm_walkback.operators import GaussianConv, GaussianMLP


def _ops():
    torch.manual_seed(0)
    mlp = GaussianMLP((2,), hidden=32, norm="layer", levels=4, per_step=True).eval()
    conv = GaussianConv(
        (1, 8, 8), channels=(4, 8), fc_layers=2, fc_width=16, norm="batch", levels=4, per_step=True
    ).eval()
    with torch.no_grad():  # non-trivial running statistics
        for n in conv.modules():
            if hasattr(n, "running_var"):
                n.running_mean.uniform_(-0.2, 0.2)
                n.running_var.uniform_(0.5, 2.0)
    return [("mlp", mlp, torch.randn(16, 2)), ("conv", conv, torch.rand(4, 1, 8, 8))]


WALK = schedules.doubling(heat=4).reverse(extra_steps=3)  # 7 steps over 4 levels


def _chains(op, s0, **fast):
    torch.manual_seed(1)
    eager, eager_frames = chains.run_chain(op, s0, WALK, every=3)
    torch.manual_seed(1)
    out, frames = chains.FastChain(op, **fast).run(s0, WALK, every=3)
    return eager, eager_frames, out, frames


@pytest.mark.parametrize("case", [0, 1], ids=["mlp", "conv"])
def test_fast_chain_without_compile_is_the_eager_chain_bit_for_bit(case):
    _, op, s0 = _ops()[case]
    eager, eager_frames, out, frames = _chains(op, s0, compile=False, channels_last=False)
    assert torch.equal(eager, out)
    assert len(frames) == len(eager_frames)
    assert all(torch.equal(a, b) for a, b in zip(eager_frames, frames, strict=True))
    assert not torch.equal(eager, s0)


def test_channels_last_conv_chain_matches_to_float_tolerance_and_restores_the_weights():
    _, op, s0 = _ops()[1]
    before = {k: v.clone() for k, v in op.state_dict().items()}
    eager, _, out, frames = _chains(op, s0, compile=False, channels_last=True)
    assert out.is_contiguous() and all(f.is_contiguous() for f in frames)
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-5)
    for k, v in op.state_dict().items():  # weights back in the default layout, unchanged
        assert v.is_contiguous() and torch.equal(v, before[k]), k


@pytest.mark.parametrize("case", [0, 1], ids=["mlp", "conv"])
def test_compiled_fast_chain_matches_eager_to_float_tolerance(case):
    _, op, s0 = _ops()[case]
    eager, _, out, _ = _chains(op, s0, compile=True)
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-5)
    # a different seed gives a different chain (the comparison can fail)
    torch.manual_seed(2)
    other, _ = chains.run_chain(op, s0, WALK)
    assert not torch.allclose(other, eager, rtol=1e-4, atol=1e-5)


def test_long_chains_compile_by_default_on_cpu_and_short_ones_do_not():
    fast, cpu = chains.FastChain(None), torch.device("cpu")
    assert not fast.compiles(cpu, chains.LONG_CHAIN - 1)
    assert fast.compiles(cpu, chains.LONG_CHAIN)
    assert fast.compiles(torch.device("cuda"), 1)
    assert not chains.FastChain(None, compile=False).compiles(cpu, 10**6)


def test_a_failing_compiler_falls_back_to_the_eager_chain_when_compile_was_not_asked_for():
    _, op, s0 = _ops()[0]
    walk = schedules.Walk((1.0,) * chains.LONG_CHAIN, (0,) * chains.LONG_CHAIN)
    torch.manual_seed(1)
    eager, _ = chains.run_chain(op, s0, walk)
    fast = chains.FastChain(op, compile_options={"backend": "no-such-backend"})
    torch.manual_seed(1)
    with pytest.warns(UserWarning, match="running the chain uncompiled"):
        out, _ = fast.run(s0, walk)
    assert fast.compile is False and out.shape == eager.shape and torch.isfinite(out).all()
    with pytest.raises(
        torch._dynamo.exc.TorchDynamoException
    ):  # asked for explicitly: the error is the user's to see
        chains.FastChain(op, compile=True, compile_options={"backend": "no-such-backend"}).run(
            s0, WALK
        )
