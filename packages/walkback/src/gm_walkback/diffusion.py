"""The NET baseline (Sohl-Dickstein, Weiss, Maheswaranathan & Ganguli, 2015): a fixed
Gaussian forward diffusion of ``diffusion_steps`` (1000) steps and a learned Gaussian
reverse, with the same network family as walkback.

- Data are standardised by one scalar shift and scale (measured on the first batch and
  kept with the model); log-likelihoods are reported for the original data.
- Forward: ``q(z_t | z_{t-1}) = N(sqrt(1 - beta_t) z_{t-1}, beta_t)`` with NET's baseline
  schedule ``beta_t = 1 / linspace(T, 2, T)_t`` (plus ``step1_beta`` on the first step),
  so that prod(1 - beta_t) ~ 1/T; ``beta_schedule="linear"`` is the alternative.
- Reverse: NET's parameterisation, ``mean = z_t sqrt(1 - beta_t) + F_mu(z_t, t) sqrt(beta_t)``,
  ``var = sigmoid(F_sigma(z_t, t) / sqrt(T) + logit(beta_t))``; F knows t through per-step
  normalisation affines tied to ``step_basis`` temporal basis functions (NET's device).
- Training maximises the bound through its closed-form KL terms, one uniformly drawn
  step per example: ``T * E_t[KL(q(z_{t-1}|z_t, z_0) || p(z_{t-1}|z_t))]``, and
  ``-log p(z_0|z_1)`` for t = 1.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Literal

import torch
from torch import distributions as D
from torch import nn

from gm.config import TrainConfig
from gm.data import DataInfo, Dataset
from gm.errors import GMError
from gm.trainer import Trainer
from gm_walkback import chains, figures, schedules
from gm_walkback.networks import ConvNet, MLPNet, take
from gm_walkback.walkback import CPU_HIDDEN, GPU_HIDDEN, evaluation_batch


@dataclasses.dataclass
class DiffusionConfig(TrainConfig):
    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    log_every: int = 100
    checkpoint_every: int = 1000
    clip: float = 0.0
    diffusion_steps: int = 1000
    beta_schedule: Literal["net", "linear"] = "net"
    step1_beta: float = 1e-3  # added to beta_1 (NET's code)
    beta_start: float = 1e-4  # linear schedule
    beta_end: float = 0.02  # linear schedule
    network: Literal["mlp", "conv"] = "mlp"
    hidden: int = 0  # 0: 4096 on a GPU, 256 on CPU-only runs (as walkback)
    depth: int = 2
    conv_channels: tuple[int, ...] = (64, 128, 256)
    fc_layers: int = 5
    fc_width: int = 1024
    norm: Literal["none", "layer"] = "none"  # batch norm cannot take one step per example
    step_basis: int = 10  # temporal basis functions over the steps (0: one affine per step)
    dequantize: bool = True


@dataclasses.dataclass
class DiffusionSampleOptions:
    steps: int = 0  # must be 0 or diffusion_steps: a diffusion runs its whole reverse chain
    extra_steps: int = 0  # not defined for a diffusion; must be 0
    chain_every: int = 0
    mean: bool = False  # the last reverse step's mean instead of a draw


@dataclasses.dataclass
class DiffusionEvaluateOptions:
    trajectories: int = 100
    examples: int = 1000
    chunk: int = 8192
    samples: int = 2000


def net_betas(steps: int, step1_beta: float = 1e-3) -> torch.Tensor:
    """NET's baseline schedule: beta_t = 1 / linspace(T, 2, T)_t, beta_1 += step1_beta."""
    betas = (
        1.0 / torch.linspace(steps, 2.0, steps, dtype=torch.float64)
        if steps > 1
        else torch.full((1,), 0.5, dtype=torch.float64)
    )
    betas[0] += step1_beta
    return betas.clamp(1e-6, 0.999)


class NETReverse(nn.Module):
    """The learned reverse of a fixed diffusion, as a transition operator:
    ``distribution(z_t, 1.0, t - 1)`` is p(z_{t-1} | z_t) (``step`` counts from 0)."""

    kind = "gaussian"
    step_dependent = True

    def __init__(self, net: nn.Module, betas: torch.Tensor, event_dims: int):
        super().__init__()
        self.net, self.event_dims = net, event_dims
        self.register_buffer("betas", betas.float())
        self.register_buffer("alpha_bar", torch.cumprod(1 - betas, 0).float())
        self.coef_scale = 1.0 / math.sqrt(len(betas))

    def _at(self, table: torch.Tensor, step, like: torch.Tensor) -> torch.Tensor:
        v = take(table, step)
        return v.view(-1, *[1] * (like.dim() - 1)) if v.dim() == 1 else v

    def heads(self, s: torch.Tensor, step) -> tuple[torch.Tensor, torch.Tensor]:
        f_mu, f_sigma = self.net(s, step)
        beta = self._at(self.betas, step, s)
        mean = s.float() * (1 - beta).sqrt() + f_mu.float() * beta.sqrt()
        # NET's code: the variance coefficient is scaled by 1/sqrt(T) before the sigmoid
        # (a perturbation of logit(beta_t) that stays small for long trajectories)
        var = torch.sigmoid(
            f_sigma.float() * self.coef_scale + torch.log(beta) - torch.log1p(-beta)
        )
        return mean, var.sqrt()

    def from_heads(self, heads, temperature=1.0) -> D.Distribution:
        mean, std = heads
        return D.Independent(
            D.Normal(mean, std, validate_args=False), self.event_dims, validate_args=False
        )

    def distribution(self, s: torch.Tensor, temperature, step) -> D.Distribution:
        return self.from_heads(self.heads(s, step))

    def forward_step(self, t: int, z: torch.Tensor) -> D.Distribution:
        """q(z_t | z_{t-1}) for t = 1..T."""
        beta = self.betas[t - 1]
        return D.Independent(
            D.Normal(z * (1 - beta).sqrt(), beta.sqrt().expand_as(z), validate_args=False),
            self.event_dims,
            validate_args=False,
        )


class Standardizer(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))


class DiffusionTrainer(Trainer):
    """NET: a fixed forward diffusion and a learned Gaussian reverse, trained on the bound."""

    Config = DiffusionConfig
    SampleOptions = DiffusionSampleOptions
    EvaluateOptions = DiffusionEvaluateOptions
    name = "diffusion"

    @classmethod
    def default_config(cls, info: DataInfo) -> DiffusionConfig:
        if info.modality == "vector":
            return DiffusionConfig()
        if info.modality != "image":
            raise GMError(f"diffusion models vector or image data, not {info.modality} data.")
        base = {"lr": 1e-4, "batch_size": 100, "steps": 100_000, "checkpoint_every": 2000}
        if info.shape[1] * info.shape[2] <= 16 * 16:
            return DiffusionConfig(network="mlp", hidden=1200, norm="layer", **base)
        channels = (16, 32) if info.shape == (1, 28, 28) else (64, 128, 256)
        return DiffusionConfig(network="conv", conv_channels=channels, norm="layer", **base)

    def __init__(self, config: DiffusionConfig, info: DataInfo, device="cpu"):
        super().__init__(config, info, device)
        if info.modality not in ("vector", "image"):
            raise GMError(f"diffusion models vector or image data, not {info.modality} data.")
        if config.hidden == 0:
            config = self.config = dataclasses.replace(
                config, hidden=GPU_HIDDEN if self.device.type == "cuda" else CPU_HIDDEN
            )
        if config.diffusion_steps < 1:
            raise GMError("diffusion_steps must be at least 1.")
        self.shape = tuple(info.shape)
        T = config.diffusion_steps
        if config.beta_schedule == "net":
            betas = net_betas(T, config.step1_beta)
        else:
            betas = torch.linspace(config.beta_start, config.beta_end, T, dtype=torch.float64)
        common = {
            "heads": 2,
            "norm": config.norm,
            "levels": T,
            "per_step": True,
            "basis": min(config.step_basis, T) if config.step_basis else 0,
            "init_std": math.log(2),
        }  # F_sigma starts at 0: reverse variance = beta_t
        if config.network == "conv":
            if info.modality != "image":
                raise GMError("network 'conv' needs image data; use --set network=mlp.")
            net = ConvNet(
                self.shape,
                channels=tuple(config.conv_channels),
                fc_layers=config.fc_layers,
                fc_width=config.fc_width,
                **common,
            )
        else:
            net = MLPNet(math.prod(self.shape), hidden=config.hidden, depth=config.depth, **common)
        self.model = NETReverse(net, betas, len(self.shape)).to(self.device)
        self.standard = Standardizer().to(self.device)
        self.opt = self.adam(self.model.parameters())
        self.updates = 0

    def modules(self) -> dict[str, nn.Module]:
        return {"reverse": self.model, "standard": self.standard}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"reverse": self.opt}

    def extra_state(self) -> dict[str, Any]:
        return {"updates": self.updates}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.updates = int(state.get("updates", 0))

    def compile(self) -> None:
        self.model.net.compile()

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(self.device).float()
        if self.info.modality == "image" and self.config.dequantize:
            x = (torch.round(x * 255) + torch.rand_like(x)) / 256
        return x

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.standard.shift) / self.standard.scale

    def unstandardize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.standard.scale + self.standard.shift

    def training_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.prepare(batch)
        if self.updates == 0:
            with torch.no_grad():
                self.standard.shift.copy_(x.mean())
                self.standard.scale.copy_(x.std().clamp_min(1e-6))
        m, T = self.model, self.config.diffusion_steps
        z0 = self.standardize(x)
        t = torch.randint(0, T, (len(x),), device=self.device)  # 0-based: the step is t + 1
        ab = m._at(m.alpha_bar, t, z0)
        zt = ab.sqrt() * z0 + (1 - ab).sqrt() * torch.randn_like(z0)
        p = m.distribution(zt, 1.0, t)
        ab_prev = m._at(torch.cat([m.alpha_bar.new_ones(1), m.alpha_bar[:-1]]), t, z0)
        beta = m._at(m.betas, t, z0)
        post_mean = (ab_prev.sqrt() * beta * z0 + (1 - beta).sqrt() * (1 - ab_prev) * zt) / (1 - ab)
        post_var = ((1 - ab_prev) * beta / (1 - ab)).clamp_min(1e-20)
        mean, std = p.base_dist.loc, p.base_dist.scale
        kl = (
            (
                std.log()
                - 0.5 * post_var.log()
                + (post_var + (post_mean - mean) ** 2) / (2 * std**2)
                - 0.5
            )
            .flatten(1)
            .sum(1)
        )
        term = torch.where(t == 0, -p.log_prob(z0), kl)
        loss = T * term.mean()
        self.optimizer_step(loss, self.opt, clip=self.config.clip or None)
        self.updates += 1
        return {"loss": loss.detach()}

    # --- generation --------------------------------------------------------------------
    def generation_walk(self, steps: int = 0, extra_steps: int = 0) -> schedules.Walk:
        T = self.config.diffusion_steps
        if steps not in (0, T):
            raise GMError(
                f"a diffusion runs all its {T} reverse steps; leave --steps out "
                "(train with --set diffusion_steps=K for a K-step model)."
            )
        if extra_steps:
            raise GMError("extra steps at T = 1 are a walkback notion; a diffusion has none.")
        return schedules.Walk((1.0,) * T, tuple(range(T - 1, -1, -1)))

    def sample(self, n: int, options: DiffusionSampleOptions):
        walk = self.generation_walk(options.steps, options.extra_steps)
        z = torch.randn(n, *self.shape, device=self.device)
        if options.mean:
            z, frames = chains.run_chain(
                self.model, z, walk.prefix(len(walk) - 1), every=options.chain_every
            )
            z = self.model.distribution(z, 1.0, 0).mean
            frames = frames + [z] if options.chain_every else frames
        else:
            z, frames = chains.run_chain(self.model, z, walk, every=options.chain_every)
        post = (
            (lambda v: self.unstandardize(v).clamp(0, 1))
            if self.info.modality == "image"
            else self.unstandardize
        )
        if options.chain_every:
            return post(z), post(torch.stack(frames))
        return post(z)

    def write_samples(self, samples: Any, path: Path, options: Any) -> None:
        figures.write(samples, Path(path), self.info, getattr(options, "chain_every", 0) or 1)

    # --- evaluation --------------------------------------------------------------------
    def evaluate(
        self, data: Dataset, split: str, options: DiffusionEvaluateOptions
    ) -> dict[str, float]:
        x = evaluation_batch(self, data, split, options)
        T, m = self.config.diffusion_steps, self.model
        dims = math.prod(self.shape)
        jacobian = -dims * self.standard.scale.log().item()

        def prior(z: torch.Tensor) -> torch.Tensor:
            return D.Normal(0.0, 1.0).log_prob(z).flatten(1).sum(1)

        def reverse(t: int, z: torch.Tensor) -> D.Distribution:
            return m.distribution(z, 1.0, t - 1)

        def weights(xs: torch.Tensor) -> torch.Tensor:  # each trajectory dequantised afresh
            z = self.standardize(self.prepare(xs))
            return chains.log_weights(z, T, m.forward_step, reverse, prior)

        with torch.no_grad():
            ll, bound = chains.importance_log_likelihood(
                weights, x, options.trajectories, options.chunk
            )
            out = {
                "lower_bound": bound.mean().item() + jacobian,
                "log_likelihood": ll.mean().item() + jacobian,
                "trajectories": float(options.trajectories),
                "examples": float(len(x)),
                "walk_steps": float(T),
            }
            if self.info.modality == "image":
                shift = dims * math.log(256)
                out["bits_per_dim"] = -(out["log_likelihood"] - shift) / (dims * math.log(2))
                out["bound_bits_per_dim"] = -(out["lower_bound"] - shift) / (dims * math.log(2))
            if self.info.modality == "vector":
                gen = self.sample(options.samples, DiffusionSampleOptions())
                ref = data.tensor(split, self.device)[: options.samples]
                out["energy_distance"] = chains.energy_distance(gen, ref)
        return out
