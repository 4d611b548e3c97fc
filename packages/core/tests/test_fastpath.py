"""gm.fastpath: the one switch rule, FastStep's compile-or-eager fallback (a real
torch.compile failure: an unknown backend), and chunked's equal padded chunks."""

import pytest
import torch

from gm import fastpath
from gm.errors import GMError
from gm.testing import cuda_only

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_follows_the_one_table_and_on_off_obey():
    assert not fastpath.use("auto", "compile", CPU) and fastpath.use("auto", "compile", CUDA)
    assert fastpath.use("on", "compile", CPU) and not fastpath.use("off", "compile", CUDA)
    for path, devices in fastpath.FASTER_ON.items():
        for device in (CPU, CUDA):
            assert fastpath.use("auto", path, device) == (device.type in devices)


def test_a_cuda_graph_never_runs_off_cuda_and_bad_switches_are_refused():
    assert not fastpath.use("on", "cuda_graph", CPU)
    with pytest.raises(GMError, match="must be auto, on or off"):
        fastpath.use(True, "compile", CPU)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown fast path"):
        fastpath.use("on", "warp-drive", CPU)


def test_an_unrequested_compile_that_fails_falls_back_to_eager_once(monkeypatch):
    monkeypatch.setitem(fastpath.FASTER_ON, "compile", ("cpu",))  # "auto" compiles here
    step = fastpath.FastStep(
        torch.sin, what="testing", compile_options={"backend": "no-such-backend"}
    )
    assert step.compiles(CPU)
    with pytest.warns(UserWarning, match="torch.compile failed .*; testing uncompiled"):
        out = step(torch.ones(3))
    assert torch.equal(out, torch.sin(torch.ones(3)))
    assert not step.compiles(CPU)  # not tried again
    assert torch.equal(step(torch.zeros(2)), torch.zeros(2))


def test_a_requested_compile_and_other_errors_raise():
    step = fastpath.FastStep(
        torch.sin, compile="on", what="testing", compile_options={"backend": "no-such-backend"}
    )
    with pytest.raises(torch._dynamo.exc.TorchDynamoException):
        step(torch.ones(3))

    def broken(x):
        raise ValueError("not the compiler's fault")

    with pytest.raises(ValueError):
        fastpath.FastStep(broken, compile="on", what="testing")(torch.ones(3))


def test_off_runs_the_function_itself():
    calls = []
    step = fastpath.FastStep(lambda x: calls.append(1) or x + 1, compile="off", what="t")
    assert torch.equal(step(torch.ones(2)), torch.full((2,), 2.0)) and calls == [1]


def test_chunked_runs_equal_padded_chunks_and_cuts_them():
    sizes = []

    def fn(x, y):
        sizes.append(len(x))
        return x * 2 + y

    x, y = torch.arange(10.0), torch.ones(10)
    out = fastpath.chunked(fn, x, y, rows=4)
    assert torch.equal(out, x * 2 + 1)
    assert sizes == [4, 4, 4]  # 10 rows: three chunks of 4, the last padded
    assert fastpath.chunked(fn, x[:0], y[:0], rows=4).shape == (0,)


def test_cuda_graphs_refuse_cpu_tensors():
    with pytest.raises(ValueError, match="CUDA graphs need CUDA tensors"):
        fastpath.cuda_graphed(torch.sin, torch.ones(3))


@cuda_only
def test_a_cuda_graph_replays_the_step_on_new_inputs_and_leaves_the_rng_alone():
    """The captured step gives the eager results for every new input (the static inputs
    are refilled), its output buffer is reused (callers copy), and the warm-up consumes
    no random numbers the caller will see."""
    torch.manual_seed(0)
    w = torch.randn(5, 5, device=CUDA)

    def step(x, noise):
        return torch.tanh(x @ w) + noise

    x0, n0 = torch.randn(4, 5, device=CUDA), torch.randn(4, 5, device=CUDA)
    state = torch.cuda.get_rng_state()
    graphed = fastpath.cuda_graphed(step, x0, n0)
    assert torch.equal(torch.cuda.get_rng_state(), state)
    for seed in range(3):
        g = torch.Generator(device=CUDA).manual_seed(seed)
        x = torch.randn(4, 5, device=CUDA, generator=g)
        noise = torch.randn(4, 5, device=CUDA, generator=g)
        out = graphed(x, noise)
        torch.testing.assert_close(out, step(x, noise))
    assert graphed(x0, n0).data_ptr() == out.data_ptr()  # the graph's own buffer


@cuda_only
def test_fast_step_graphs_once_per_shape_and_chunks_serve_any_length():
    step = fastpath.FastStep(lambda x: x * 2 + 1, compile="off", cuda_graph="on", what="t")
    x = torch.arange(10.0, device=CUDA)
    out = fastpath.chunked(step, x, rows=4)
    torch.testing.assert_close(out, x * 2 + 1)
    assert len(step._graphs) == 1  # three chunks of 4 (the last padded): one graph
    torch.testing.assert_close(fastpath.chunked(step, x[:7], rows=4), x[:7] * 2 + 1)
