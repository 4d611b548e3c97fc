"""GPSI-add and GPSI-jump: MLP imputation policies trained by guided policy search
(Bachman & Precup 2015, Sec. 3.1 and Eq. 17). The algorithm is :func:`guided_rollout` (a
roll-out of the guide, whose sums make Eq. 17's objective) with
:meth:`GPSINet.primary_logits` (a roll-out of the primary policy, which imputes); the
trainer around them (optimiser, masks, scores) is :mod:`gm_imputation.policy`.

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
from gm_imputation.policy import GuidedConfig, GuidedPolicyTrainer, PolicyNet


@dataclasses.dataclass
class GPSIConfig(GuidedConfig):
    refine_steps: int = 6
    hidden: int = 500
    layers: int = 2
    guide_input: Literal["residual", "raw"] = "residual"  # paper: x - sigmoid(c); code: x
    primary_residual: bool = False  # also give p the residual on *known* values (authors' code)


class GPSINet(PolicyNet):
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
        self.z_dim = cfg.z_dim

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

    def guide_step(
        self,
        x: torch.Tensor,
        known: torch.Tensor,
        avail: torch.Tensor,
        seen: torch.Tensor,
        guess: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The guide ``q(z_t | x~, x - g(c))``: (mean, log-variance). It reads the values
        ``avail`` marks (known and target), as the residual (the paper) or raw (the code)."""
        truth = x - guess if self.guide_input == "residual" else x
        q_in = [seen, avail * truth]
        if self.see_mask:
            q_in.append(known)
        return self.guide(torch.cat(q_in, -1))

    def updated(self, c: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``c_t = c_{t-1} + w(z_t)`` (add) or ``c_t = w(z_t)`` (jump)."""
        step = self.writer(z).float()
        return c + step if self.update == "add" else step

    def primary_noise(self, n: int, steps: int, device) -> torch.Tensor:
        """Standard-normal noise ``(n, steps, z)`` for every step of a primary roll-out."""
        return torch.randn(n, steps, self.z_dim, device=device)

    def primary_logits(
        self, x: torch.Tensor, known: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """The primary policy's roll-out (imputation, "at test time roll out p"): final
        logits ``c_T`` after ``noise.shape[1]`` steps of ``z_t ~ p(z_t | c_{t-1}, x_k)``,
        a pure function of its inputs (fixed shapes, no host reads), so it can be compiled
        or captured as a CUDA graph whole."""
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
        return guided_rollout(self, x, known, avail, steps)


def guided_rollout(
    net: GPSINet, x: torch.Tensor, known: torch.Tensor, avail: torch.Tensor, steps: int
) -> dict[str, torch.Tensor]:
    """Guided policy search's roll-out (Bachman & Precup 2015, Sec. 3.1): one trajectory of
    the guide q, and the sums Eq. 17 needs along it::

        c_0 <- a trainable bias                               (Sec. 3.1)
        for t = 1..T:
            p_t = p_theta(z_t | c_{t-1}, x_k)     primary: sees x~ = m*x + (1-m)*g(c_{t-1})
            q_t = q_phi(z_t | c_{t-1}, x)         guide: also sees the truth (x - g(c_{t-1}))
            z_t ~ q_t                             roll-outs of q (Eq. 17's expectation)
            KL(q||p) += KL(q_t||p_t);  KL(p||q) += KL(p_t||q_t);  log w += log p_t/q_t (z_t)
            c_t <- c_{t-1} + w_theta(z_t)  (add)   or   w_theta(z_t)  (jump)

    The trainer's loss is Eq. 17, ``-log q(x_u | c_T) + lambda_q KL(q||p) + lambda_p
    KL(p||q)`` (:meth:`gm_imputation.policy.GuidedPolicyTrainer.training_step`); imputation
    rolls out p instead (:meth:`GPSINet.primary_logits`). ``avail`` marks the values the
    guide may read (known and target)."""
    sums = GuidedSums(x)  # KL(q||p), KL(p||q), log w, summed over t per example
    c = net.c0.expand(len(x), -1)
    for _ in range(steps):
        mu_p, lv_p, seen, guess = net.primary_step(x, known, c)
        q = net.guide_step(x, known, avail, seen, guess)
        z = sums.draw((mu_p, lv_p), q)
        c = net.updated(c, z)
    return sums.result(c)


class GPSITrainer(GuidedPolicyTrainer):
    Config = GPSIConfig
    name = "gpsi"
    config: GPSIConfig
    small = {"hidden": 256, "z_dim": 32}  # digits, tables: a smaller net is plenty

    def build_net(self) -> GPSINet:
        return GPSINet(self.dim, self.config, self.obs)
