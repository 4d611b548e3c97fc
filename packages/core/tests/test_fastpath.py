"""gm.fastpath: the fast-path switch and the fallback when a compile nobody asked for fails
(a real torch.compile failure: an unknown backend)."""

import pytest
import torch

from gm import fastpath


def _run(compiled: bool) -> torch.Tensor:
    fn = torch.compile(torch.sin, backend="no-such-backend") if compiled else torch.sin
    return fn(torch.ones(3))


def test_wanted_defaults_to_cuda_only_and_obeys_an_explicit_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not fastpath.wanted(None, cpu) and fastpath.wanted(None, cuda)
    assert fastpath.wanted(True, cpu) and not fastpath.wanted(False, cuda)


def test_an_unrequested_compile_that_fails_falls_back_to_eager_with_a_warning():
    with pytest.warns(UserWarning, match="torch.compile failed .*; testing uncompiled"):
        out, failed = fastpath.compiled_or_eager(_run, True, None, "testing")
    assert failed and torch.equal(out, torch.sin(torch.ones(3)))
    out, failed = fastpath.compiled_or_eager(_run, False, None, "testing")
    assert not failed and torch.equal(out, torch.sin(torch.ones(3)))


def test_a_requested_compile_and_other_errors_raise():
    with pytest.raises(torch._dynamo.exc.TorchDynamoException):
        fastpath.compiled_or_eager(_run, True, True, "testing")

    def broken(compiled: bool):
        raise ValueError("not the compiler's fault")

    with pytest.raises(ValueError):
        fastpath.compiled_or_eager(broken, True, None, "testing")


def test_cuda_graphs_refuse_cpu_tensors():
    with pytest.raises(ValueError, match="CUDA graphs need CUDA tensors"):
        fastpath.cuda_graphed(torch.sin, torch.ones(3))
