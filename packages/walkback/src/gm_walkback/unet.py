"""A small UNet as the network F of any model's transition operator (``--set operator=unet``).

``UNet(shape)`` maps an image batch and the step index to one image-shaped output per head,
like :class:`~gm_walkback.networks.ConvNet`; the step enters through a sinusoidal embedding
and an MLP that gives every residual block a per-channel scale and shift (FiLM, as in
Ho et al. 2020 / Nichol & Dhariwal 2021). GroupNorm (never batch statistics, so one step
per example is fine), SiLU, one residual block per resolution, stride-2 convs down and
nearest-neighbour upsampling with a conv back up, skip connections by concatenation. The
default ``mults=(1, 2, 2)`` gives three resolutions, 28 -> 14 -> 7 on MNIST, with
``width`` (32 on CPU, 128 on a GPU: :func:`gm_walkback.shared.resolve_widths`) channels at
full resolution.

:class:`UNetOperator` is the registered name: its ``build(config, info)`` puts the UNet
inside the operator each model needs -- walkback's Gaussian (mean and variance heads) or
Bernoulli (logits) operator, NET's reverse (mean and variance), ddpm's reverse (eps / x0
and the variance interpolation v) -- with the same heads and initialisation as that
model's own MLP / conv operator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gm.data import DataInfo
from gm.errors import GMError
from gm_walkback.networks import inverse_softplus


def step_embedding(step, batch: int, dim: int, device: torch.device) -> torch.Tensor:
    """(batch, dim) sinusoidal embedding of the step index (an int, a 0-d or a per-example
    tensor), never reading a tensor index back to the host."""
    t = torch.as_tensor(step, device=device).float().reshape(-1).expand(batch)
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=device) / half)
    args = t[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], 1)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class ResBlock(nn.Module):
    """GN-SiLU-conv, then GN with the step's scale and shift, SiLU, conv; plus the input."""

    def __init__(self, c_in: int, c_out: int, emb: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in, groups), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb, 2 * c_out)
        self.norm2, self.conv2 = _norm(c_out, groups), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        with torch.no_grad():  # start as the identity in the step: scale 1, shift 0
            self.film.weight.zero_()
            self.film.bias.zero_()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, 1)
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        return self.skip(x) + h


class UNet(nn.Module):
    """F(s, step) -> ``heads`` image-shaped outputs (see the module docstring).

    ``conditioned=False`` ignores the step (walkback without per-step parameters)."""

    def __init__(
        self,
        shape: tuple[int, ...],
        *,
        width: int = 32,
        mults: tuple[int, ...] = (1, 2, 2),
        heads: int = 2,
        groups: int = 8,
        conditioned: bool = True,
        init_std: float = 0.1,
    ):
        super().__init__()
        if len(shape) != 3:
            raise GMError("operator 'unet' needs image data (C, H, W); use an MLP operator.")
        c_in = shape[0]
        self.width, self.per_step = width, conditioned  # per_step: F depends on the step
        emb = 4 * width
        self.embed = nn.Sequential(nn.Linear(width, emb), nn.SiLU(), nn.Linear(emb, emb))
        chans = [width * m for m in mults]
        self.inp = nn.Conv2d(c_in, chans[0], 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        prev = chans[0]
        for i, ch in enumerate(chans):
            self.down.append(ResBlock(prev, ch, emb, groups))
            prev = ch
            if i < len(chans) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        self.mid = ResBlock(prev, prev, emb, groups)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(chans))):
            if i < len(chans) - 1:
                self.upsample.append(nn.Conv2d(prev, prev, 3, padding=1))
            self.up.append(ResBlock(prev + chans[i], chans[i], emb, groups))
            prev = chans[i]
        self.out_norm = _norm(prev, groups)
        self.heads = nn.ModuleList(nn.Conv2d(prev, c_in, 3, padding=1) for _ in range(heads))
        if heads >= 2:  # the variance head starts near softplus^-1(init_std) (as MLPNet's)
            with torch.no_grad():
                self.heads[1].get_parameter("weight").mul_(0.1)
                self.heads[1].get_parameter("bias").fill_(inverse_softplus(init_std))

    def forward(self, s: torch.Tensor, step) -> list[torch.Tensor]:
        x = s.to(self.inp.weight.dtype)
        emb = self.embed(step_embedding(step if self.per_step else 0, len(s), self.width, s.device))
        h = self.inp(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid(h, emb)
        for j, block in enumerate(self.up):
            skip = skips.pop()
            if j:  # back up to the skip's resolution (any size, odd ones included)
                h = self.upsample[j - 1](F.interpolate(h, size=skip.shape[-2:], mode="nearest"))
            h = block(torch.cat([h, skip], 1), emb)
        h = F.silu(self.out_norm(h))
        return [head(h) for head in self.heads]


class UNetOperator:
    """The registered "unet": ``build`` wraps a :class:`UNet` in the operator the config's
    model uses (walkback, NET's ``diffusion`` or ``ddpm``), with that model's heads."""

    @classmethod
    def build(cls, cfg, info: DataInfo) -> nn.Module:
        from gm_walkback import ddpm, diffusion, operators, walkback

        shape = tuple(info.shape)
        width = cfg.unet_width or 32  # 0 ("auto") is resolved by the trainer; 32 if built bare
        if isinstance(cfg, walkback.WalkbackConfig):
            conditioned = cfg.per_step_norm  # walkback's switch for step-dependent F
            if walkback.is_binary(info):
                net = UNet(shape, width=width, heads=1, conditioned=conditioned)
                return operators.BernoulliOperator(net, event_dims=len(shape), alpha=cfg.alpha)
            init = operators.uncapped_std(cfg.init_std, cfg.max_std)
            net = UNet(shape, width=width, conditioned=conditioned, init_std=init)
            return operators.GaussianOperator(
                net, event_dims=len(shape), alpha=cfg.alpha, shape=shape, **operators._gaussian(cfg)
            )
        # NET and ddpm: the variance head starts at 0 (softplus^-1(ln 2) = 0), as their MLPs'
        net = UNet(shape, width=width, init_std=math.log(2))
        if isinstance(cfg, diffusion.DiffusionConfig):
            return diffusion.NETReverse(net, diffusion.schedule_betas(cfg), len(shape))
        if isinstance(cfg, ddpm.DDPMConfig):
            return ddpm.DDPMReverse.from_config(net, cfg, shape)
        raise GMError(f"operator 'unet' does not know the config {type(cfg).__name__}.")
