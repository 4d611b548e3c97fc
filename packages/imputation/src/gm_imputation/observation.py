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

``auto`` picks Bernoulli for images and for data whose observed values are all 0 or 1,
Gaussian otherwise.
"""

from __future__ import annotations

import math

import torch

from gm.errors import GMError
from gm_imputation.nets import LOGVAR_BOUND, bernoulli_nll

KINDS = ("auto", "bernoulli", "gaussian")
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


def get(kind: str, binary: bool = False, image: bool = False) -> Observation:
    """The observation model ``kind``; ``auto`` resolved by the data (see module doc)."""
    if kind not in KINDS:
        raise GMError(f"observation must be one of {', '.join(KINDS)}, not {kind!r}.")
    if kind == "auto":
        kind = "bernoulli" if image or binary else "gaussian"
    return Bernoulli() if kind == "bernoulli" else Gaussian()
