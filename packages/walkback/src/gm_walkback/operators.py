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

**The skip** (``skip="full"`` or ``"diagonal"``; ``"none"``: the mean above). In the axes of
a Gaussian G = N(mu, U diag(lam) U^T) fitted to the training data (``"diagonal"``: U = I),
y = U^T (s - mu), the operator at temperature T is, per axis i::

    mean_y = sqrt(1 - c) y + sqrt(c lam) U^T F_mu(s)
    var_y  = T c lam g,    g = sigmoid(raw) in (0, 1)

With F = 0 and g = 1 it is reversible with stationary law N(0, T lam) at every T
(T lam (1 - c) + T c lam = T lam): at T = 1 it samples G, heated it is G heated, so
Tmax = 1/c in closed form (c = 1/8: H = 3); F learns what G misses, in units of the T = 1
noise std (targets O(1), as ddpm's x0 skip). The T = 1 noise is bounded by G's, c lam, by
construction, and ``noise="learned"`` (one g per axis, neither state nor step) makes the
noise at level l exactly T_l times it, so per-step parameters cannot cancel the heating;
``"fixed"``: g = 1; ``"network"``: g = sigmoid(raw + U^T F_sigma(s)) (bounded, state- and
step-dependent). Rotations have Jacobian 1: log-densities are those of y.

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
from gm_walkback.networks import ConvNet, LinearNet, MLPNet, head_layer, inverse_softplus
from gm_walkback.shared import fp32_matmul

Scaling = Literal["variance", "std"]
Noise = Literal["network", "learned", "fixed"]
NOISES = ("network", "learned", "fixed")
Skip = Literal["none", "diagonal", "full"]
SKIPS = ("none", "diagonal", "full")
SKIP_GAIN = 0.95  # g = sigmoid(raw) when training starts: nearly G's own heated chain
# c of the skip: a T = 1 step redraws 1/8 of G's variance (Tmax = 8, H = 3); on mnist-5k 1/8
# measured better than 1/4 and 1/32 at 500-2,000 updates (issue 22; the results page)
SKIP_C = 1 / 8


class AxesNormal(D.Distribution):
    """N(offset + U m, U diag(std^2) U^T) on examples of ``shape``: independent normals along
    the orthonormal axes U (columns), with log_prob, samples, mean and the marginal variances
    in the data's coordinates (a rotation: log-densities are those along the axes)."""

    has_rsample = True
    arg_constraints: dict = {}

    def __init__(self, offset, axes, mean, std, shape: tuple[int, ...]):
        self.offset, self.axes, self.shape_ = offset, axes, tuple(shape)
        self.base = D.Normal(mean, std, validate_args=False)
        super().__init__(mean.shape[:-1], torch.Size(shape), validate_args=False)

    def to_axes(self, x: torch.Tensor) -> torch.Tensor:
        return fp32_matmul((x - self.offset).flatten(1), self.axes)

    def from_axes(self, y: torch.Tensor) -> torch.Tensor:
        return self.offset + fp32_matmul(y, self.axes.T).view(-1, *self.shape_)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self.from_axes(self.base.rsample(sample_shape))

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.base.log_prob(self.to_axes(x)).sum(-1)

    def entropy(self) -> torch.Tensor:
        return self.base.entropy().sum(-1)

    @property
    def mean(self) -> torch.Tensor:
        return self.from_axes(self.base.mean)

    @property
    def variance(self) -> torch.Tensor:
        return fp32_matmul(self.base.scale.pow(2), self.axes.pow(2).T).view(-1, *self.shape_)

    @property
    def stddev(self) -> torch.Tensor:
        return self.variance.sqrt()


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
        skip: Skip = "none",
        skip_c: float = SKIP_C,
    ):
        super().__init__()
        if temperature_scaling not in ("variance", "std"):
            raise ValueError(
                f"temperature_scaling must be 'variance' or 'std', not {temperature_scaling!r}"
            )
        if noise not in NOISES:
            raise GMError(f"noise must be one of {', '.join(NOISES)}, not {noise!r}.")
        if skip not in SKIPS:
            raise GMError(f"skip must be one of {', '.join(SKIPS)}, not {skip!r}.")
        self.net, self.event_dims, self.alpha = net, event_dims, alpha
        self.temperature_scaling, self.min_std = temperature_scaling, min_std
        self.noise, self.max_std, self.skip = noise, max_std, skip
        if skip != "none":
            self._init_skip(shape, skip_c)
        elif noise != "network":
            if shape is None:
                raise GMError(f"noise {noise!r} needs the data's shape (shape=...).")
            # sigma at T = 1 without the state or the step: one raw value per dimension
            raw = torch.full(tuple(shape), inverse_softplus(uncapped_std(init_std, max_std)))
            self.raw_std = nn.Parameter(raw, requires_grad=noise == "learned")

    def _init_skip(self, shape: tuple[int, ...] | None, c: float) -> None:
        """The skip's buffers (G = N(0, I) until the trainer sets the data's, :meth:`set_skip`),
        its per-axis gain and F's mean head at 0: the operator starts as G's heated chain."""
        if shape is None:
            raise GMError("the skip needs the data's shape (shape=...).")
        if not 0 < c <= 1:
            raise GMError(f"skip_c must be greater than 0 and at most 1, not {c}.")
        self.skip_c, self.shape = c, tuple(shape)
        dims = math.prod(shape)
        self.register_buffer("skip_mean", torch.zeros(self.shape))
        self.register_buffer("skip_var", torch.ones(dims))
        if self.skip == "full":
            self.register_buffer("skip_axes", torch.eye(dims))
        if self.noise != "fixed":
            gain = math.log(SKIP_GAIN / (1 - SKIP_GAIN))  # sigmoid^-1
            self.raw_gain = nn.Parameter(torch.full((dims,), gain))
        with torch.no_grad():
            for i in (0, 1) if self.noise == "network" else (0,):
                layer = head_layer(self.net, i)
                if layer is not None:
                    for p in layer.parameters():
                        p.zero_()

    def set_skip(self, mean: torch.Tensor, var: torch.Tensor, axes: torch.Tensor | None) -> None:
        """Set G (the trainer's :func:`shared.follow_data`; the EMA copies the buffers)."""
        self.skip_mean.copy_(mean.view(self.shape))
        self.skip_var.copy_(var)
        if self.skip == "full":
            eye = torch.eye(len(var), device=var.device)
            self.skip_axes.copy_(eye if axes is None else axes)

    @property
    def skip_tmax(self) -> float:
        """Tmax in closed form (1/c: the heated G whose T = 1 step redraws a fraction c of G's
        variance reaches its own variance at T = 1/c); 0 without the skip."""
        return 1 / self.skip_c if self.skip != "none" else 0.0

    def _to_axes(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1).float()
        return fp32_matmul(x, self.skip_axes) if self.skip == "full" else x

    @property
    def step_dependent(self) -> bool:
        """Whether F depends on the step index (per-step normalisation parameters)."""
        return any(getattr(m, "per_step", False) for m in self.net.modules())

    def heads(self, s: torch.Tensor, step) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std at T = 1) in float32, the temperature-free part of the operator (with
        the skip: along G's axes, flattened)."""
        f_mu, f_sigma = self.net(s, step)
        if self.skip != "none":
            return self._skip_heads(s, f_mu, f_sigma)
        mean = (1 - self.alpha) * s.float() + self.alpha * f_mu.float()
        raw = f_sigma.float() if self.noise == "network" else self.raw_std.expand_as(mean)
        return mean, bounded_std(raw, self.max_std) + self.min_std

    def _skip_heads(self, s, f_mu, f_sigma) -> tuple[torch.Tensor, torch.Tensor]:
        c, lam = self.skip_c, self.skip_var
        y = self._to_axes(s - self.skip_mean)
        mean = math.sqrt(1 - c) * y + (c * lam).sqrt() * self._to_axes(f_mu)
        if self.noise == "fixed":
            var = c * lam.expand_as(mean)
        else:
            raw = self.raw_gain
            if self.noise == "network":
                raw = raw + self._to_axes(f_sigma)
            var = c * lam * torch.sigmoid(raw)
        return mean, (var + self.min_std**2).sqrt().expand_as(mean)

    def from_heads(self, heads: tuple[torch.Tensor, torch.Tensor], temperature) -> D.Distribution:
        mean, std1 = heads
        factor = temperature**0.5 if self.temperature_scaling == "variance" else temperature
        if self.skip == "full":
            return AxesNormal(self.skip_mean, self.skip_axes, mean, std1 * factor, self.shape)
        if self.skip == "diagonal":
            mean, std1 = self.skip_mean + mean.view(-1, *self.shape), std1.view(-1, *self.shape)
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
        "skip": cfg.skip,
        "skip_c": cfg.skip_c,
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
        skip: Skip = "none",
        skip_c: float = SKIP_C,
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
            skip=skip,
            skip_c=skip_c,
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
        if cfg.skip != "none":
            raise GMError("the linear network has no skip; use --set skip=none.")
        return cls(tuple(info.shape), alpha=cfg.alpha, **_gaussian(cfg))

    @staticmethod
    def network(shape, init_std, **_ignored):
        return LinearNet(math.prod(shape), init_std=init_std)

    def set_linear(self, a: float, b: float, v: float) -> None:
        """Set the operator to N(a s + b, T v) exactly (given alpha and min_std)."""
        net, alpha = self.net, self.alpha
        std = math.sqrt(v) - self.min_std
        with torch.no_grad():
            net.w.fill_((a - (1 - alpha)) / alpha)
            net.c.fill_(b / alpha)
            net.f.fill_(std + math.log(-math.expm1(-std)))  # softplus^-1


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
        conv = ConvNet(tuple(shape), heads=1, **{**TABLE2_CONV, **net})
        super().__init__(conv, event_dims=3, alpha=alpha)
