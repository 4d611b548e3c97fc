"""A causal Transformer sequence generator (registry name ``transformer``), trained by teacher
forcing, scheduled sampling and professor forcing with no change to their trainers.

A decoder-only, pre-LN stack (nanoGPT's shape): token embedding + positions (sinusoidal or
learned, ``max_len`` of them), ``layers`` blocks of ``x + attn(LN(x))``, ``x + MLP(LN(x))``
with causal multi-head self-attention and a 4x GELU MLP, a final LayerNorm and a linear
readout to the softmax over tokens. The input at step t is x[t-1] (a learned start token at
t = 0), as for the GRU. Behaviour (:class:`gm.trainer.Behaviour`): per position, the final
LayerNorm's output (what the readout reads; (B, L, width)) and the logits (B, L, vocab).

- ``teacher_forced(x)``: one parallel causal pass (``scaled_dot_product_attention`` with
  ``is_causal``): position t sees inputs 0..t only.
- ``free_running(B, steps, T)``: token by token with a KV cache: each new token's query
  attends to the cached keys and values of the tokens before it (O(t) work at step t, the
  prefix never recomputed); draws are Gumbel-max on the device at temperature T. The draws
  carry no gradient. Under autograd the behaviour returned is one causal pass over the
  inputs the run fed itself (start, draw_0, ..., draw_{T-2}): a causal Transformer's state
  at t is a function of its inputs up to t, so with the draws held fixed this *is* the free
  run's behaviour (tests check it equals the cached run to float tolerance) and its
  gradient is the gradient through the free run's hidden states, computed in one parallel
  pass instead of ``steps`` sequential ones (and without keeping every step's growing
  cache for the backward).
- ``scheduled(x, p_true)``: the same with scheduled sampling's inputs (the true previous
  token with probability ``p_true``, else the model's draw).

Past ``max_len`` positions there is no position to give: a :class:`GMError` says so.
There is no recurrent state to carry across windows (``gm evaluate --carry-state``) and no
fixed-shape sampling step (the cache grows), so ``gm sample`` runs the eager cached loop.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from gm import progress
from gm.errors import GMError
from gm.trainer import Behaviour
from gm_professor_forcing.fused import LONG
from gm_professor_forcing.generators import CategoricalHead


def sinusoids(length: int, width: int) -> torch.Tensor:
    """The fixed sin/cos positions of Vaswani et al. (2017), (length, width)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(1e4) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : width // 2]
    return table


class Block(nn.Module):
    """Pre-LN: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def _split(self, a: torch.Tensor):
        """(B, T, width) -> q, k, v each (B, heads, T, width / heads)."""
        b, t, _ = a.shape
        q, k, v = self.qkv(a).chunk(3, -1)
        return (z.view(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))

    def _merge(self, h: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        b, _, t, _ = att.shape
        h = h + self.proj(att.transpose(1, 2).reshape(b, t, -1))
        return h + self.mlp(self.ln2(h))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """The whole sequence at once, causally."""
        q, k, v = self._split(self.ln1(h))
        return self._merge(h, F.scaled_dot_product_attention(q, k, v, is_causal=True))

    def step(self, h: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor], pos: int):
        """One new position ``pos`` (h: (B, 1, width)): its key and value join ``cache``
        (B, heads, max_len, width / heads, written in place) and its query attends to
        positions 0..pos."""
        q, k, v = self._split(self.ln1(h))
        keys, values = cache
        keys[:, :, pos : pos + 1] = k
        values[:, :, pos : pos + 1] = v
        att = F.scaled_dot_product_attention(q, keys[:, :, : pos + 1], values[:, :, : pos + 1])
        return self._merge(h, att)


class TransformerGenerator(nn.Module):
    """Causal Transformer over ``vocab_size`` tokens; ``hidden_size`` = its width."""

    def __init__(
        self,
        vocab_size: int,
        width: int = 256,
        layers: int = 2,
        heads: int = 4,
        max_len: int = 1024,
        positions: str = "sinusoidal",
    ):
        super().__init__()
        if width % heads or width % 2:
            raise GMError(
                f"the transformer's width ({width}) must be even and divisible by its heads ({heads})."
            )
        self.head = CategoricalHead(vocab_size)
        self.vocab_size, self.hidden_size, self.num_layers, self.max_len = (
            vocab_size,
            width,
            layers,
            max_len,
        )
        self.embedding = nn.Embedding(vocab_size + 1, width)  # the last row is the start symbol
        if positions == "learned":
            self.positions = nn.Parameter(0.02 * torch.randn(max_len, width))
        elif positions == "sinusoidal":
            self.register_buffer("positions", sinusoids(max_len, width), persistent=False)
        else:
            raise GMError(f"positions must be sinusoidal or learned, not {positions!r}.")
        self.heads = heads  # every block's
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.readout = nn.Linear(width, vocab_size)
        self._init(layers)

    def _init(self, layers: int) -> None:
        """GPT-2's: N(0, 0.02) weights, zero biases, residual outputs scaled by 1/sqrt(2 layers)."""
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() == 2 and name != "positions":
                std = (
                    0.02 / math.sqrt(2 * layers)
                    if name.endswith(("proj.weight", "mlp.2.weight"))
                    else 0.02
                )
                nn.init.normal_(p, 0.0, std)

    @classmethod
    def build(cls, config, info) -> TransformerGenerator:
        if not (info.modality == "sequence" and info.vocab_size):
            raise GMError(
                f"the transformer generator models token sequences; {info.name!r} holds real "
                "values (use generator=gru)."
            )
        if config.output not in ("auto", "categorical"):
            raise GMError(
                f"{info.name!r} holds tokens: output must be categorical (--set output=auto)."
            )
        max_len = config.max_len or 16 * int(info.shape[0])
        return cls(
            info.vocab_size, config.hidden, config.layers, config.heads, max_len, config.positions
        )

    # --- passes ----------------------------------------------------------------------------
    def _check(self, steps: int) -> None:
        if steps > self.max_len:
            raise GMError(
                f"the transformer has {self.max_len} positions (max_len) and was asked for "
                f"{steps} steps: ask for at most {self.max_len}, or train with --set max_len={steps}."
            )

    def _start(self, batch_size: int) -> torch.Tensor:
        return torch.full(
            (batch_size,), self.vocab_size, dtype=torch.long, device=self.readout.weight.device
        )

    def _causal(self, inputs: torch.Tensor) -> Behaviour:
        """The parallel causal pass over input tokens (B, L): the behaviour at every position."""
        length = inputs.shape[1]
        self._check(length)
        h = self.embedding(inputs) + self.positions[:length]
        for block in self.blocks:
            h = block(h)
        hidden = self.ln_f(h)
        return Behaviour(hidden, self.readout(hidden))

    def teacher_forced(self, x: torch.Tensor) -> Behaviour:
        """Predict x[:, t] from x[:, :t] for every t, in one causal pass."""
        return self._causal(torch.cat([self._start(len(x))[:, None], x[:, :-1]], 1))

    def teacher_forced_with_state(self, x, state=None, prev=None):
        raise GMError(
            "--carry-state carries a recurrent state across windows; the transformer has none "
            f"(its context is at most max_len = {self.max_len} tokens): evaluate without it."
        )

    def nll(self, behaviour: Behaviour, x: torch.Tensor) -> torch.Tensor:
        """Nats per step (B, L)."""
        return self.head.nll(behaviour.outputs, x)

    @property
    def _blocks(self) -> list[Block]:
        """The blocks, typed (``nn.ModuleList`` yields plain modules to a type checker)."""
        return cast("list[Block]", list(self.blocks))

    @torch.no_grad()
    def _cached_run(self, batch_size: int, steps: int, temperature: float, feed=None):
        """Token by token with a KV cache. ``feed(t, draw)`` chooses the input of step t + 1
        from step t's draw (default: the draw itself). Returns (draws, inputs, behaviour),
        each (B, steps, ...)."""
        self._check(steps)
        w = self.readout.weight
        dh = self.hidden_size // self.heads if self.num_layers else 0
        caches = [
            (
                w.new_empty(batch_size, self.heads, steps, dh),
                w.new_empty(batch_size, self.heads, steps, dh),
            )
            for _ in self.blocks
        ]
        token = self._start(batch_size)
        inputs, draws, hidden, outputs = [], [], [], []
        for t in progress.track(range(steps), steps, "free-running", min_total=LONG):
            inputs.append(token)
            h = (self.embedding(token) + self.positions[t])[:, None]
            for block, cache in zip(self._blocks, caches, strict=True):
                h = block.step(h, cache, t)
            h = self.ln_f(h[:, 0])
            logits = self.readout(h)
            draw = self.head.sample(logits, temperature)
            hidden.append(h)
            outputs.append(logits)
            draws.append(draw)
            token = draw if feed is None else feed(t, draw)
        stack = lambda z: torch.stack(z, 1)  # noqa: E731
        return stack(draws), stack(inputs), Behaviour(stack(hidden), stack(outputs))

    def free_running(self, batch_size: int, steps: int, temperature: float = 1.0):
        """(samples (B, steps), behaviour) of ``steps`` steps on the model's own draws."""
        draws, inputs, behaviour = self._cached_run(batch_size, steps, temperature)
        if torch.is_grad_enabled():  # the same behaviour with its graph, the draws fixed
            behaviour = self._causal(inputs)
        return draws, behaviour

    @torch.no_grad()
    def sample_tokens(self, batch_size: int, steps: int, temperature: float = 1.0) -> torch.Tensor:
        return self._cached_run(batch_size, steps, temperature)[0]

    def scheduled(self, x: torch.Tensor, p_true: float) -> Behaviour:
        """Scheduled sampling: the input at step t is the true x[t-1] with probability
        ``p_true`` (one coin per token, drawn first, as the GRU does), else step t-1's draw."""
        if p_true >= 1:
            return self.teacher_forced(x)
        b, length = x.shape[:2]
        keep = torch.rand(b, length, device=x.device) < p_true

        def feed(t: int, draw: torch.Tensor) -> torch.Tensor:
            return torch.where(keep[:, t + 1], x[:, t], draw) if t + 1 < length else draw

        _, inputs, behaviour = self._cached_run(b, length, 1.0, feed)
        return self._causal(inputs) if torch.is_grad_enabled() else behaviour
