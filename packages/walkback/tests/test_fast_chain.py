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
    eager, eager_frames, out, frames = _chains(op, s0, compile="off", channels_last="off")
    assert torch.equal(eager, out)
    assert len(frames) == len(eager_frames)
    assert all(torch.equal(a, b) for a, b in zip(eager_frames, frames, strict=True))
    assert not torch.equal(eager, s0)


def test_channels_last_conv_chain_matches_to_float_tolerance_and_restores_the_weights():
    _, op, s0 = _ops()[1]
    before = {k: v.clone() for k, v in op.state_dict().items()}
    eager, _, out, frames = _chains(op, s0, compile="off", channels_last="on")
    assert out.is_contiguous() and all(f.is_contiguous() for f in frames)
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-5)
    for k, v in op.state_dict().items():  # weights back in the default layout, unchanged
        assert v.is_contiguous() and torch.equal(v, before[k]), k


@pytest.mark.parametrize("case", [0, 1], ids=["mlp", "conv"])
@pytest.mark.slow  # 19 s (durations run, 1 thread, load 4-7)
def test_compiled_fast_chain_matches_eager_to_float_tolerance(case):
    _, op, s0 = _ops()[case]
    eager, _, out, _ = _chains(op, s0, compile="on")
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-5)
    # a different seed gives a different chain (the comparison can fail)
    torch.manual_seed(2)
    other, _ = chains.run_chain(op, s0, WALK)
    assert not torch.allclose(other, eager, rtol=1e-4, atol=1e-5)


def test_compile_is_auto_on_cuda_only_and_on_or_off_where_asked():
    op, cpu, cuda = _ops()[0][1], torch.device("cpu"), torch.device("cuda")
    assert not chains.FastChain(op).compiles(cpu)  # no chain length makes CPU compile
    assert chains.FastChain(op).compiles(cuda)
    assert chains.FastChain(op, compile="on").compiles(cpu)
    assert not chains.FastChain(op, compile="off").compiles(cuda)


def _failing_backend(graph, inputs):
    raise RuntimeError("no C++ compiler here")  # what a machine without one meets


def _bad_backend(monkeypatch):
    """torch.compile with a backend that fails: compiling fails at the first call."""
    real = torch.compile
    monkeypatch.setattr(
        torch, "compile", lambda fn, **kw: real(fn, **{**kw, "backend": _failing_backend})
    )


def test_a_failing_compiler_falls_back_to_the_eager_chain_when_compile_was_not_asked_for(
    monkeypatch,
):
    from gm import fastpath

    _, op, s0 = _ops()[0]
    torch.manual_seed(1)
    eager, _ = chains.run_chain(op, s0, WALK)
    _bad_backend(monkeypatch)
    # "auto" compiles where the table says it is faster: here, for this test, on CPU
    monkeypatch.setitem(fastpath.FASTER_ON, "compile", ("cpu", "cuda"))
    fast = chains.FastChain(op)
    torch.manual_seed(1)
    with pytest.warns(UserWarning, match="running the chain uncompiled"):
        out, _ = fast.run(s0, WALK)
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-5)  # the same chain, eager


def test_a_failing_compiler_that_was_asked_for_raises(monkeypatch):
    _, op, s0 = _ops()[0]
    _bad_backend(monkeypatch)
    with pytest.raises(torch._dynamo.exc.TorchDynamoException):  # the user's to see
        chains.FastChain(op, compile="on").run(s0, WALK)
