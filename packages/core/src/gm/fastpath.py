"""Shared pieces of the sampling fast paths: a fixed-shape step replayed as a CUDA graph.

A sampling loop (a walkback chain, a free-running RNN, an imputation roll-out) calls one
step function many times on tensors of one shape. On CUDA, launching its dozens of small
kernels from Python each step costs more than running them; captured once as a CUDA graph,
a step is one launch. :func:`cuda_graphed` does the capture for any step whose arguments
and results are tensors of fixed shapes; its random draws come from the graph-safe
generator state, so a replayed chain equals the eager chain in distribution, not bit for bit.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def wanted(setting: bool | None, device: torch.device) -> bool:
    """A GPU fast-path switch: ``None`` means "on CUDA only", else the given choice."""
    return device.type == "cuda" if setting is None else bool(setting)


def wanted_graph(setting: bool | None, device: torch.device) -> bool:
    """The CUDA-graph switch: on CUDA unless turned off (``False``); never elsewhere."""
    return device.type == "cuda" and setting is not False


def compiled_or_eager(
    run: Callable[[bool], T], compiled: bool, asked: bool | None, what: str
) -> tuple[T, bool]:
    """``(run(compiled), False)``; but if ``compiled`` was a default (``asked`` is None) and
    torch.compile's machinery fails (no C++ compiler, an unsupported op), warn once and
    return ``(run(False), True)``, so a fast path nobody asked for never stops a run. A
    compile that was asked for raises as it is. ``what`` completes "... uncompiled"."""
    try:
        return run(compiled), False
    except Exception as error:
        from_compiler = (type(error).__module__ or "").startswith(
            ("torch._dynamo", "torch._inductor")
        )
        if not compiled or asked or not from_compiler:
            raise
        warnings.warn(
            f"torch.compile failed ({type(error).__name__}); {what} uncompiled "
            "(compile=False / --compile false skips the attempt)",
            stacklevel=3,
        )
        return run(False), True


def cuda_graphed(step: Callable, *example: torch.Tensor, warmup: int = 3) -> Callable:
    """``step(*args)`` captured as a CUDA graph at the shapes of ``example``.

    Static input buffers are filled from ``example``; warm-up calls (compilation,
    autotuning, cuDNN plans) run on a side stream and the generator state is restored
    after them, so the warm-up consumes no random numbers the chain will see. Each call of
    the result copies its arguments into the static inputs and replays the graph, with no
    host synchronisation; it returns the graph's static output, overwritten by the next
    call, so callers copy what they keep.
    """
    device = example[0].device
    if device.type != "cuda":
        raise ValueError(f"CUDA graphs need CUDA tensors, not {device.type} ones")
    static_in = [t.clone() for t in example]
    rng = torch.cuda.get_rng_state(device)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(warmup):
            step(*static_in)
    torch.cuda.current_stream(device).wait_stream(side)
    torch.cuda.set_rng_state(rng, device)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = step(*static_in)

    def replay(*args: torch.Tensor):
        for buffer, value in zip(static_in, args, strict=True):
            buffer.copy_(value)
        graph.replay()
        return static_out

    return replay
