"""Transition operators p_T(s'|s) with weights shared across walk steps.

Gaussian (real-valued data)::

    mean = (1 - alpha) * s + alpha * F_mu(s)
    var  = T * sigma(s)^2          (temperature_scaling="variance", default)
    std  = T * sigma(s)            (temperature_scaling="std", the paper's other wording)

where sigma(s), the noise at T = 1, is (``noise``):

- ``"network"``: softplus(F_sigma(s)), F's variance head (state- and step-dependent);
- ``"learned"``: one learned std per dimension, depending on neither the state nor the step,
  so per-step parameters cannot undo the heating: the noise at level l is exactly
  sqrt(T_l) sigma (Algorithm 1: "noise of variance T sigma^2 at each step, where sigma^2
  is the noise level at temperature 1");
- ``"fixed"``: ``init_std`` everywhere (the authors' code keeps a small fixed sigma).

``max_std > 0`` caps sigma smoothly (``max_std * tanh(softplus(.) / max_std)``): trained on
heated walks, a free T = 1 noise grows without bound (MNIST: 0.05 -> 0.32 over 1,500
minibatches), and every T = 1 step then scores a blurred state.

Bernoulli (binary data)::

    p(s'_i = 1) = sigmoid(((1 - alpha) * s_i + alpha * F_rho(s)_i) / T)

``distribution(s, temperature, step)`` returns a ``torch.distributions`` object whose
``log_prob`` sums over one example's dimensions (shape (B,)). Arguments are never
validated inside distributions (validation syncs with the host on every call).
The network is split from the temperature so that callers can evaluate F once and
build the distribution at several temperatures (:meth:`heads` and :meth:`from_heads`).

The registered operators (gm_walkback.plugin) are built by the trainer through the
registry: ``Cls.build(config, info)`` reads a walkback config (network sizes, per-step
parameters: one set per step of the appendix walk, else ``max_levels``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from gm.errors import GMError
from gm_walkback.networks import ConvNet, LinearNet, MLPNet, inverse_softplus

Scaling = Literal["variance", "std"]
Noise = Literal["network", "learned", "fixed"]
NOISES = ("network", "learned", "fixed")


def bounded_std(raw: torch.Tensor, max_std: float) -> torch.Tensor:
    """softplus(raw), smoothly capped at ``max_std`` (no cap where max_std <= 0)."""
    std = F.softplus(raw)
    return max_std * torch.tanh(std / max_std) if max_std > 0 else std


def uncapped_std(std: float, max_std: float) -> float:
    """The softplus value that :func:`bounded_std` caps to ``std`` (what a network's variance
    head starts at for an operator starting at ``std``)."""
    if max_std <= 0:
        return std
    if not 0 < std < max_std:
        raise GMError(f"init_std ({std}) must lie strictly between 0 and max_std ({max_std}).")
    return max_std * math.atanh(std / max_std)


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
        noise: Noise = "network",
        max_std: float = 0.0,
        init_std: float = 0.1,
        shape: tuple[int, ...] | None = None,
    ):
        super().__init__()
        if temperature_scaling not in ("variance", "std"):
            raise ValueError(
                f"temperature_scaling must be 'variance' or 'std', not {temperature_scaling!r}"
            )
        if noise not in NOISES:
            raise GMError(f"noise must be one of {', '.join(NOISES)}, not {noise!r}.")
        self.net, self.event_dims, self.alpha = net, event_dims, alpha
        self.temperature_scaling, self.min_std = temperature_scaling, min_std
        self.noise, self.max_std = noise, max_std
        if noise != "network":
            if shape is None:
                raise GMError(f"noise {noise!r} needs the data's shape (shape=...).")
            # sigma at T = 1 without the state or the step: one raw value per dimension
            raw = torch.full(tuple(shape), inverse_softplus(uncapped_std(init_std, max_std)))
            self.raw_std = nn.Parameter(raw, requires_grad=noise == "learned")

    @property
    def step_dependent(self) -> bool:
        """Whether F depends on the step index (per-step normalisation parameters)."""
        return any(getattr(m, "per_step", False) for m in self.net.modules())

    def heads(self, s: torch.Tensor, step) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std at T = 1) in float32, the temperature-free part of the operator."""
        f_mu, f_sigma = self.net(s, step)
        mean = (1 - self.alpha) * s.float() + self.alpha * f_mu.float()
        raw = f_sigma.float() if self.noise == "network" else self.raw_std.expand_as(mean)
        return mean, bounded_std(raw, self.max_std) + self.min_std

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


# --- what a walkback config says about its operator (the registered classes' ``build``) ------
def _levels(cfg) -> int:
    """Per-step parameter sets: one per step of the appendix walk, else ``max_levels``."""
    return cfg.walk_steps if cfg.schedule == "appendix" else cfg.max_levels


def _common(cfg) -> dict:
    return {
        "norm": cfg.norm,
        "levels": _levels(cfg),
        "per_step": cfg.per_step_norm,
        "alpha": cfg.alpha,
    }


def _gaussian(cfg) -> dict:
    return {
        "temperature_scaling": cfg.temperature_scaling,
        "init_std": cfg.init_std,
        "min_std": cfg.min_std,
        "noise": cfg.noise,
        "max_std": cfg.max_std,
    }


def _mlp(cfg) -> dict:
    return {"hidden": cfg.hidden, "depth": cfg.depth}


def _conv(cfg, shape: tuple[int, ...]) -> dict:
    if len(shape) != 3:
        raise GMError("network 'conv' needs image data (C, H, W); use --set network=mlp.")
    return {
        "channels": tuple(cfg.conv_channels),
        "fc_layers": cfg.fc_layers,
        "fc_width": cfg.fc_width,
        "fc_norm": cfg.norm if cfg.fc_norm == "same" else cfg.fc_norm,
        "fc_activation": cfg.fc_activation,
    }


# --- the registered operators: an operator around its network, built from plain arguments ----
# The networks' options (networks.MLPNet / ConvNet keywords) a registered operator starts
# from: the paper's nets. Any keyword given to the constructor overrides them.
TOY_MLP = {"hidden": 4096, "depth": 2, "norm": "none"}  # appendix C's 2-D toy net
MNIST_MLP = {"hidden": 1200, "depth": 2, "norm": "batch"}  # appendix E.1's likelihood MLP
TABLE2_CONV = {  # Table 2 (MNIST): BN on the convs, LN on the FC layers, leaky ReLU
    "channels": (16, 32),
    "fc_layers": 5,
    "fc_width": 1024,
    "norm": "batch",
    "fc_norm": "layer",
    "fc_activation": "leaky",
}


class _RegisteredGaussian(GaussianOperator):
    """A registered Gaussian operator: its network made by :meth:`network` from the shape
    and the network's keywords, the Gaussian's own options here."""

    default_shape: tuple[int, ...] = (2,)

    @staticmethod
    def network(shape: tuple[int, ...], init_std: float, **net) -> nn.Module:
        raise NotImplementedError

    def __init__(
        self,
        shape: tuple[int, ...] | None = None,
        *,
        alpha: float = 0.5,
        temperature_scaling: Scaling = "variance",
        init_std: float = 0.1,
        min_std: float = 1e-4,
        noise: Noise = "network",
        max_std: float = 0.0,
        **net,
    ):
        shape = tuple(shape or self.default_shape)
        super().__init__(
            self.network(shape, uncapped_std(init_std, max_std), **net),
            event_dims=len(shape),
            alpha=alpha,
            temperature_scaling=temperature_scaling,
            min_std=min_std,
            noise=noise,
            max_std=max_std,
            init_std=init_std,
            shape=shape,
        )


class GaussianMLP(_RegisteredGaussian):
    """Gaussian operator with the MLP network (vectors; flattened images); ``net``: MLPNet's
    keywords over :data:`TOY_MLP` (levels, per_step, basis, hidden, ...)."""

    @classmethod
    def build(cls, cfg, info):
        """The operator a walkback config asks for, on ``info``'s shape."""
        return cls(tuple(info.shape), **_mlp(cfg), **_common(cfg), **_gaussian(cfg))

    @staticmethod
    def network(shape, init_std, **net):
        return MLPNet(math.prod(shape), heads=2, init_std=init_std, **{**TOY_MLP, **net})


class GaussianLinear(_RegisteredGaussian):
    """Gaussian operator p_T(s'|s) = N(a s + b, T v) elementwise (:class:`LinearNet`): the
    closed-form case of the bound, the likelihood and the reversibility measure (the network
    options of the other operators are ignored)."""

    @classmethod
    def build(cls, cfg, info):
        """The operator a walkback config asks for, on ``info``'s shape."""
        return cls(tuple(info.shape), alpha=cfg.alpha, **_gaussian(cfg))

    @staticmethod
    def network(shape, init_std, **_ignored):
        return LinearNet(math.prod(shape), init_std=init_std)

    def set_linear(self, a: float, b: float, v: float) -> None:
        """Set the operator to N(a s + b, T v) exactly (given alpha and min_std)."""
        net, alpha = self.net, self.alpha
        std = math.sqrt(v) - self.min_std
        with torch.no_grad():
            net.get_parameter("w").fill_((a - (1 - alpha)) / alpha)
            net.get_parameter("c").fill_(b / alpha)
            net.get_parameter("f").fill_(std + math.log(-math.expm1(-std)))  # softplus^-1


class GaussianConv(_RegisteredGaussian):
    """Gaussian operator with the paper's conv encoder / FC bottleneck / deconv decoders;
    ``net``: ConvNet's keywords over :data:`TABLE2_CONV`."""

    default_shape = (1, 28, 28)

    @classmethod
    def build(cls, cfg, info):
        """The operator a walkback config asks for, on ``info``'s shape."""
        shape = tuple(info.shape)
        return cls(shape, **_conv(cfg, shape), **_common(cfg), **_gaussian(cfg))

    @staticmethod
    def network(shape, init_std, **net):
        return ConvNet(shape, heads=2, init_std=init_std, **{**TABLE2_CONV, **net})


class BernoulliMLP(BernoulliOperator):
    """Bernoulli operator with the MLP network (binary vectors or flattened binary images);
    ``net``: MLPNet's keywords over :data:`MNIST_MLP`."""

    @classmethod
    def build(cls, cfg, info):
        """The operator a walkback config asks for, on ``info``'s shape."""
        return cls(tuple(info.shape), **_mlp(cfg), **_common(cfg))

    def __init__(self, shape: tuple[int, ...] = (784,), *, alpha: float = 0.5, **net):
        mlp = MLPNet(math.prod(shape), heads=1, **{**MNIST_MLP, **net})
        super().__init__(mlp, event_dims=len(shape), alpha=alpha)


class BernoulliConv(BernoulliOperator):
    """Bernoulli operator with the paper's conv network (binary images); ``net``: ConvNet's
    keywords over :data:`TABLE2_CONV`."""

    @classmethod
    def build(cls, cfg, info):
        """The operator a walkback config asks for, on ``info``'s shape."""
        shape = tuple(info.shape)
        return cls(shape, **_conv(cfg, shape), **_common(cfg))

    def __init__(self, shape: tuple[int, int, int] = (1, 28, 28), *, alpha: float = 0.5, **net):
        c, h, w = shape
        conv = ConvNet((c, h, w), heads=1, **{**TABLE2_CONV, **net})
        super().__init__(conv, event_dims=3, alpha=alpha)
