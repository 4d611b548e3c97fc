"""The sampling fast path: ``gm sample``'s free-running loop through :class:`gm.fastpath.FastStep`.

Sampling runs a fixed-shape step (a generator's ``sample_step``: for the GRU every layer,
the readout, the head's draw, the next input) once per token. The step goes to the core
loop runner, :class:`gm.fastpath.FastStep`, which compiles it and, on CUDA, replays it as
a CUDA graph, by the ``compile`` / ``cuda_graph`` switches (``"auto"``: on CUDA; the
measurements are in docs/benchmarks.md, professor-forcing section). Where neither runs, or
the generator has no fixed-shape step (the transformer's KV cache grows each token), this
is the eager sampler, the generator's ``sample_tokens``.

The step draws nothing itself: the head's noise is drawn eagerly by ``head.noise``, the
calls the eager loop makes, in its order, and passed in, so for a seed the fast path draws
what the eager path draws (tokens exactly, unless a compiled logit's rounding flips an
argmax; real values to float tolerance), graphed or not. Training's free run is not here:
it needs autograd (``fused.FreeRunningGRU``). Nothing in the loop reads a value back to
the host.
"""

from __future__ import annotations

import torch

from gm import fastpath


@torch.no_grad()
def sample(
    generator,
    batch_size: int,
    steps: int,
    temperature: float = 1.0,
    *,
    compile: fastpath.Switch = "auto",
    cuda_graph: fastpath.Switch = "auto",
) -> torch.Tensor:
    """Free-running draws (B, steps, ...) at ``temperature``, through the fast path where
    the switches turn it on for the generator's device; ``sample_tokens`` otherwise."""
    device = next(generator.parameters()).device
    step_fn = getattr(generator, "sample_step", None)
    if step_fn is None:
        eager = getattr(generator, "sample_tokens", None)
        if eager is None:  # any registered generator: its own free run, without the graph
            return generator.free_running(batch_size, steps, temperature)[0]
        return eager(batch_size, steps, temperature)
    table = generator._first_layer_gates()  # per-token input gates, fixed for the chain
    head = generator.head
    slots = [n is not None for n in head.noise((1,), device, temperature)]  # None at T = 0

    def pure(h, x, *args):
        it = iter(args[1:] if table is not None else args)
        noise = tuple(next(it) if s else None for s in slots)
        return step_fn(h, x, args[0] if table is not None else None, noise, temperature)

    fast = fastpath.FastStep(pure, compile=compile, cuda_graph=cuda_graph, what="sampling")
    if not (fast.compiles(device) or fastpath.use(cuda_graph, "cuda_graph", device)):
        return generator.sample_tokens(batch_size, steps, temperature)
    h = generator.readout.weight.new_zeros(generator.num_layers, batch_size, generator.hidden_size)
    x = generator.first_input(batch_size)
    constant = () if table is None else (table,)
    out = None
    for t in range(steps):
        noise = head.noise((batch_size,), device, temperature)  # eager: the eager loop's calls
        h, token, x = fast(h, x, *constant, *(n for n in noise if n is not None))
        if out is None:
            out = token.new_empty(steps, *token.shape)
        out[t] = token  # a copy: a graph's outputs are overwritten by the next replay
    assert out is not None, "steps must be at least 1"  # gm sample checks it before
    return out.transpose(0, 1).contiguous()
