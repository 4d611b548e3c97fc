"""GPSI-add and GPSI-jump: MLP imputation policies trained by guided policy search.

The canvas ``c`` starts at a learned bias ``c0``; its guess ``g(c)`` is ``sigmoid(c)`` for
the paper's Bernoulli observations, the mean channels for Gaussian ones
(:mod:`gm_imputation.observation`). At each of T steps the policy sees
``x~ = m*x + (1-m)*g(c)`` (known values, current guess elsewhere):

- primary policy ``p(z_t | x~)``, a diagonal Gaussian (MLP 2x500 ReLU, z of 100);
- guide ``q(z_t | x~, x - g(c))``, which sees the truth through the residual;
- ``c_t = c_{t-1} + w(z_t)`` (add) or ``c_t = w(z_t)`` (jump), ``w`` an MLP.

Training rolls out the guide: ``loss = NLL_T + lambda_q sum_t KL(q_t||p_t) +
lambda_p sum_t KL(p_t||q_t)``, NLL_T the observation NLL of the missing values under
``c_T``. The reported bound is ``NLL_T + sum_t KL(q_t||p_t)``; imputation rolls
out the primary policy, which never reads a missing value.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import nn

from gm_imputation.nets import (
    GaussianMLP,
    GuidedSums,
    blend,
    mlp,
    reparameterise,
)
from gm_imputation.observation import Observation
from gm_imputation.policy import GuidedConfig, GuidedPolicyTrainer


@dataclasses.dataclass
class GPSIConfig(GuidedConfig):
    refine_steps: int = 6
    hidden: int = 500
    layers: int = 2
    guide_input: Literal["residual", "raw"] = "residual"  # paper: x - sigmoid(c); code: x
    primary_residual: bool = False  # also give p the residual on *known* values (authors' code)


class GPSINet(nn.Module):
    """The guess bias, primary policy, guide policy and writer."""

    def __init__(self, dim: int, cfg: GPSIConfig, obs: Observation):
        super().__init__()
        self.obs = obs
        width = obs.width(dim)
        self.update, self.guide_input = cfg.update, cfg.guide_input
        self.primary_residual, self.see_mask = cfg.primary_residual, cfg.see_mask
        extra = dim if cfg.see_mask else 0
        self.c0 = nn.Parameter(obs.initial(dim))
        self.primary = GaussianMLP(
            dim * (2 if cfg.primary_residual else 1) + extra, cfg.hidden, cfg.layers, cfg.z_dim
        )
        self.guide = GaussianMLP(2 * dim + extra, cfg.hidden, cfg.layers, cfg.z_dim)
        self.writer = mlp(cfg.z_dim, cfg.hidden, cfg.layers, width)

    def primary_step(
        self, x: torch.Tensor, known: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The primary policy ``p(z_t | x~)`` at canvas ``c``: its (mean, log-variance),
        and the ``x~`` and guess it saw (known values, the guess elsewhere)."""
        guess = self.obs.canvas(c)
        seen = blend(x, known, guess)  # the only view of x the primary gets
        p_in = [seen]
        if self.primary_residual:
            p_in.append(known * (x - guess))
        if self.see_mask:
            p_in.append(known)
        mu, lv = self.primary(torch.cat(p_in, -1))
        return mu, lv, seen, guess

    def updated(self, c: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        step = self.writer(z).float()
        return c + step if self.update == "add" else step

    def primary_noise(self, n: int, steps: int, device) -> torch.Tensor:
        """Standard-normal noise ``(n, steps, z)`` for every step of a primary roll-out."""
        return torch.randn(n, steps, self.writer[0].in_features, device=device)

    def primary_logits(
        self, x: torch.Tensor, known: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """The primary policy's roll-out (imputation): final logits ``c`` after
        ``noise.shape[1]`` steps, a pure function of its inputs (fixed shapes, no host
        reads), so it can be compiled or captured as a CUDA graph whole."""
        c = self.c0.expand(len(x), -1)
        for t in range(noise.shape[1]):
            mu_p, lv_p, _, _ = self.primary_step(x, known, c)
            c = self.updated(c, reparameterise(mu_p, lv_p, noise[:, t]))
        return c

    def rollout(
        self, x: torch.Tensor, known: torch.Tensor, avail: torch.Tensor, steps: int, guided: bool
    ) -> dict[str, torch.Tensor]:
        """Run ``steps`` refinement steps; returns the final logits ``c`` and, per example,
        ``kl_qp``/``kl_pq`` (summed over steps) and ``log_w`` = sum log p(z) - log q(z)."""
        if not guided:
            noise = self.primary_noise(len(x), steps, x.device)
            return GuidedSums(x).result(self.primary_logits(x, known, noise))  # sums stay 0
        sums = GuidedSums(x)
        c = self.c0.expand(len(x), -1)
        for _ in range(steps):
            mu_p, lv_p, seen, guess = self.primary_step(x, known, c)
            q_in = [seen, avail * (x - guess if self.guide_input == "residual" else x)]
            if self.see_mask:
                q_in.append(known)
            c = self.updated(c, sums.draw((mu_p, lv_p), self.guide(torch.cat(q_in, -1))))
        return sums.result(c)


class GPSITrainer(GuidedPolicyTrainer):
    Config = GPSIConfig
    name = "gpsi"
    small = {"hidden": 256, "z_dim": 32}  # digits, tables: a smaller net is plenty

    def build_net(self) -> GPSINet:
        return GPSINet(self.dim, self.config, self.obs)
