"""The sampling fast path: ``gm sample``'s free-running loop, compiled or as a CUDA graph.

Sampling runs a fixed-shape step (every GRU layer, the readout, the head's draw, the next
input: :meth:`GRUGenerator.sample_step`) once per token. Launched op by op from Python,
each of its few dozen small kernels costs more on a GPU than it computes; so the step can
run

- ``compile``: through ``torch.compile(dynamic=False)``, one fused graph for every step;
- ``cuda_graph``: on CUDA, captured once as a CUDA graph (:func:`gm.fastpath.cuda_graphed`)
  and replayed per token: one launch a step.

Both default to on for CUDA only (:func:`gm.fastpath.wanted`): measured on CPU, a compiled
step was no faster than the eager loop (``bench/bench_professor_forcing.py``), and its
compile costs seconds. With both off this is the eager sampler, ``sample_tokens``.

The step draws nothing itself: the head's noise is drawn eagerly by ``head.noise``, the
calls the eager loop makes, in its order, and passed in. So for a seed the compiled path
draws what the eager path draws (tokens exactly, unless a compiled logit's rounding flips
an argmax; real values to float tolerance). Under a CUDA graph the same calls are captured
and replayed from the graph-safe generator state: equal in distribution, not draw for draw.
Training's free run is not here: it needs autograd (``fused.FreeRunningGRU``). Nothing in
the loop reads a value back to the host.
"""

from __future__ import annotations

import torch

from gm import fastpath
from gm_professor_forcing.generators import GRUGenerator


@torch.no_grad()
def sample(
    generator: GRUGenerator,
    batch_size: int,
    steps: int,
    temperature: float = 1.0,
    *,
    compile: bool | None = None,
    cuda_graph: bool | None = None,
) -> torch.Tensor:
    """Free-running draws (B, steps, ...) at ``temperature``, through the fast path where
    wanted (``None``: on CUDA only); the eager ``sample_tokens`` otherwise."""
    device = generator.readout.weight.device
    compiled = fastpath.wanted(compile, device)
    graph = fastpath.wanted_graph(cuda_graph, device)
    if not (compiled or graph):
        return generator.sample_tokens(batch_size, steps, temperature)
    return fastpath.compiled_or_eager(
        lambda c: _loop(generator, batch_size, steps, temperature, c, graph),
        compiled,
        compile,
        "sampling",
    )[0]


def _loop(g: GRUGenerator, batch_size, steps, temperature, compiled: bool, graph: bool):
    core = torch.compile(g.sample_step, dynamic=False) if compiled else g.sample_step
    table = g._first_layer_gates()  # per-token input gates, fixed for the whole chain
    head, device = g.head, g.readout.weight.device
    h = g.readout.weight.new_zeros(g.num_layers, batch_size, g.hidden_size)
    x = g.first_input(batch_size)

    def step(h, x):
        noise = head.noise((batch_size,), device, temperature)  # eager, the eager loop's calls
        return core(h, x, table, noise, temperature)

    if graph:  # the graph's outputs are overwritten by each replay: copied into `out` below
        step = fastpath.cuda_graphed(step, h, x)
    out = None
    for t in range(steps):
        h, token, x = step(h, x)
        if out is None:
            out = token.new_empty(steps, *token.shape)
        out[t] = token
    return out.transpose(0, 1).contiguous()
