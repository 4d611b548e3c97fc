"""The fast paths' one convention: a switch type, a default rule, and a step runner.

Every fast path (a compiled step, a CUDA graph, channels-last memory, a fused optimiser,
a hand-fused RNN) is a config field of type :data:`Switch`: ``"on"``, ``"off"``, or
``"auto"``, which turns it on exactly on the devices where ``bench/`` measured it faster
(:func:`faster_on`: core's rows, :data:`FASTER_ON`, and the rows plugins declare through
the ``gm_fast_paths`` hook; the figures are in docs/benchmarks.md).

A sampling loop (a walkback chain, a free-running RNN, an imputation roll-out) calls one
pure step function many times on tensors of fixed shapes. :class:`FastStep` runs such a
step compiled, as a replayed CUDA graph, or eagerly, by the switches; :func:`chunked` runs
it over equal row chunks so one graph serves a file of any length.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from gm.config import Switch
from gm.errors import GMError

__all__ = ["FASTER_ON", "FastStep", "Switch", "chunked", "cuda_graphed", "faster_on", "use"]

# Where "auto" turns each of core's fast paths on: the devices bench/ measured it faster on.
FASTER_ON: dict[str, tuple[str, ...]] = {
    "compile": ("cuda",),  # on CPU its seconds of compiling are not repaid (benchmarks.md)
    "cuda_graph": ("cuda",),  # only CUDA has graphs
    "channels_last": ("cpu", "cuda"),
    "fused_optimizer": ("cpu", "cuda"),
}


def faster_on() -> dict[str, tuple[str, ...]]:
    """Every fast path's ``"auto"`` devices: the rows plugins declare (``gm_fast_paths``)
    and core's :data:`FASTER_ON`, which no plugin can redefine."""
    from gm import plugins

    declared = {name: spec.devices for name, spec in plugins.registry("fast_paths").items()}
    return {**declared, **FASTER_ON}


def use(switch: Switch, path: str, device: torch.device | str) -> bool:
    """Whether fast path ``path`` runs on ``device``: ``switch`` itself, or for ``"auto"``
    the :func:`faster_on` rule. A CUDA graph never runs off CUDA, even when ``"on"``."""
    device = torch.device(device)
    table = FASTER_ON if path in FASTER_ON else faster_on()
    if path not in table:
        raise ValueError(f"unknown fast path {path!r}; known: {', '.join(table)}")
    if switch not in ("auto", "on", "off"):
        raise GMError(f"fast-path switch {switch!r} for {path} must be auto, on or off.")
    if path == "cuda_graph" and device.type != "cuda":
        return False
    return device.type in table[path] if switch == "auto" else switch == "on"


def _from_compiler(error: Exception) -> bool:
    return (type(error).__module__ or "").startswith(("torch._dynamo", "torch._inductor"))


class FastStep:
    """A pure step ``fn(*tensors) -> tensor | tuple of tensors``, run by the switches.

    - compile: ``torch.compile(fn, dynamic=False)``, made once. If compiling fails
      (no C++ compiler, an unsupported op) and the switch was ``"auto"``, it warns once
      and runs eagerly from then on; an asked-for ``"on"`` raises.
    - cuda_graph: on CUDA, one graph captured per (shapes, dtypes, device) of the
      arguments and replayed (:func:`cuda_graphed`); a graphed call returns the graph's
      static outputs, overwritten by the next call, so callers copy what they keep.

    The step must not read values back to the host. Randomness drawn inside it comes,
    under a graph, from the graph-safe generator state: equal in distribution to the
    eager draws, not draw for draw (draw outside and pass the noise in to keep them).
    """

    def __init__(
        self,
        fn: Callable,
        *,
        compile: Switch = "auto",
        cuda_graph: Switch = "auto",
        what: str,
        compile_options: dict[str, Any] | None = None,
    ):
        self.fn, self.compile, self.cuda_graph, self.what = fn, compile, cuda_graph, what
        self.compile_options = compile_options or {}  # passed to torch.compile
        self.compile_failed = False
        self._compiled: Callable | None = None
        self._graphs: dict[tuple, Callable] = {}

    def compiles(self, device: torch.device | str) -> bool:
        """Whether a call on ``device`` runs the compiled step."""
        return not self.compile_failed and use(self.compile, "compile", device)

    def __call__(self, *args: torch.Tensor) -> Any:
        device = args[0].device
        compiled = self.compiles(device)
        try:
            return self._run(args, compiled, use(self.cuda_graph, "cuda_graph", device))
        except Exception as error:
            if not compiled or self.compile == "on" or not _from_compiler(error):
                raise
            warnings.warn(
                f"torch.compile failed ({type(error).__name__}); {self.what} uncompiled "
                "(set its compile switch to off to skip the attempt)",
                stacklevel=2,
            )
            self.compile_failed = True
            self._graphs.clear()
            return self._run(args, False, use(self.cuda_graph, "cuda_graph", device))

    def _run(self, args: tuple[torch.Tensor, ...], compiled: bool, graphed: bool) -> Any:
        fn = self.fn
        if compiled:
            if self._compiled is None:
                self._compiled = torch.compile(self.fn, dynamic=False, **self.compile_options)
            fn = self._compiled
        if not graphed:
            return fn(*args)
        key = (compiled, args[0].device, *((tuple(a.shape), a.dtype) for a in args))
        if key not in self._graphs:
            self._graphs[key] = cuda_graphed(fn, *args)
        return self._graphs[key](*args)


def chunked(fn: Callable[..., torch.Tensor], *args: torch.Tensor, rows: int) -> torch.Tensor:
    """``fn(*args)`` over equal chunks of at most ``rows`` rows (dim 0), the last padded
    with zero rows to the same size, so a compiled step or CUDA graph made for one chunk
    serves them all; the results are cut to size, copied and concatenated."""
    n = len(args[0])
    if n == 0:
        return fn(*args).clone()
    size = -(-n // -(-n // rows))  # equal chunks of at most `rows`
    out = []
    for a in range(0, n, size):
        part = [_padded(t[a : a + size], size) for t in args]
        out.append(fn(*part)[: n - a].clone())  # a copy: a graph's output is overwritten
    return torch.cat(out)


def _padded(t: torch.Tensor, rows: int) -> torch.Tensor:
    if len(t) == rows:
        return t
    return torch.cat([t, t.new_zeros(rows - len(t), *t.shape[1:])])


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
