"""Observation models: how the final canvas ``c_T`` scores and draws the missing values.

A policy's canvas has ``width(D)`` channels per example. The first D are what the policy
sees as its current guess (``canvas``) after the observation's link:

- ``bernoulli`` (the paper's): ``c`` are logits, the guess is ``sigmoid(c)``, values in
  [0, 1] are scored by the Bernoulli NLL. A "draw" is the mean ``sigmoid(c)`` (grey-scale
  images are not binary, so a 0/1 draw would not be an image); right for images and
  binary columns.
- ``gaussian`` (the authors' GPSImputer ``x_type='gaussian'``): the first D channels are
  the mean (identity link), the next D a log-variance per value bounded as
  ``8 tanh(v / 8)`` (the authors' bound). Scored by the Gaussian NLL, and a draw samples
  ``x ~ N(mean, e^logvar)``, so several roll-outs with draws are multiple imputation.
  Means and draws are clamped to [0, 1], the unit range of the column's observed values
  (clamping never moves a draw away from a truth inside that range).

- ``mixed`` (a table with category columns, :mod:`gm_imputation.mixed`): Gaussian values
  as above, and for each category column its one-hot values' channels are logits whose
  softmax is the guess, scored by the categorical NLL ``-log p(level)`` and drawn as a
  one-hot level.

``auto`` picks Bernoulli for images and for data whose observed values are all 0 or 1,
mixed for a table with category columns, Gaussian otherwise.
"""

from __future__ import annotations

import math

import torch

from gm.errors import GMError
from gm_imputation.nets import LOGVAR_BOUND, bernoulli_nll

KINDS = ("auto", "bernoulli", "gaussian")  # and "mixed", chosen by auto from a schema
INITIAL_LOGVAR = -3.0


class Observation:
    name = "?"

    def width(self, dim: int) -> int:
        """Channels of the canvas for ``dim`` values."""
        return dim

    def initial(self, dim: int) -> torch.Tensor:
        """The canvas bias's starting value (it is learned)."""
        return torch.zeros(self.width(dim))

    def canvas(self, c: torch.Tensor) -> torch.Tensor:
        """The guess the policies see, ``(N, D)``."""
        raise NotImplementedError

    def nll(self, c: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Per-example NLL of the values x where ``weight`` is 1 (summed over values)."""
        raise NotImplementedError

    def train_nll(self, c: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The NLL term of the training loss (the NLL itself unless reweighted)."""
        return self.nll(c, x, weight)

    def mean(self, c: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def draw(self, c: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Bernoulli(Observation):
    name = "bernoulli"

    def canvas(self, c):
        return torch.sigmoid(c)

    def nll(self, c, x, weight):
        return bernoulli_nll(c, x, weight)

    def mean(self, c):
        return torch.sigmoid(c)

    def draw(self, c):
        return torch.sigmoid(c)


class Gaussian(Observation):
    name = "gaussian"

    def width(self, dim):
        return 2 * dim

    def initial(self, dim):
        # Mean mid-range, variance 0.05 (a unit-range column's scale): with variance 1 the
        # mean's gradient, scaled by 1/variance, would start about 20 times too small.
        return torch.cat([torch.full((dim,), 0.5), torch.full((dim,), INITIAL_LOGVAR)])

    @staticmethod
    def split(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, bounded log-variance) of each value."""
        mu, raw = c.float().chunk(2, dim=-1)
        return mu, LOGVAR_BOUND * torch.tanh(raw / LOGVAR_BOUND)

    def canvas(self, c):
        return c[..., : c.shape[-1] // 2]

    def nll(self, c, x, weight):
        mu, lv = self.split(c)
        per = 0.5 * (math.log(2 * math.pi) + lv + (x.float() - mu) ** 2 * torch.exp(-lv))
        return (per * weight).sum(-1)

    def mean(self, c):
        return self.split(c)[0].clamp(0, 1)

    def draw(self, c):
        mu, lv = self.split(c)
        return (mu + torch.exp(0.5 * lv) * torch.randn_like(mu)).clamp(0, 1)


class Mixed(Observation):
    """Gaussian values and categorical groups (see the module doc). The canvas is ``D``
    heads (a value's mean, or a level's logit) then one log-variance per Gaussian value."""

    def __init__(self, dim: int, groups: list[tuple[int, int]], beta: float = 0.0):
        self.dim, self.groups, self.beta = dim, groups, beta
        self.name = "gaussian+categorical" if groups else "gaussian"
        real = torch.ones(dim, dtype=torch.bool)
        for a, k in groups:
            real[a : a + k] = False
        self.real = real
        self.n_real = int(real.sum())

    def width(self, dim):
        return dim + self.n_real

    def initial(self, dim):
        heads = torch.where(self.real, torch.tensor(0.5), torch.tensor(0.0))
        return torch.cat([heads, torch.full((self.n_real,), INITIAL_LOGVAR)])

    def _parts(self, c):
        """(heads with each group's logits turned into log-probabilities, log-variances of
        the Gaussian values)."""
        heads = c[..., : self.dim].float()
        if self.groups:
            pieces, at = [], 0
            for a, k in self.groups:
                pieces += [heads[..., at:a], torch.log_softmax(heads[..., a : a + k], -1)]
                at = a + k
            heads = torch.cat([*pieces, heads[..., at:]], -1)
        raw = c[..., self.dim :].float()
        return heads, LOGVAR_BOUND * torch.tanh(raw / LOGVAR_BOUND)

    def _real(self, t):
        return t[..., self.real.to(t.device)]

    def canvas(self, c):
        heads, _ = self._parts(c)
        real = self.real.to(c.device)
        return torch.where(real, heads, heads.exp())

    def nll(self, c, x, weight, beta: float = 0.0):
        """The NLL; with ``beta`` > 0 each Gaussian term is weighted by its variance^beta
        (held fixed: beta-NLL, Seitzer et al. 2022), which keeps a large learned variance
        from slowing the mean's learning."""
        heads, lv = self._parts(c)
        real = self.real.to(c.device)
        x, w = x.float(), weight.float()
        mu = self._real(heads)
        per = 0.5 * (math.log(2 * math.pi) + lv + (self._real(x) - mu) ** 2 * torch.exp(-lv))
        if beta:
            per = per * torch.exp(beta * lv).detach()
        # a hidden category: every one of its one-hot values is a target; x picks its level
        cat = -(torch.where(real, 0.0, x * heads) * w).sum(-1)
        return (per * self._real(w)).sum(-1) + cat

    def train_nll(self, c, x, weight):
        return self.nll(c, x, weight, self.beta)

    def mean(self, c):
        return self.canvas(c).clamp(0, 1)

    def draw(self, c):
        heads, lv = self._parts(c)
        real = self.real.to(c.device)
        noise = torch.zeros_like(heads)
        noise[..., real] = torch.exp(0.5 * lv) * torch.randn_like(lv)
        out = torch.where(real, heads + noise, torch.zeros_like(heads))
        for a, k in self.groups:  # one level per group, drawn from its probabilities
            flat = heads[..., a : a + k].reshape(-1, k).exp()
            pick = torch.multinomial(flat, 1).view(*heads.shape[:-1], 1)
            out[..., a : a + k] = torch.zeros_like(heads[..., a : a + k]).scatter_(-1, pick, 1.0)
        return out.clamp(0, 1)


def get(
    kind: str,
    binary: bool = False,
    image: bool = False,
    groups: list[tuple[int, int]] | None = None,
    dim: int = 0,
    beta: float = 0.0,
) -> Observation:
    """The observation model ``kind``; ``auto`` resolved by the data (see module doc).
    ``groups`` (first value, levels) of a table's category columns; ``beta`` > 0 trains
    Gaussian values by beta-NLL."""
    if kind not in KINDS:
        raise GMError(f"observation must be one of {', '.join(KINDS)}, not {kind!r}.")
    if kind == "auto" and not image and groups is not None:
        return Mixed(dim, groups, beta)
    if kind == "auto":
        kind = "bernoulli" if image or binary else "gaussian"
    return Bernoulli() if kind == "bernoulli" else Gaussian()
