"""LSTM-add, LSTM-jump and the extended DRAW generator (paper section 2.5).

State: the guess ``c`` (logits) and three LSTMs. At each of T steps (16 by default), with
``x~ = m*x + (1-m)*sigmoid(c)``:

- the reader LSTM (primary policy) reads ``[x~, x~ - sigmoid(c), h_writer]`` and gives
  ``p(z_t | state)``; ``x~ - sigmoid(c)`` is the residual on the known values only;
- the guide LSTM reads ``[x, x - sigmoid(c), h_writer]`` and gives ``q(z_t | state, x)``;
- the writer LSTM consumes ``z_t``; ``c += W h_writer`` (add) or ``c = W c_writer`` (jump,
  from the writer's cell state).

"Infinite mixture" initial state: a latent ``z_0`` with ``p(z_0 | x~_0)`` conditioned on the
known values (``x~_0`` uses the learned guess bias) and guide ``q(z_0 | x~_0, x)``; the
writer's initial state and the initial guess are functions of ``z_0``. Its KL joins the
bound: ``NLL_T + KL_0(q||p) + sum_t KL_t(q||p)``.

``draw-gps`` is the same network with every value missing (mask ``all``): the reader then
sees only the model's own canvas, so ``p(z_t | s_{t-1})`` is a learned per-step prior, and
the model is an unconditional generator with a variational bound on ``-log p(x)``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from gm_imputation.nets import (
    GaussianMLP,
    GuidedSums,
    blend,
    reparameterise,
    split_gaussian,
)
from gm_imputation.observation import Observation
from gm_imputation.policy import GuidedConfig, GuidedPolicyTrainer, PolicyNet


@dataclasses.dataclass
class LSTMConfig(GuidedConfig):
    refine_steps: int = 16
    hidden: int = 300  # LSTM units (the paper's MNIST models: 300)
    infinite_mixture: bool = True  # initial state from a latent z_0 (else a learned constant)
    peepholes: bool = False  # LSTM gates also read the cell state (the paper's footnote)


class PeepholeLSTMCell(nn.Module):
    """An LSTM cell whose input, forget and output gates also read the cell state
    (Gers & Schmidhuber's peepholes: diagonal weights ``w_i * c_{t-1}``, ``w_f * c_{t-1}``,
    ``w_o * c_t``), with ``nn.LSTMCell``'s call signature ``(x, (h, c)) -> (h, c)``."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.gates = nn.Linear(input_size + hidden_size, 4 * hidden_size)
        self.peep = nn.Parameter(torch.zeros(3, hidden_size))  # i, f, o

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        h, c = state
        i, f, g, o = self.gates(torch.cat([x, h], -1)).chunk(4, -1)
        i = torch.sigmoid(i + self.peep[0] * c)
        f = torch.sigmoid(f + self.peep[1] * c)
        c = f * c + i * torch.tanh(g)
        o = torch.sigmoid(o + self.peep[2] * c)
        return o * torch.tanh(c), c


class LSTMNet(PolicyNet):
    def __init__(self, dim: int, cfg: LSTMConfig, obs: Observation):
        super().__init__()
        h, z = cfg.hidden, cfg.z_dim
        self.obs = obs
        width = obs.width(dim)
        cell = PeepholeLSTMCell if cfg.peepholes else nn.LSTMCell
        self.update, self.see_mask, self.mixture = cfg.update, cfg.see_mask, cfg.infinite_mixture
        extra = dim if cfg.see_mask else 0
        self.c_bias = nn.Parameter(obs.initial(dim))
        self.reader = cell(2 * dim + h + extra, h)
        self.guide = cell(2 * dim + h + extra, h)
        self.p_head = nn.Linear(h, 2 * z)
        self.q_head = nn.Linear(h, 2 * z)
        self.writer = cell(z, h)
        self.write = nn.Linear(h, width)
        if cfg.infinite_mixture:
            self.p0 = GaussianMLP(dim + extra, h, 1, z)
            self.q0 = GaussianMLP(2 * dim + extra, h, 1, z)
            self.init_state = nn.Linear(z, 2 * h)
            self.init_guess = nn.Linear(z, width)

    def primary_noise(self, n: int, steps: int, device) -> torch.Tensor:
        """Standard-normal noise ``(n, [1 +] steps, z)`` for a primary roll-out (z_0 first
        with the infinite mixture)."""
        return torch.randn(n, int(self.mixture) + steps, self.writer.input_size, device=device)

    def start(self, z0: torch.Tensor, c: torch.Tensor):
        """The writer's initial state and the initial guess from the latent z_0."""
        h_w, c_w = torch.tanh(self.init_state(z0)).chunk(2, -1)
        return h_w, c_w, c + self.init_guess(z0).float()

    def updated(self, c: torch.Tensor, z: torch.Tensor, writer):
        h_w, c_w = self.writer(z, writer)
        c = c + self.write(h_w).float() if self.update == "add" else self.write(c_w).float()
        return c, (h_w, c_w)

    def zero_state(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hid = self.writer.hidden_size
        return x.new_zeros(len(x), hid), x.new_zeros(len(x), hid)

    def primary_start(
        self, x: torch.Tensor, known: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The starting canvas ``c`` (the learned bias) and, with the infinite mixture, the
        primary policy ``p(z_0 | x~_0)``'s (mean, log-variance), and ``x~_0``."""
        c = self.c_bias.expand(len(x), -1)
        seen0 = blend(x, known, self.obs.canvas(c))
        mu, lv = self.p0(torch.cat([seen0, *self.mask_input(known)], -1))
        return c, (mu, lv), seen0

    def primary_step(self, x, known, c, writer, reader):
        """The reader LSTM (primary policy) reads ``[x~, x~ - guess, h_writer]`` at canvas
        ``c``: returns ``p(z_t | state)``'s (mean, log-variance) and its new state."""
        guess = self.obs.canvas(c)
        seen = blend(x, known, guess)
        reader = self.reader(
            torch.cat([seen, seen - guess, writer[0], *self.mask_input(known)], -1), reader
        )
        mu, lv = split_gaussian(self.p_head(reader[0]))
        return mu, lv, reader, guess

    def mask_input(self, known: torch.Tensor) -> list[torch.Tensor]:
        return [known] if self.see_mask else []

    def primary_logits(
        self, x: torch.Tensor, known: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """The primary policy's roll-out (imputation): final logits ``c`` after the steps
        that ``noise`` holds (see :meth:`primary_noise`), a pure function of its inputs
        (fixed shapes, no host reads), so it can be compiled or captured as a CUDA graph."""
        c = self.c_bias.expand(len(x), -1)
        writer = self.zero_state(x)
        if self.mixture:
            c, (mu_p, lv_p), _ = self.primary_start(x, known)
            h_w, c_w, c = self.start(reparameterise(mu_p, lv_p, noise[:, 0]), c)
            writer = (h_w, c_w)
        reader = self.zero_state(x)
        for t in range(int(self.mixture), noise.shape[1]):
            mu_p, lv_p, reader, _ = self.primary_step(x, known, c, writer, reader)
            c, writer = self.updated(c, reparameterise(mu_p, lv_p, noise[:, t]), writer)
        return c

    def rollout(
        self, x: torch.Tensor, known: torch.Tensor, avail: torch.Tensor, steps: int, guided: bool
    ) -> dict[str, torch.Tensor]:
        if not guided:
            c = self.primary_logits(x, known, self.primary_noise(len(x), steps, x.device))
            return GuidedSums(x).result(c)  # no guide: the sums stay zero
        mask_in = self.mask_input(known)
        sums = GuidedSums(x)
        c = self.c_bias.expand(len(x), -1)
        writer = self.zero_state(x)
        if self.mixture:
            c, p0, seen0 = self.primary_start(x, known)
            q0 = self.q0(torch.cat([seen0, avail * x, *mask_in], -1))
            h_w, c_w, c = self.start(sums.draw(p0, q0), c)
            writer = (h_w, c_w)
        reader, guide = self.zero_state(x), self.zero_state(x)
        for _ in range(steps):
            mu_p, lv_p, reader, guess = self.primary_step(x, known, c, writer, reader)
            g_in = torch.cat([avail * x, avail * (x - guess), writer[0], *mask_in], -1)
            guide = self.guide(g_in, guide)
            q = split_gaussian(self.q_head(guide[0]))
            c, writer = self.updated(c, sums.draw((mu_p, lv_p), q), writer)
        return sums.result(c)


class LSTMTrainer(GuidedPolicyTrainer):
    Config = LSTMConfig
    name = "lstm-gpsi"
    config: LSTMConfig
    small = {"hidden": 128, "z_dim": 32}

    def build_net(self) -> LSTMNet:
        return LSTMNet(self.dim, self.config, self.obs)


@dataclasses.dataclass
class DrawGPSConfig(LSTMConfig):
    mask: str = "all"  # every value missing: unconditional generation


class DrawGPSTrainer(LSTMTrainer):
    """The LSTM model with every value missing: a generator with a learned per-step prior."""

    Config = DrawGPSConfig
    name = "draw-gps"

    @torch.no_grad()
    def sample(self, n, options):
        """``n`` unconditional samples (Bernoulli means), in dataset units."""
        self.train(False)
        nothing = torch.zeros(n, self.dim, device=self.device)
        fast = {"compile": options.compile, "cuda_graph": options.cuda_graph}
        probs = self.complete(nothing, nothing, self.refine_steps, 1, **fast)[0]
        return self.scaler.from_unit(probs).reshape(n, *self.shape)
