"""Sequence generators: a GRU with a per-step output distribution (its *head*).

Both passes return the behaviour (:class:`gm.trainer.Behaviour`): per step, the top GRU
layer's hidden state and the output parameters (pre-softmax logits, mixture parameters).

- ``teacher_forced(x)`` is one ``nn.GRU`` call over the whole sequence (cuDNN on CUDA);
  the input at step t is x[t-1], a learned start input at t = 0. For a one-layer token GRU
  on CPU it is ``fused.TeacherForcedGRU`` instead (``fused_teacher_forced``): ``nn.GRU``'s
  CPU backward replays autograd step by step, the hand-written one does not.
- ``free_running(B, steps, T)`` steps the *same* weights one step at a time, feeding back
  draws from the model at temperature T (T divides the logits). The draws are held fixed
  (no gradient through the choice of token); the gradient flows through the hidden states.
  Draws are Gumbel-max on the device, so the loop never synchronises with the host.
- ``scheduled(x, p_true)`` is scheduled sampling's pass: per token, the true previous
  token with probability ``p_true``, else the model's own draw (Bengio et al. 2015).
- ``sample_step`` is one free-running step at fixed shapes with its noise given, for the
  sampling fast path (sampling.py: compiled, or replayed as a CUDA graph).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gm import fastpath, progress
from gm.errors import GMError
from gm.trainer import Behaviour
from gm_professor_forcing.fused import LONG, FreeRunningGRU, TeacherForcedGRU, draw_tokens
from gm_professor_forcing.fused import gumbel_argmax as _gumbel_argmax


def _bernoulli(logits: torch.Tensor, temperature: float, uniform: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    if temperature == 0:
        return (logits > 0).float()
    return (uniform < torch.sigmoid(logits / temperature)).float()


def _noise(kind: str, shape, device, temperature: float | None = None) -> torch.Tensor | None:
    """float32 noise: ``exp`` Exp(1) (Gumbel-max), ``uniform`` U(0, 1), ``normal`` N(0, 1);
    None where ``temperature`` is 0 (the draw is then an argmax or a threshold)."""
    if temperature == 0:
        return None
    out = torch.empty(shape, device=device, dtype=torch.float32)
    fill: dict[str, Callable[[], torch.Tensor]] = {
        "exp": out.exponential_,
        "uniform": out.uniform_,
        "normal": out.normal_,
    }
    return fill[kind]()


# --- output heads: the per-step distribution, its NLL and its sampler ----------------------
# A head's sampler is split in two: ``noise(lead, device, T)`` draws the random numbers a
# draw needs (a tuple; ``lead`` the leading shape of params), ``draw(params, T, noise)`` turns
# them into the draw without randomness of its own. ``sample`` is the two in a row. The
# sampling fast path (sampling.py) draws the noise eagerly outside a compiled step, so for a
# seed it draws exactly what the eager loop draws.
# The heads below implement _Head's methods for one output law each: parallel on purpose.
class _Head:
    num_params: int

    def noise(self, lead, device, temperature: float) -> tuple:
        raise NotImplementedError

    def draw(self, params: torch.Tensor, temperature: float, noise: tuple) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, params: torch.Tensor, temperature: float) -> torch.Tensor:
        noise = self.noise(params.shape[:-1], params.device, temperature)
        return self.draw(params, temperature, noise)


class CategoricalHead(_Head):
    """Softmax over ``vocab`` tokens; params are the logits."""

    def __init__(self, vocab: int):
        self.vocab, self.num_params = vocab, vocab

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Nats per step, (B, L)."""
        return F.cross_entropy(params.float().transpose(1, 2), x, reduction="none")

    def noise(self, lead, device, temperature: float) -> tuple:
        return (_noise("exp", (*lead, self.vocab), device, temperature),)

    def draw(self, params: torch.Tensor, temperature: float, noise: tuple) -> torch.Tensor:
        return _gumbel_argmax(params, temperature, noise[0])


class BernoulliHead(_Head):
    """Independent Bernoulli per feature (binary or grey values in [0, 1])."""

    def __init__(self, dim: int):
        self.dim, self.num_params = dim, dim

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(params.float(), x.float(), reduction="none").sum(
            -1
        )

    def noise(self, lead, device, temperature: float) -> tuple:
        return (_noise("uniform", (*lead, self.dim), device, temperature),)

    def draw(self, params: torch.Tensor, temperature: float, noise: tuple) -> torch.Tensor:
        return _bernoulli(params, temperature, noise[0])


class GaussianHead(_Head):
    """Diagonal Gaussian per step; params are (mean, log std); temperature scales the variance."""

    def __init__(self, dim: int):
        self.dim, self.num_params = dim, 2 * dim

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu, log_std = params.float().chunk(2, -1)
        log_std = log_std.clamp(-7, 7)
        z = (x.float() - mu) * torch.exp(-log_std)
        return (0.5 * z * z + log_std + 0.5 * math.log(2 * math.pi)).sum(-1)

    def noise(self, lead, device, temperature: float) -> tuple:
        return (_noise("normal", (*lead, self.dim), device),)

    def draw(self, params: torch.Tensor, temperature: float, noise: tuple) -> torch.Tensor:
        mu, log_std = params.float().chunk(2, -1)
        return mu + math.sqrt(temperature) * log_std.clamp(-7, 7).exp() * noise[0]


class MixtureHead(_Head):
    """Pen strokes (dx, dy, pen_lift): a mixture of ``components`` correlated 2-D Gaussians
    for the offset and a Bernoulli pen-lift bit (Graves 2013). Params per step:
    ``[mixture logits K | mean x K | mean y K | log std x K | log std y K | corr K | pen logit]``.
    Temperature divides the mixture and pen logits and scales the variances."""

    def __init__(self, components: int = 20):
        self.k, self.num_params = components, 6 * components + 1

    def split(self, params: torch.Tensor):
        k = self.k
        p = params.float()
        logit_pi, mx, my, lsx, lsy, rho = (p[..., i * k : (i + 1) * k] for i in range(6))
        return (
            logit_pi,
            mx,
            my,
            lsx.clamp(-7, 7),
            lsy.clamp(-7, 7),
            torch.tanh(rho) * (1 - 1e-4),
            p[..., -1],
        )

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logit_pi, mx, my, lsx, lsy, rho = self.split(params)[:6]
        pen_logit = params.float()[..., -1]
        x = x.float()
        zx = (x[..., 0:1] - mx) * torch.exp(-lsx)
        zy = (x[..., 1:2] - my) * torch.exp(-lsy)
        one_m_r2 = 1 - rho * rho
        log_n = (
            -math.log(2 * math.pi)
            - lsx
            - lsy
            - 0.5 * torch.log(one_m_r2)
            - (zx * zx + zy * zy - 2 * rho * zx * zy) / (2 * one_m_r2)
        )
        offset = -torch.logsumexp(F.log_softmax(logit_pi, -1) + log_n, -1)
        pen = F.binary_cross_entropy_with_logits(pen_logit, x[..., 2], reduction="none")
        return offset + pen

    def noise(self, lead, device, temperature: float) -> tuple:
        """The component's Gumbel noise, the offset's two normals, the pen bit's uniform."""
        return (
            _noise("exp", (*lead, self.k), device, temperature),
            _noise("normal", lead, device),
            _noise("normal", lead, device),
            _noise("uniform", lead, device, temperature),
        )

    def draw(self, params: torch.Tensor, temperature: float, noise: tuple) -> torch.Tensor:
        logit_pi, mx, my, lsx, lsy, rho, pen_logit = self.split(params)
        exponential, z1, z2, uniform = noise
        k = _gumbel_argmax(logit_pi, temperature, exponential).unsqueeze(-1)
        pick = [t.gather(-1, k).squeeze(-1) for t in (mx, my, lsx, lsy, rho)]
        mx, my, lsx, lsy, rho = pick
        scale = math.sqrt(temperature)
        dx = mx + scale * lsx.exp() * z1
        dy = my + scale * lsy.exp() * (rho * z1 + torch.sqrt(1 - rho * rho) * z2)
        return torch.stack([dx, dy, _bernoulli(pen_logit, temperature, uniform)], -1)


# --- the generator -----------------------------------------------------------------------
class GRUGenerator(nn.Module):
    """A stack of GRU layers, a linear readout to the head's parameters, and the passes."""

    head: CategoricalHead | BernoulliHead | GaussianHead | MixtureHead

    def __init__(self, input_size: int, hidden: int, layers: int):
        super().__init__()
        self.hidden_size, self.num_layers = hidden, layers
        self.gru = nn.GRU(input_size, hidden, layers, batch_first=True)
        self.readout = nn.Linear(hidden, self.head.num_params)

    @classmethod
    def build(cls, config, info) -> GRUGenerator:
        """The registry's ``gru``: a token GRU for token sequences, else a real-valued one."""
        if info.modality == "sequence" and info.vocab_size:
            return TokenGRU.build(config, info)
        return ContinuousGRU.build(config, info)

    # subclasses: how observations become GRU inputs
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, ...) observations -> (B, L, input_size) GRU inputs."""
        raise NotImplementedError

    def start_input(self, batch_size: int) -> torch.Tensor:
        raise NotImplementedError

    def _first_layer_gates(self) -> torch.Tensor | None:
        """For discrete inputs: the first layer's input gates per token, precomputed (a
        gather per step instead of a matmul). None for continuous inputs."""
        return None

    # --- passes ------------------------------------------------------------------------
    def teacher_forced_with_state(
        self, x: torch.Tensor, state: torch.Tensor | None = None, prev: torch.Tensor | None = None
    ) -> tuple[Behaviour, torch.Tensor]:
        """Teacher-forced pass; ``state`` (layers, B, H) and ``prev`` (the observation before
        x[:, 0]) continue a stream. Returns the behaviour and the final state."""
        enc = self.encode(x)
        first = self.start_input(len(x)) if prev is None else self.encode(prev.unsqueeze(1))[:, 0]
        inputs = torch.cat([first.unsqueeze(1).to(enc.dtype), enc[:, :-1]], 1)
        out, h = self.gru(inputs, state)
        return Behaviour(out, self.readout(out)), h

    def teacher_forced(self, x: torch.Tensor) -> Behaviour:
        """Predict x[:, t] from x[:, :t] for every t, in one GRU call."""
        return self.teacher_forced_with_state(x)[0]

    def nll(self, behaviour: Behaviour, x: torch.Tensor) -> torch.Tensor:
        """Nats per step (B, L) of x under the output parameters of ``behaviour``."""
        return self.head.nll(behaviour.outputs, x)

    def _weights(self, layer: int):
        g = self.gru
        return (
            getattr(g, f"weight_ih_l{layer}"),
            getattr(g, f"weight_hh_l{layer}"),
            getattr(g, f"bias_ih_l{layer}"),
            getattr(g, f"bias_hh_l{layer}"),
        )

    def _step(
        self, inp: torch.Tensor, gates0: torch.Tensor | None, h: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """One step of every layer. ``gates0`` are the first layer's input gates when known."""
        out = []
        for layer in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self._weights(layer)
            if layer == 0 and gates0 is not None:
                gh = F.linear(h[0], w_hh, b_hh)
                i_r, i_z, i_n = gates0.chunk(3, -1)
                h_r, h_z, h_n = gh.chunk(3, -1)
                r = torch.sigmoid(i_r + h_r)
                z = torch.sigmoid(i_z + h_z)
                n = torch.tanh(i_n + r * h_n)
                new = n + z * (h[0] - n)
            else:
                new = torch.gru_cell(inp, h[layer], w_ih, w_hh, b_ih, b_hh)
            out.append(new)
            inp = new
        return out

    def _initial(self, batch_size: int, state: torch.Tensor | None) -> list[torch.Tensor]:
        w = self.readout.weight
        if state is None:
            return [w.new_zeros(batch_size, self.hidden_size) for _ in range(self.num_layers)]
        return list(state.unbind(0))

    def free_running(
        self,
        batch_size: int,
        steps: int,
        temperature: float = 1.0,
        *,
        state: torch.Tensor | None = None,
        prev: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Behaviour]:
        """Run ``steps`` steps on the model's own draws at ``temperature``; returns
        (samples (B, steps, ...), behaviour). The draws carry no gradient; the hidden states do."""
        h = self._initial(batch_size, state)
        table = self._first_layer_gates()
        if prev is None:
            inp, token = self.start_input(batch_size), None
        else:
            inp, token = self.encode(prev.unsqueeze(1))[:, 0], prev
        hidden, outputs, samples = [], [], []
        for _ in progress.track(range(steps), steps, "free-running", min_total=LONG):
            gates0 = None if table is None else table[self._token_index(token, batch_size)]
            h = self._step(inp, gates0, h)
            params = self.readout(h[-1])
            token = self.head.sample(params.detach(), temperature)
            inp = self.encode(token.unsqueeze(1))[:, 0] if table is None else inp
            hidden.append(h[-1])
            outputs.append(params)
            samples.append(token)
        return torch.stack(samples, 1), Behaviour(torch.stack(hidden, 1), torch.stack(outputs, 1))

    def _token_index(self, token: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        raise NotImplementedError

    def first_input(self, batch_size: int) -> torch.Tensor:
        """What :meth:`sample_step` is first fed: the start token's index (tokens) or the
        learned start input (real values)."""
        raise NotImplementedError

    def sample_step(
        self,
        h: torch.Tensor,
        x: torch.Tensor,
        table: torch.Tensor | None,
        noise: tuple,
        temperature: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of :meth:`free_running` at fixed shapes, for the sampling fast path
        (sampling.py): states ``h`` (layers, B, H), the input ``x`` (a token index per row
        with ``table`` = :meth:`_first_layer_gates`, else a GRU input row), the head's
        ``noise``. Returns (h', the draw, the next input); draws nothing itself."""
        gates0 = None if table is None else table.index_select(0, x)
        new = self._step(x, gates0, list(h.unbind(0)))  # x unused when gates0 is given
        token = self.head.draw(self.readout(new[-1]), temperature, noise)
        nxt = token if table is not None else self.encode(token.unsqueeze(1))[:, 0]
        return torch.stack(new), token, nxt

    @torch.no_grad()
    def sample_tokens(self, batch_size: int, steps: int, temperature: float = 1.0) -> torch.Tensor:
        """Free-running draws only (for ``gm sample``)."""
        return self.free_running(batch_size, steps, temperature)[0]

    def scheduled(self, x: torch.Tensor, p_true: float) -> Behaviour:
        """Scheduled sampling: the input at step t is the true x[t-1] with probability
        ``p_true`` (one coin per token), else a draw from the model's step t-1 output."""
        if p_true >= 1:
            return self.teacher_forced(x)
        b, length = x.shape[:2]
        true_in = self.encode(x)
        keep = torch.rand(b, length, device=x.device) < p_true
        h = self._initial(b, None)
        table = self._first_layer_gates()
        inp, token = self.start_input(b), None
        hidden, outputs = [], []
        for t in range(length):
            gates0 = None if table is None else table[self._token_index(token, b)]
            h = self._step(inp, gates0, h)
            params = self.readout(h[-1])
            hidden.append(h[-1])
            outputs.append(params)
            if t + 1 < length:
                drawn = self.head.sample(params.detach(), 1.0)
                use = keep[:, t + 1]
                if table is None:
                    inp = torch.where(
                        use[:, None], true_in[:, t], self.encode(drawn.unsqueeze(1))[:, 0]
                    )
                else:
                    token = torch.where(use, x[:, t], drawn)
        return Behaviour(torch.stack(hidden, 1), torch.stack(outputs, 1))


class TokenGRU(GRUGenerator):
    """GRU over discrete tokens (characters, pixels): embedding, GRU, softmax readout.
    The paper's char-PTB generator is ``TokenGRU(vocab, hidden=1024, layers=1)``."""

    def __init__(self, vocab_size: int, hidden: int = 1024, layers: int = 1, embed: int = 128):
        self.head = CategoricalHead(vocab_size)
        super().__init__(embed, hidden, layers)
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size + 1, embed)  # the last row is the start symbol
        # fast-path Switches (path "fused_rnn", "auto": on CPU): one-layer free running and
        # scheduled sampling through fused.FreeRunningGRU ("off": step by step), the
        # one-layer teacher-forced pass through fused.TeacherForcedGRU ("off": nn.GRU)
        self.fused: fastpath.Switch = "auto"
        self.fused_teacher_forced: fastpath.Switch = "auto"

    @classmethod
    def build(cls, config, info) -> TokenGRU:
        if not (info.modality == "sequence" and info.vocab_size):
            raise GMError(f"{info.name!r} holds real values: use generator=gru.")
        if config.output not in ("auto", "categorical"):
            raise GMError(
                f"{info.name!r} holds tokens: output must be categorical, not "
                f"{config.output!r} (--set output=auto)."
            )
        g = cls(info.vocab_size, config.hidden, config.layers, config.embed)
        g.fused, g.fused_teacher_forced = config.fused_free_running, config.fused_teacher_forced
        return g

    def _fused_loop(self, device: torch.device) -> bool:
        return self.num_layers == 1 and fastpath.use(self.fused, "fused_rnn", device)

    def _fused_args(self, batch_size: int, state, prev):
        g = self.gru
        h0 = (
            self.readout.weight.new_zeros(batch_size, self.hidden_size)
            if state is None
            else state[0]
        )
        first = self._token_index(prev, batch_size)
        return (
            self._first_layer_gates(),
            g.weight_hh_l0,
            g.bias_hh_l0,
            h0,
            self.readout.weight.detach(),
            self.readout.bias.detach(),
            first,
        )

    def teacher_forced_with_state(self, x, state=None, prev=None):
        if self.num_layers != 1 or not fastpath.use(
            self.fused_teacher_forced, "fused_rnn", x.device
        ):
            return super().teacher_forced_with_state(x, state, prev)
        table, w_hh, b_hh, h0, _, _, first = self._fused_args(len(x), state, prev)
        inputs = torch.cat([first.unsqueeze(1), x[:, :-1]], 1)
        hidden = TeacherForcedGRU.apply(table, w_hh, b_hh, h0, inputs, torch.is_grad_enabled())
        return Behaviour(hidden, self.readout(hidden)), hidden[:, -1].unsqueeze(0)

    def free_running(self, batch_size, steps, temperature=1.0, *, state=None, prev=None):
        if not self._fused_loop(self.readout.weight.device):
            return super().free_running(batch_size, steps, temperature, state=state, prev=prev)
        args = self._fused_args(batch_size, state, prev)
        hidden, tokens = FreeRunningGRU.apply(
            *args, steps, temperature, None, None, torch.is_grad_enabled()
        )
        return tokens, Behaviour(hidden, self.readout(hidden))

    def scheduled(self, x: torch.Tensor, p_true: float) -> Behaviour:
        if not self._fused_loop(x.device) or p_true >= 1:
            return super().scheduled(x, p_true)
        keep = torch.rand(x.shape, device=x.device) < p_true
        args = self._fused_args(len(x), None, None)
        hidden, _ = FreeRunningGRU.apply(*args, x.shape[1], 1.0, x, keep, torch.is_grad_enabled())
        return Behaviour(hidden, self.readout(hidden))

    @torch.no_grad()
    def sample_tokens(self, batch_size: int, steps: int, temperature: float = 1.0) -> torch.Tensor:
        if not self._fused_loop(self.readout.weight.device):
            return super().sample_tokens(batch_size, steps, temperature)
        table, w_hh, b_hh, h0, w_out, b_out, first = self._fused_args(batch_size, None, None)
        return draw_tokens(table, w_hh, b_hh, h0, w_out, b_out, first, steps, temperature)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x)

    def start_input(self, batch_size: int) -> torch.Tensor:
        return self.embedding.weight[-1].expand(batch_size, -1)

    def _first_layer_gates(self) -> torch.Tensor:
        gru = self.gru  # nn.GRU's stubs do not declare its per-layer parameters
        return F.linear(
            self.embedding.weight,
            gru.get_parameter("weight_ih_l0"),
            gru.get_parameter("bias_ih_l0"),
        )

    def first_input(self, batch_size: int) -> torch.Tensor:
        return self._token_index(None, batch_size)

    def _token_index(self, token: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        if token is None:
            return torch.full(
                (batch_size,),
                self.vocab_size,
                dtype=torch.long,
                device=self.embedding.weight.device,
            )
        return token


class ContinuousGRU(GRUGenerator):
    """GRU over real vectors of ``dim`` features per step. ``output``: ``mixture`` (pen
    strokes: 2-D offset mixture + pen-lift bit, dim 3), ``bernoulli`` or ``gaussian``."""

    def __init__(
        self,
        dim: int,
        hidden: int = 1024,
        layers: int = 1,
        output: str = "mixture",
        components: int = 20,
    ):
        if output == "mixture":
            if dim != 3:
                raise ValueError(
                    f"the mixture output models (dx, dy, pen_lift) strokes, not {dim} features"
                )
            self.head = MixtureHead(components)
        elif output == "bernoulli":
            self.head = BernoulliHead(dim)
        elif output == "gaussian":
            self.head = GaussianHead(dim)
        else:
            raise ValueError(f"unknown output {output!r}; use mixture, bernoulli or gaussian")
        super().__init__(dim, hidden, layers)
        self.dim = dim
        self.start = nn.Parameter(torch.zeros(dim))

    @classmethod
    def build(cls, config, info) -> ContinuousGRU:
        if info.modality == "sequence" and info.vocab_size:
            raise GMError(f"{info.name!r} holds tokens: use generator=gru.")
        dim = info.shape[1] if len(info.shape) == 2 else 1
        output = config.output
        if output == "auto":
            output = (
                "mixture"
                if info.modality == "strokes"
                else "bernoulli"
                if info.meta.get("binary")
                else "gaussian"
            )
        if output == "categorical":
            raise GMError(
                f"{info.name!r} holds real values: use output mixture, bernoulli or gaussian."
            )
        if output == "mixture" and dim != 3:
            raise GMError(
                f"the mixture output models (dx, dy, pen_lift) strokes; {info.name!r} has "
                f"{dim} features per step (--set output=gaussian)."
            )
        return cls(dim, config.hidden, config.layers, output, config.components)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()

    def start_input(self, batch_size: int) -> torch.Tensor:
        return self.start.expand(batch_size, -1)

    def first_input(self, batch_size: int) -> torch.Tensor:
        return self.start_input(batch_size).clone()
