"""Transition operators p_T(s'|s) with weights shared across walk steps.

Gaussian (real-valued data)::

    mean = (1 - alpha) * s + alpha * F_mu(s)
    var  = T * softplus(F_sigma(s))^2          (temperature_scaling="variance", default)
    std  = T * softplus(F_sigma(s))            (temperature_scaling="std", the paper's other wording)

Bernoulli (binary data)::

    p(s'_i = 1) = sigmoid(((1 - alpha) * s_i + alpha * F_rho(s)_i) / T)

``distribution(s, temperature, step)`` returns a ``torch.distributions`` object whose
``log_prob`` sums over one example's dimensions (shape (B,)). Arguments are never
validated inside distributions (validation syncs with the host on every call).
The network is split from the temperature so that callers can evaluate F once and
build the distribution at several temperatures (:meth:`heads` and :meth:`from_heads`).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from gm_walkback.networks import Activation, ConvNet, LinearNet, MLPNet, Norm

Scaling = Literal["variance", "std"]


class GaussianOperator(nn.Module):
    """A Gaussian transition operator around any network returning (F_mu, F_sigma)."""

    kind = "gaussian"

    def __init__(
        self,
        net: nn.Module,
        *,
        event_dims: int,
        alpha: float = 0.5,
        temperature_scaling: Scaling = "variance",
        min_std: float = 1e-4,
    ):
        super().__init__()
        if temperature_scaling not in ("variance", "std"):
            raise ValueError(
                f"temperature_scaling must be 'variance' or 'std', not {temperature_scaling!r}"
            )
        self.net, self.event_dims, self.alpha = net, event_dims, alpha
        self.temperature_scaling, self.min_std = temperature_scaling, min_std

    @property
    def step_dependent(self) -> bool:
        """Whether F depends on the step index (per-step normalisation parameters)."""
        return any(getattr(m, "per_step", False) for m in self.net.modules())

    def heads(self, s: torch.Tensor, step) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std at T = 1) in float32, the temperature-free part of the operator."""
        f_mu, f_sigma = self.net(s, step)
        mean = (1 - self.alpha) * s.float() + self.alpha * f_mu.float()
        return mean, F.softplus(f_sigma.float()) + self.min_std

    def from_heads(self, heads: tuple[torch.Tensor, torch.Tensor], temperature) -> D.Distribution:
        mean, std1 = heads
        factor = temperature**0.5 if self.temperature_scaling == "variance" else temperature
        normal = D.Normal(mean, std1 * factor, validate_args=False)
        return D.Independent(normal, self.event_dims, validate_args=False)

    def distribution(self, s: torch.Tensor, temperature, step) -> D.Distribution:
        return self.from_heads(self.heads(s, step), temperature)

    def noise_variance(self, s: torch.Tensor, step) -> torch.Tensor:
        """Mean per-dimension noise variance at T = 1 (sigma^2 in Tmax = sigma_max^2 / sigma^2)."""
        return self.heads(s, step)[1].pow(2).mean()


class BernoulliOperator(nn.Module):
    """A factorised Bernoulli transition operator around any network returning (F_rho,)."""

    kind = "bernoulli"

    def __init__(self, net: nn.Module, *, event_dims: int, alpha: float = 0.5):
        super().__init__()
        self.net, self.event_dims, self.alpha = net, event_dims, alpha

    step_dependent = GaussianOperator.step_dependent

    def heads(self, s: torch.Tensor, step) -> tuple[torch.Tensor]:
        (f_rho,) = self.net(s, step)
        return ((1 - self.alpha) * s.float() + self.alpha * f_rho.float(),)

    def from_heads(self, heads: tuple[torch.Tensor], temperature) -> D.Distribution:
        bern = D.Bernoulli(logits=heads[0] / temperature, validate_args=False)
        return D.Independent(bern, self.event_dims, validate_args=False)

    def distribution(self, s: torch.Tensor, temperature, step) -> D.Distribution:
        return self.from_heads(self.heads(s, step), temperature)

    def noise_variance(self, s: torch.Tensor, step) -> torch.Tensor:
        p = torch.sigmoid(self.heads(s, step)[0])
        return (p * (1 - p)).mean()


# --- the registered operators: an operator around its network, built from plain arguments ----
class GaussianMLP(GaussianOperator):
    """Gaussian operator with the MLP network (vectors; flattened images)."""

    def __init__(
        self,
        shape: tuple[int, ...] = (2,),
        *,
        hidden: int = 4096,
        depth: int = 2,
        norm: Norm = "none",
        levels: int = 1,
        per_step: bool = False,
        basis: int = 0,
        alpha: float = 0.5,
        temperature_scaling: Scaling = "variance",
        init_std: float = 0.1,
        min_std: float = 1e-4,
    ):
        net = MLPNet(
            math.prod(shape),
            hidden=hidden,
            depth=depth,
            heads=2,
            norm=norm,
            levels=levels,
            per_step=per_step,
            basis=basis,
            init_std=init_std,
        )
        super().__init__(
            net,
            event_dims=len(shape),
            alpha=alpha,
            temperature_scaling=temperature_scaling,
            min_std=min_std,
        )


class GaussianLinear(GaussianOperator):
    """Gaussian operator p_T(s'|s) = N(a s + b, T v) elementwise (:class:`LinearNet`): the
    closed-form case of the bound, the likelihood and the reversibility measure."""

    def __init__(
        self,
        shape: tuple[int, ...] = (2,),
        *,
        alpha: float = 0.5,
        temperature_scaling: Scaling = "variance",
        init_std: float = 0.1,
        min_std: float = 1e-4,
        **_ignored,  # the network options of the other operators
    ):
        super().__init__(
            LinearNet(math.prod(shape), init_std=init_std),
            event_dims=len(shape),
            alpha=alpha,
            temperature_scaling=temperature_scaling,
            min_std=min_std,
        )

    def set_linear(self, a: float, b: float, v: float) -> None:
        """Set the operator to N(a s + b, T v) exactly (given alpha and min_std)."""
        net, alpha = self.net, self.alpha
        std = math.sqrt(v) - self.min_std
        with torch.no_grad():
            net.w.fill_((a - (1 - alpha)) / alpha)
            net.c.fill_(b / alpha)
            net.f.fill_(std + math.log(-math.expm1(-std)))  # softplus^-1


class GaussianConv(GaussianOperator):
    """Gaussian operator with the paper's conv encoder / FC bottleneck / deconv decoders."""

    def __init__(
        self,
        shape: tuple[int, int, int] = (1, 28, 28),
        *,
        channels: tuple[int, ...] = (16, 32),
        fc_layers: int = 5,
        fc_width: int = 1024,
        norm: Norm = "batch",
        fc_norm: Norm | None = "layer",
        fc_activation: Activation = "leaky",
        levels: int = 1,
        per_step: bool = False,
        basis: int = 0,
        alpha: float = 0.5,
        temperature_scaling: Scaling = "variance",
        init_std: float = 0.1,
        min_std: float = 1e-4,
    ):
        net = ConvNet(
            tuple(shape),
            channels=tuple(channels),
            fc_layers=fc_layers,
            fc_width=fc_width,
            heads=2,
            norm=norm,
            fc_norm=fc_norm,
            fc_activation=fc_activation,
            levels=levels,
            per_step=per_step,
            basis=basis,
            init_std=init_std,
        )
        super().__init__(
            net, event_dims=3, alpha=alpha, temperature_scaling=temperature_scaling, min_std=min_std
        )


class BernoulliMLP(BernoulliOperator):
    """Bernoulli operator with the MLP network (binary vectors or flattened binary images)."""

    def __init__(
        self,
        shape: tuple[int, ...] = (784,),
        *,
        hidden: int = 1200,
        depth: int = 2,
        norm: Norm = "batch",
        levels: int = 1,
        per_step: bool = False,
        basis: int = 0,
        alpha: float = 0.5,
    ):
        net = MLPNet(
            math.prod(shape),
            hidden=hidden,
            depth=depth,
            heads=1,
            norm=norm,
            levels=levels,
            per_step=per_step,
            basis=basis,
        )
        super().__init__(net, event_dims=len(shape), alpha=alpha)


class BernoulliConv(BernoulliOperator):
    """Bernoulli operator with the paper's conv network (binary images)."""

    def __init__(
        self,
        shape: tuple[int, int, int] = (1, 28, 28),
        *,
        channels: tuple[int, ...] = (16, 32),
        fc_layers: int = 5,
        fc_width: int = 1024,
        norm: Norm = "batch",
        fc_norm: Norm | None = "layer",
        fc_activation: Activation = "leaky",
        levels: int = 1,
        per_step: bool = False,
        basis: int = 0,
        alpha: float = 0.5,
    ):
        net = ConvNet(
            tuple(shape),
            channels=tuple(channels),
            fc_layers=fc_layers,
            fc_width=fc_width,
            heads=1,
            norm=norm,
            fc_norm=fc_norm,
            fc_activation=fc_activation,
            levels=levels,
            per_step=per_step,
            basis=basis,
        )
        super().__init__(net, event_dims=3, alpha=alpha)


def build_operator(cfg, shape: tuple[int, ...], levels: int) -> nn.Module:
    """The operator a walkback config asks for (``cfg``: a :class:`WalkbackConfig`)."""
    common = {"norm": cfg.norm, "levels": levels, "per_step": cfg.per_step_norm, "alpha": cfg.alpha}
    gaussian = {
        "temperature_scaling": cfg.temperature_scaling,
        "init_std": cfg.init_std,
        "min_std": cfg.min_std,
    }
    if cfg.network == "linear":
        if cfg.operator != "gaussian":
            raise ValueError("the linear network is a Gaussian operator (--set operator=gaussian)")
        return GaussianLinear(shape, alpha=cfg.alpha, **gaussian)
    if cfg.network == "mlp":
        net = {"hidden": cfg.hidden, "depth": cfg.depth}
        if cfg.operator == "gaussian":
            return GaussianMLP(shape, **net, **common, **gaussian)
        return BernoulliMLP(shape, **net, **common)
    if len(shape) != 3:
        raise ValueError("the conv network needs image data (C, H, W)")
    net = {
        "channels": tuple(cfg.conv_channels),
        "fc_layers": cfg.fc_layers,
        "fc_width": cfg.fc_width,
        "fc_norm": cfg.norm if cfg.fc_norm == "same" else cfg.fc_norm,
        "fc_activation": cfg.fc_activation,
    }
    if cfg.operator == "gaussian":
        return GaussianConv(shape, **net, **common, **gaussian)
    return BernoulliConv(shape, **net, **common)
