"""Small building blocks: MLPs, diagonal-Gaussian heads, KL divergences, Bernoulli scores."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOGVAR_BOUND = 8.0  # log-variances pass through 8*tanh(v/8), as in the authors' code


def mlp(n_in: int, hidden: int, layers: int, n_out: int) -> nn.Sequential:
    """``layers`` hidden ReLU layers of width ``hidden``, then a linear output."""
    mods: list[nn.Module] = []
    width = n_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    mods.append(nn.Linear(width, n_out))
    return nn.Sequential(*mods)


def blend(x: torch.Tensor, known: torch.Tensor, guess: torch.Tensor) -> torch.Tensor:
    """``x~ = m*x + (1-m)*guess``: the known values of x, the current guess elsewhere (the
    only view of x a primary policy or an imputation output may take)."""
    return known * x + (1 - known) * guess


def split_gaussian(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A head's ``(..., 2z)`` output -> (mean, bounded log-variance), in float32."""
    mu, raw = out.float().chunk(2, dim=-1)
    return mu, LOGVAR_BOUND * torch.tanh(raw / LOGVAR_BOUND)


class GaussianMLP(nn.Module):
    """x -> (mu, logvar) of a diagonal Gaussian over z."""

    def __init__(self, n_in: int, hidden: int, layers: int, z_dim: int):
        super().__init__()
        self.net = mlp(n_in, hidden, layers, 2 * z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return split_gaussian(self.net(x))


def gaussian_kl(
    mu_a: torch.Tensor, lv_a: torch.Tensor, mu_b: torch.Tensor, lv_b: torch.Tensor
) -> torch.Tensor:
    """KL(N(mu_a, e^lv_a) || N(mu_b, e^lv_b)), summed over the last dimension."""
    return 0.5 * (lv_b - lv_a + (lv_a.exp() + (mu_a - mu_b) ** 2) / lv_b.exp() - 1).sum(-1)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, lv: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, e^lv), summed over the last dimension."""
    return -0.5 * (lv + (z - mu) ** 2 / lv.exp() + math.log(2 * math.pi)).sum(-1)


def reparameterise(
    mu: torch.Tensor, lv: torch.Tensor, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """A draw from N(mu, e^lv): ``mu + std * noise``, the noise standard normal (drawn here
    when not given: the primary roll-out passes noise it drew for every step up front)."""
    return mu + (0.5 * lv).exp() * (torch.randn_like(mu) if noise is None else noise)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-example Bernoulli NLL of values x in [0, 1], summed where ``weight`` is 1."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none")
    return (bce * weight).sum(-1)


def bernoulli_nll_probs(p: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """As :func:`bernoulli_nll` for probabilities (callers keep p away from 0 and 1)."""
    p, x = p.double(), x.double()
    return (-(x * p.log() + (1 - x) * (1 - p).log()) * weight.double()).sum(-1)


def bernoulli_entropy(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The least Bernoulli NLL any model can give a value x (reached at p = x), summed."""
    x = x.double().clamp(1e-12, 1 - 1e-12)
    return (-(x * x.log() + (1 - x) * (1 - x).log()) * weight.double()).sum(-1)


class GuidedSums:
    """A guided roll-out's per-example sums over its steps: KL(q||p), KL(p||q) and
    ``log_w = log p(z) - log q(z)`` of the z drawn from the guide q."""

    def __init__(self, like: torch.Tensor):
        zero = like.new_zeros(len(like))
        self.kl_qp, self.kl_pq, self.log_w = zero, zero, zero

    def draw(self, p: tuple[torch.Tensor, torch.Tensor], q: tuple[torch.Tensor, torch.Tensor]):
        """z ~ q (p and q as (mean, log-variance)), adding this step's terms."""
        z = reparameterise(*q)
        self.kl_qp = self.kl_qp + gaussian_kl(*q, *p)
        self.kl_pq = self.kl_pq + gaussian_kl(*p, *q)
        self.log_w = self.log_w + gaussian_log_prob(z, *p) - gaussian_log_prob(z, *q)
        return z

    def result(self, c: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"c": c, "kl_qp": self.kl_qp, "kl_pq": self.kl_pq, "log_w": self.log_w}
