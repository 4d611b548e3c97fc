"""Sampling chains and the likelihood estimators, shared by walkback and the diffusion baseline.

Chains are fixed-shape and never read a value back to the host, so a step can be
compiled or captured as a CUDA graph (:class:`FastChain`). Estimators:

- :func:`log_weights`: one trajectory per row, x = s_0 -> s_1 -> ... -> s_K drawn from
  the forward process q, scored as (Eq. 5 of the paper)
  ``L = sum_t [log p_t(s_{t-1} | s_t) - log q_t(s_t | s_{t-1})] + log p*(s_K)``;
  its mean over trajectories is the variational lower bound.
- :func:`importance_log_likelihood`: ``log p(x) ~ logmeanexp_m L_m`` over M trajectories
  (Eq. 10), a consistent estimate whose bias (downwards) vanishes as M grows.
- :func:`reversibility`: a long chain at T = 1: the mean of
  ``log p(s_{t+1}|s_t) - log p(s_t|s_{t+1})`` (the entropy production per step, zero for a
  chain in detailed balance) against the per-step entropy ``-log p(s_{t+1}|s_t)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import distributions as D

from gm import fastpath, progress
from gm_walkback.schedules import Walk

DistFn = Callable[[int, torch.Tensor], D.Distribution]  # (step t = 1..K, state) -> distribution


# --- sampling ------------------------------------------------------------------------
def draw(dist: D.Distribution) -> torch.Tensor:
    """A sample without argument checks: ``rsample`` (mean + std * noise) where it exists, so
    no step inspects the tensor's values on the host."""
    return dist.rsample() if dist.has_rsample else dist.sample()


def chain_step(
    op,
    s: torch.Tensor,
    temperature,
    level,
    known: torch.Tensor | None = None,
    values: torch.Tensor | None = None,
) -> torch.Tensor:
    """One step s -> s' ~ p_T(.|s); entries where ``known`` is true are clamped to ``values``."""
    s = draw(op.distribution(s, temperature, level))
    if known is not None:
        assert values is not None, "clamping needs the known values"
        s = torch.where(known, values, s)
    return s


def walk_args(walk: Walk, device: torch.device, tensors: bool) -> list[tuple]:
    """(temperature, level) per step: Python numbers, or views of two device tensors when
    the step is compiled or graphed (one graph for the whole walk, no new scalars per step)."""
    if not tensors:
        return list(zip(walk.temperatures, walk.levels, strict=True))
    temps = torch.tensor(walk.temperatures, device=device, dtype=torch.float32)
    levels = torch.tensor(walk.levels, device=device, dtype=torch.long)
    return [(temps[i], levels[i]) for i in range(len(walk))]


def run_chain(
    op,
    s: torch.Tensor,
    walk: Walk,
    *,
    known: torch.Tensor | None = None,
    values: torch.Tensor | None = None,
    every: int = 0,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The plain eager chain: apply the operator along ``walk`` (already in generation order).
    Returns the final state and, when ``every`` > 0, the states at steps 0, every, 2*every,
    ... and the last."""
    if known is not None:
        assert values is not None, "clamping needs the known values"
        s = torch.where(known, values, s)
    frames = [s.clone()] if every else []
    args = walk_args(walk, s.device, tensors=False)
    for i, (t, lv) in enumerate(progress.track(args, len(args), "chain", min_total=LONG), 1):
        s = chain_step(op, s, t, lv, known, values)
        if every and (i % every == 0 or i == len(args)):
            frames.append(s.clone())
    return s, frames


LONG = 200  # chains from this many steps show a progress bar (gm sample; not evaluation's)


def has_heads(op) -> bool:
    """Whether ``op`` splits its network from the temperature (``heads`` / ``from_heads``,
    as the built-in operators do); an operator with only ``distribution`` is used whole."""
    return callable(getattr(op, "heads", None)) and callable(getattr(op, "from_heads", None))


class FastChain:
    """The sampling chain's fast path: the same chain as :func:`run_chain`, run with

    - ``torch.inference_mode`` (always);
    - ``channels_last``: conv weights and image states in channels-last memory format during
      the chain (restored afterwards);
    - ``compile``: ``torch.compile`` of the operator's deterministic part (F and the heads)
      at fixed shapes with the level as a device tensor, by :class:`gm.fastpath.FastStep`
      (which falls back to eager, with a warning, where an unasked-for compile fails);
    - ``cuda_graph``: on CUDA, one step (heads, draw, clamp) captured as a CUDA graph by
      :class:`gm.fastpath.FastStep` (one graph per shape, kept across runs); never elsewhere.

    Each is a :data:`gm.fastpath.Switch`; ``"auto"`` is :func:`gm.fastpath.use`'s table
    (channels-last on CPU and CUDA, compile and the graph on CUDA; the measurements are in
    docs/benchmarks.md, walkback section). A long CPU chain compiles with ``compile="on"``.

    The noise is always drawn by the same eager calls as :func:`chain_step`, so for a seed
    the chain is the eager chain: bit for bit with ``compile`` and ``channels_last`` off,
    to float tolerance otherwise (fused / reordered arithmetic). Under a CUDA graph the
    draws come from the graph-safe generator state and need not match eager draws.
    Nothing in a step reads a value back to the host. An operator with only
    ``distribution`` (no ``heads``) runs uncompiled (its draw is inside ``distribution``).
    """

    def __init__(
        self,
        op,
        *,
        compile: fastpath.Switch = "auto",
        channels_last: fastpath.Switch = "auto",
        cuda_graph: fastpath.Switch = "auto",
    ):
        self.op, self.channels_last, self.cuda_graph = op, channels_last, cuda_graph
        what = "running the chain"
        self._heads = (
            fastpath.FastStep(op.heads, compile=compile, cuda_graph="off", what=what)
            if has_heads(op)
            else None
        )
        # the whole step, graphed on CUDA (the heads inside it compiled or not, as above)
        self._free = fastpath.FastStep(self._step, compile="off", cuda_graph=cuda_graph, what=what)
        self._clamped = fastpath.FastStep(
            self._clamped_step, compile="off", cuda_graph=cuda_graph, what=what
        )

    def compiles(self, device: torch.device) -> bool:
        """Whether a chain on ``device`` runs the compiled heads."""
        return self._heads is not None and self._heads.compiles(device)

    def graphs(self, device: torch.device) -> bool:
        return fastpath.use(self.cuda_graph, "cuda_graph", device)  # never off CUDA

    def _step(self, s, temperature, level):
        if self._heads is None:
            return draw(self.op.distribution(s, temperature, level))
        return draw(self.op.from_heads(self._heads(s, level), temperature))

    def _clamped_step(self, s, temperature, level, known, values):
        return torch.where(known, values, self._step(s, temperature, level))

    # deliberately run_chain's signature: the fast path is a drop-in for the eager chain
    def run(
        self,
        s: torch.Tensor,
        walk: Walk,
        *,
        known: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
        every: int = 0,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Like :func:`run_chain`: the final state and, with ``every``, the frames."""
        channels_last = s.dim() == 4 and fastpath.use(self.channels_last, "channels_last", s.device)
        op = self.op
        if channels_last:
            op.to(memory_format=torch.channels_last)
        try:
            with torch.inference_mode():
                if channels_last:
                    s = s.contiguous(memory_format=torch.channels_last)
                if known is not None:
                    assert values is not None, "clamping needs the known values"
                    s = torch.where(known, values, s)
                return self._loop(s, walk, known, values, every)
        finally:
            if channels_last:
                op.to(memory_format=torch.contiguous_format)

    def _loop(self, s, walk, known, values, every):
        compiled = self.compiles(s.device)
        args = walk_args(walk, s.device, tensors=compiled or self.graphs(s.device))
        if known is None:
            step = self._free
        else:

            def step(s, t, lv):
                return self._clamped(s, t, lv, known, values)

        keep = torch.contiguous_format  # copies: never a graph's static output
        frames = [s.clone(memory_format=keep)] if every else []
        first = "compiling the chain's step (torch.compile, once)" if compiled else None
        steps = progress.track(args, len(args), "chain", min_total=LONG, first=first)
        for i, (t, lv) in enumerate(steps, 1):
            s = step(s, t, lv)
            if every and (i % every == 0 or i == len(args)):
                frames.append(s.clone(memory_format=keep))
        return s.clone(memory_format=keep), frames


# --- estimators ----------------------------------------------------------------------
def log_weights(
    x: torch.Tensor,
    steps: int,
    forward: DistFn,
    reverse: DistFn,
    prior: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Per-row log importance weight of one forward trajectory started at x (Eq. 5)."""
    s = x
    total = torch.zeros(len(x), device=x.device, dtype=torch.float32)
    for t in range(1, steps + 1):
        q = forward(t, s)
        s_next = draw(q)
        total = total - q.log_prob(s_next) + reverse(t, s_next).log_prob(s)
        s = s_next
    return total + prior(s)


def importance_log_likelihood(
    weights: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    trajectories: int,
    chunk: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-likelihood estimate, mean single-trajectory bound) per example of x (Eq. 10)."""
    per = max(1, chunk // trajectories)
    lls, bounds = [], []
    starts = range(0, len(x), per)
    for i in progress.track(starts, len(starts), "log-likelihood", min_total=2):
        xs = x[i : i + per]
        w = weights(xs.repeat_interleave(trajectories, 0)).view(len(xs), trajectories)
        lls.append(torch.logsumexp(w, 1) - math.log(trajectories))
        bounds.append(w.mean(1))
    return torch.cat(lls), torch.cat(bounds)


class WalkbackProcess:
    """The forward (q) and reverse (p) step distributions of a walkback operator along a walk:
    both are the operator itself, q at s_{t-1} and p at s_t. F is evaluated once per state
    when consecutive steps share their parameters (always, without per-step normalisation);
    an operator with only ``distribution`` is called once per distribution."""

    def __init__(self, op, walk: Walk):
        self.op, self.walk = op, walk
        self.split = has_heads(op)
        self.step_dependent = getattr(op, "step_dependent", True)
        self._state: torch.Tensor | None = None  # held, so its identity cannot be reused
        self._level = -1
        self._heads = None

    def _heads_at(self, s: torch.Tensor, level: int):
        level = level if self.step_dependent else 0
        if s is not self._state or level != self._level:
            self._state, self._level, self._heads = s, level, self.op.heads(s, level)
        return self._heads

    def forward(self, t: int, s: torch.Tensor) -> D.Distribution:
        lv, temperature = self.walk.levels[t - 1], self.walk.temperatures[t - 1]
        if not self.split:
            return self.op.distribution(s, temperature, lv)
        return self.op.from_heads(self._heads_at(s, lv), temperature)

    reverse = forward  # p_T(s_{t-1}|s_t): the same operator, applied at s_t


def reversibility(op, s: torch.Tensor, steps: int, cell_nats: float = 0.0) -> dict[str, float]:
    """Appendix H of the paper: a chain at T = 1 (level 0) started at ``s`` (after burn-in).

    - ``entropy_production``: the mean per step of ln p(s_t+1|s_t) - ln p(s_t|s_t+1), the
      estimate of KL(p(s'|s) pi(s) || p(s|s') pi(s')), zero under detailed balance;
    - ``step_entropy``: the mean of -ln p(s_t+1|s_t) plus ``cell_nats`` (D ln 256 for 8-bit
      images: the entropy counted in discrete cells, the code length the ratio is against);
    - ``reversibility``: their ratio, the paper's "nats per nats" (3.6% on its MNIST model);
      NaN where the step entropy is not positive (a differential entropy of vector data)."""
    process = WalkbackProcess(op, Walk((1.0,), (0,)))  # F once per state
    production = torch.zeros((), device=s.device)
    entropy = torch.zeros((), device=s.device)
    for _ in progress.track(range(steps), steps, "reversibility chain", min_total=LONG):
        fwd = process.forward(1, s)
        s_next = draw(fwd)
        lp_forward = fwd.log_prob(s_next)
        lp_backward = process.reverse(1, s_next).log_prob(s)
        production = production + (lp_forward - lp_backward).mean()
        entropy = entropy - lp_forward.mean()
        s = s_next
    made, nats = production.item() / steps, entropy.item() / steps + cell_nats
    return {
        "entropy_production": made,
        "step_entropy": nats,
        "reversibility": made / nats if nats > 0 else float("nan"),
    }
