"""The networks F behind the transition operators: an MLP for vectors and the paper's
conv encoder / FC bottleneck / transposed-conv decoder for images, each with separate
heads (mean and variance) and optional per-step normalisation parameters.

Every layer takes the walk-step index ``step`` (an int, a 0-d tensor, or one index per
example). Weights are shared across steps; with ``per_step=True`` each step has its own
normalisation affine (and, for batch norm, its own running statistics), which the paper
found "improves the result considerably". ``basis=J`` ties the per-step affines to J
smooth temporal basis functions over the steps (Sohl-Dickstein et al.'s device for 1000
diffusion steps) instead of one free set per step.
"""

from __future__ import annotations

import contextlib
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Norm = Literal["none", "batch", "layer"]
Activation = Literal["leaky", "relu"]


def inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def take(table: torch.Tensor, idx) -> torch.Tensor:
    """``table[idx]`` for an int, a 0-d or a 1-d index tensor, never reading a tensor index
    back to the host (plain indexing with a 0-d tensor does, which syncs a GPU)."""
    if not torch.is_tensor(idx):
        return table[idx]
    if idx.dim() == 0:
        return table.index_select(0, idx.reshape(1)).squeeze(0)
    return table.index_select(0, idx)


def temporal_bumps(levels: int, basis: int) -> torch.Tensor:
    """(levels, basis) weights of ``basis`` Gaussian bumps spread over the steps, rows summing to 1."""
    centres = torch.linspace(0, levels - 1, basis)
    width = max((levels - 1) / max(basis - 1, 1), 1.0)
    t = torch.arange(levels, dtype=torch.float32)[:, None]
    w = torch.exp(-0.5 * ((t - centres[None]) / width) ** 2)
    return w / w.sum(1, keepdim=True)


class StepNorm(nn.Module):
    """Normalisation (none / batch / layer) followed by an affine chosen by the step index."""

    def __init__(
        self,
        features: int,
        *,
        kind: Norm = "none",
        levels: int = 1,
        per_step: bool = False,
        basis: int = 0,
        momentum: float = 0.1,
        eps: float = 1e-5,
    ):
        super().__init__()
        if kind not in ("none", "batch", "layer"):
            raise ValueError(f"norm must be none, batch or layer, not {kind!r}")
        self.kind, self.levels, self.per_step = kind, levels, per_step
        self.update_stats = True  # False: batch statistics used, running ones left alone
        self.momentum, self.eps = momentum, eps
        self.basis = basis if per_step and basis else 0
        rows = self.basis or (levels if per_step else 1)
        self.weight = nn.Parameter(torch.ones(rows, features))
        self.bias = nn.Parameter(torch.zeros(rows, features))
        if self.basis:
            self.register_buffer("bumps", temporal_bumps(levels, self.basis), persistent=False)
        if kind == "batch":
            stats = levels if per_step else 1
            self.register_buffer("running_mean", torch.zeros(stats, features))
            self.register_buffer("running_var", torch.ones(stats, features))

    def _index(self, step):
        return step if self.per_step else 0

    def _table(self, table: torch.Tensor, idx) -> torch.Tensor:
        if self.basis:
            return take(self.bumps, idx) @ table  # (C,) or (B, C)
        return take(table, idx)

    def forward(self, x: torch.Tensor, step) -> torch.Tensor:
        idx = self._index(step)
        per_example = torch.is_tensor(idx) and idx.dim() == 1
        shape = (-1, x.shape[1]) + (1,) * (x.dim() - 2)  # broadcast (B|1, C) over spatial dims
        if self.kind == "batch":
            if per_example:
                raise ValueError(
                    "batch norm needs one step index per batch, not one per example; "
                    "use norm='layer' or 'none'"
                )
            dims = [0] + list(range(2, x.dim()))
            if self.training:
                xf = x.float()
                mean = xf.mean(dims)
                var = xf.var(dims, unbiased=False)
            if self.training and self.update_stats:
                with torch.no_grad():
                    n = xf.numel() / xf.shape[1]
                    m = self.momentum
                    new_mean = (1 - m) * take(self.running_mean, idx) + m * mean
                    new_var = (1 - m) * take(self.running_var, idx) + m * var * n / max(n - 1, 1)
                    if torch.is_tensor(idx):  # a device index: write without reading it back
                        self.running_mean.index_copy_(0, idx.reshape(1), new_mean[None])
                        self.running_var.index_copy_(0, idx.reshape(1), new_var[None])
                    else:
                        self.running_mean[idx] = new_mean
                        self.running_var[idx] = new_var
            if not self.training:
                mean, var = take(self.running_mean, idx), take(self.running_var, idx)
            x = (x - mean.view(1, -1, *[1] * (x.dim() - 2)).to(x.dtype)) * torch.rsqrt(
                var.view(1, -1, *[1] * (x.dim() - 2)) + self.eps
            ).to(x.dtype)
        elif self.kind == "layer":
            x = F.layer_norm(x, x.shape[1:], eps=self.eps)
        w = self._table(self.weight, idx).reshape(shape)
        b = self._table(self.bias, idx).reshape(shape)
        return x * w + b


@contextlib.contextmanager
def frozen_stats(module: nn.Module):
    """Batch norm normalises with batch statistics but leaves its running statistics alone
    (walkback's no-grad forward-sampling pass: only the trained walk-back pass, the states
    the operator learns from, updates them)."""
    norms = [m for m in module.modules() if isinstance(m, StepNorm)]
    for m in norms:
        m.update_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.update_stats = True


class LinearNet(nn.Module):
    """F_mu(s) = w * s + c and a constant F_sigma, elementwise: with the Gaussian operator,
    p_T(s'|s) = N(a s + b, T v) with a = (1 - alpha) + alpha w, b = alpha c, v = (softplus(f)
    + min_std)^2. Every term of the bound (Eq. 5), the likelihood (Eq. 10) and the
    reversibility measure then has a closed form, so the shipped estimators are checked
    against known answers through this real, trainable operator."""

    def __init__(self, dim: int, *, init_std: float = 0.1):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.c = nn.Parameter(torch.zeros(()))
        self.f = nn.Parameter(torch.full((), inverse_softplus(init_std)))

    def forward(self, s: torch.Tensor, step) -> list[torch.Tensor]:
        return [self.w * s + self.c, self.f.expand_as(s)]


# MLPNet and ConvNet take the same per-step keywords (levels, per_step, basis, ...): the
# paper's operator options, spelt out in each constructor on purpose.
class MLPNet(nn.Module):
    """``dim -> hidden x depth -> heads``: leaky-ReLU(0.02) MLP with linear heads (the paper's
    toy net is 2 -> 4096 -> 4096; its MNIST net 784 -> 1200 -> 1200 with batch norm)."""

    # heads, norm, levels, per_step, basis, slope, init_std: deliberately ConvNet's keywords,
    # so an operator or a recipe sets them alike for either network
    def __init__(
        self,
        dim: int,
        *,
        hidden: int = 4096,
        depth: int = 2,
        heads: int = 2,
        norm: Norm = "none",
        levels: int = 1,
        per_step: bool = False,
        basis: int = 0,
        slope: float = 0.02,
        init_std: float = 0.1,
    ):
        super().__init__()
        self.dim, self.slope = dim, slope
        sizes = [dim] + [hidden] * depth
        self.linears = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.norms = nn.ModuleList(
            StepNorm(b, kind=norm, levels=levels, per_step=per_step, basis=basis) for b in sizes[1:]
        )
        self.heads = nn.ModuleList(nn.Linear(sizes[-1], dim) for _ in range(heads))
        _init_variance_head(self.heads, init_std)

    def forward(self, s: torch.Tensor, step) -> list[torch.Tensor]:
        h = s.reshape(len(s), -1)
        for lin, norm in zip(self.linears, self.norms, strict=True):
            h = F.leaky_relu(norm(lin(h), step), self.slope)
        return [head(h).reshape(s.shape) for head in self.heads]


def head_layer(net: nn.Module, i: int) -> nn.Module | None:
    """The last layer of head ``i`` (0: the mean, 1: the variance) of MLPNet, ConvNet or the
    UNet (None for a net without separate heads)."""
    heads = getattr(net, "heads", None)
    if isinstance(heads, nn.ModuleList) and len(heads) > i:
        return heads[i]
    decoders = getattr(net, "decoders", None)
    if isinstance(decoders, nn.ModuleList) and len(decoders) > i:
        return decoders[i][-1]
    return None


def _init_variance_head(heads: nn.ModuleList, init_std: float) -> None:
    """Start the second head (the variance head) near softplus^-1(init_std) everywhere."""
    if len(heads) < 2:
        return
    last = heads[1]
    with torch.no_grad():
        last.weight.mul_(0.1)
        last.bias.fill_(inverse_softplus(init_std))


def _conv_out(size: int, kernel: int, stride: int = 2) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


class ConvNet(nn.Module):
    """The paper's image network (appendix Tables 2-5): 5x5 stride-2 conv encoder, a fully
    connected bottleneck, and one mirrored transposed-conv decoder per head (separate mean
    and variance decoders, as in the authors' CelebA code)."""

    def __init__(
        self,
        shape: tuple[int, int, int],
        *,
        channels: tuple[int, ...] = (64, 128, 256),
        fc_layers: int = 5,
        fc_width: int = 1024,
        heads: int = 2,
        norm: Norm = "batch",
        fc_norm: Norm | None = None,
        fc_activation: Activation = "leaky",
        levels: int = 1,
        per_step: bool = False,
        basis: int = 0,
        kernel: int = 5,
        slope: float = 0.02,
        init_std: float = 0.1,
    ):
        super().__init__()
        c_in, height, width = shape
        self.slope = slope if fc_activation == "leaky" else 0.0  # leaky-ReLU(0) is ReLU
        sizes = [(height, width)]
        for _ in channels:
            sizes.append((_conv_out(sizes[-1][0], kernel), _conv_out(sizes[-1][1], kernel)))
        self.sizes = sizes
        chans = [c_in, *channels]
        self.encoder = nn.ModuleList(
            nn.Conv2d(a, b, kernel, 2, kernel // 2)
            for a, b in zip(chans[:-1], chans[1:], strict=True)
        )
        self.enc_norms = nn.ModuleList(
            StepNorm(b, kind=norm, levels=levels, per_step=per_step, basis=basis) for b in chans[1:]
        )
        flat = chans[-1] * sizes[-1][0] * sizes[-1][1]
        widths = [flat] + [fc_width] * (fc_layers - 1) + [flat]
        self.fc = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        fc_kind = norm if fc_norm is None else fc_norm  # Table 2: batch norm convs, layer norm FC
        self.fc_norms = nn.ModuleList(
            StepNorm(b, kind=fc_kind, levels=levels, per_step=per_step, basis=basis)
            for b in widths[1:]
        )
        self.decoders = nn.ModuleList()
        self.dec_norms = nn.ModuleList()
        for _ in range(heads):
            layers, norms = nn.ModuleList(), nn.ModuleList()
            for i in range(len(channels), 0, -1):
                (h_in, w_in), (h_out, w_out) = sizes[i], sizes[i - 1]
                pad = (
                    h_out - (2 * h_in - 1),
                    w_out - (2 * w_in - 1),
                )  # output_padding for the exact size
                layers.append(
                    nn.ConvTranspose2d(
                        chans[i], chans[i - 1], kernel, 2, kernel // 2, output_padding=pad
                    )
                )
                if i > 1:
                    norms.append(
                        StepNorm(
                            chans[i - 1], kind=norm, levels=levels, per_step=per_step, basis=basis
                        )
                    )
            self.decoders.append(layers)
            self.dec_norms.append(norms)
        if heads >= 2:
            with torch.no_grad():
                self.decoders[1][-1].weight.mul_(0.1)
                self.decoders[1][-1].bias.fill_(inverse_softplus(init_std))

    def forward(self, s: torch.Tensor, step) -> list[torch.Tensor]:
        h = s
        for conv, norm in zip(self.encoder, self.enc_norms, strict=True):
            h = F.relu(norm(conv(h), step))
        shape = h.shape
        h = h.flatten(1)
        for lin, norm in zip(self.fc, self.fc_norms, strict=True):
            h = F.leaky_relu(norm(lin(h), step), self.slope)
        h = h.view(shape)
        outs = []
        for layers, norms in zip(self.decoders, self.dec_norms, strict=True):
            d = h
            for j, deconv in enumerate(layers):
                d = deconv(d)
                if j < len(norms):
                    d = F.relu(norms[j](d, step))
            outs.append(d)
        return outs
