"""The NET baseline (Sohl-Dickstein, Weiss, Maheswaranathan & Ganguli, 2015): a fixed
Gaussian forward diffusion of ``diffusion_steps`` (1000) steps and a learned Gaussian
reverse, with the same network family as walkback.

- Data are standardised by one scalar shift and scale (measured on the first batch and
  kept with the model); log-likelihoods are reported for the original data.
- Forward: ``q(z_t | z_{t-1}) = N(sqrt(1 - beta_t) z_{t-1}, beta_t)`` with NET's baseline
  schedule ``beta_t = 1 / linspace(T, 2, T)_t`` (plus ``step1_beta`` on the first step,
  as NET's code), so that prod(1 - beta_t) ~ 1/T; ``beta_schedule="linear"`` (Ho et al.)
  and ``"cosine"`` (Nichol & Dhariwal) are the alternatives. NET's schedule suits its
  1000 steps; over 30 steps it ends with beta = 1/2 and sends alpha-bar to only ~1/30,
  a schedule that costs about a bit per dimension on MNIST (issue 22), so the
  30-step NET uses the cosine schedule (``beta_schedule="net"`` keeps the old one).
  (NET also learns a perturbation of the baseline betas; here they are fixed.)
- Reverse: NET's parameterisation, ``mean = z_t sqrt(1 - beta_t) + F_mu(z_t, t) sqrt(beta_t)``,
  ``var = sigmoid(F_sigma(z_t, t) / sqrt(T) + logit(beta_t))``; F knows t through per-step
  normalisation affines tied to ``step_basis`` temporal basis functions (NET's device).
- Training maximises the bound through its closed-form KL terms, one uniformly drawn
  step per example: ``T * E_t[KL(q(z_{t-1}|z_t, z_0) || p(z_{t-1}|z_t))]``, and
  ``-log p(z_0|z_1)`` for t = 1.

The reverse is a registered transition operator (``--set operator=NAME``; default "net",
NET's reverse around the ``network`` config's net: "net-mlp" or "net-conv"). The trainer
keeps the forward diffusion itself, so any operator whose ``distribution(z_t, 1.0, t - 1)``
is p(z_{t-1} | z_t) trains here; a reverse that is not Gaussian gets a one-draw estimate of
the KL term (z_{t-1} drawn from the posterior) instead of the closed form.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import distributions as D
from torch import nn

from gm import plugins
from gm.config import TrainConfig
from gm.data import DataInfo, Dataset
from gm.errors import GMError
from gm.trainer import Trainer
from gm_walkback import chains, figures, schedules, shared
from gm_walkback.networks import ConvNet, MLPNet, take

if TYPE_CHECKING:  # ddpm imports this module
    from gm_walkback.ddpm import DDPMConfig


@dataclasses.dataclass
class DiffusionConfig(TrainConfig):
    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    log_every: int = 100
    checkpoint_every: int = 1000
    clip: float = 0.0
    diffusion_steps: int = 1000
    beta_schedule: Literal["net", "linear", "cosine", "auto"] = "auto"  # auto: NET's for
    # more than COSINE_BELOW steps, else cosine
    step1_beta: float = 1e-3  # added to beta_1 (NET's code)
    beta_start: float = 1e-4  # linear schedule
    beta_end: float = 0.02  # linear schedule
    # the learned reverse: a registered transition operator, or "net" (NET's reverse around
    # the `network` net: net-mlp or net-conv)
    operator: str = "net"
    network: Literal["mlp", "conv"] = "mlp"
    hidden: int = 0  # 0: 4096 on a GPU, 256 on CPU-only runs (as walkback)
    unet_width: int = 0  # operator=unet's base width; 0: 128 on a GPU, 32 on CPU-only runs
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
    trajectories: int = shared.EVALUATE_TRAJECTORIES  # as walkback's (shared.EVALUATE_HINT)
    examples: int = shared.EVALUATE_EXAMPLES
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


def cosine_betas(steps: int, offset: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule: alpha-bar(t) = f(t) / f(0) with
    f(t) = cos^2((t / T + offset) / (1 + offset) * pi / 2), beta_t = 1 - alpha-bar(t) /
    alpha-bar(t - 1) clipped at ``max_beta`` (float64)."""
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


COSINE_BELOW = 100  # beta_schedule="auto": the cosine schedule for fewer steps than this


def beta_schedule(cfg: DiffusionConfig) -> str:
    """The schedule a config runs ("auto" resolved by the number of steps)."""
    if cfg.beta_schedule != "auto":
        return cfg.beta_schedule
    return "cosine" if cfg.diffusion_steps < COSINE_BELOW else "net"


def schedule_betas(cfg: DiffusionConfig) -> torch.Tensor:
    """beta_1..beta_T (float64) of a config's forward diffusion."""
    name = beta_schedule(cfg)
    if name == "net":
        return net_betas(cfg.diffusion_steps, cfg.step1_beta)
    if name == "cosine":
        return cosine_betas(cfg.diffusion_steps)
    return torch.linspace(cfg.beta_start, cfg.beta_end, cfg.diffusion_steps, dtype=torch.float64)


def alpha_bars(betas: torch.Tensor) -> torch.Tensor:
    """prod_{s <= t} (1 - beta_s), in float32 (from the float64 betas)."""
    return torch.cumprod(1 - betas, 0).float()


def at(table: torch.Tensor, step, like: torch.Tensor) -> torch.Tensor:
    """``table[step]`` shaped to broadcast over ``like`` (one step, or one per example)."""
    v = take(table, step)
    return v.view(-1, *[1] * (like.dim() - 1)) if v.dim() == 1 else v


def reverse_network(
    network: str, cfg: DiffusionConfig | DDPMConfig, shape: tuple[int, ...]
) -> nn.Module:
    """F of NET's reverse: per-step affines tied to ``step_basis`` temporal basis functions,
    F_sigma starting at 0 (reverse variance = beta_t)."""
    T = cfg.diffusion_steps
    common: dict[str, Any] = {
        "heads": 2,
        "norm": cfg.norm,
        "levels": T,
        "per_step": True,
        "basis": min(cfg.step_basis, T) if cfg.step_basis else 0,
        "init_std": math.log(2),
    }
    if network == "mlp":
        return MLPNet(math.prod(shape), hidden=cfg.hidden, depth=cfg.depth, **common)
    if len(shape) != 3:
        raise GMError("network 'conv' needs image data; use --set network=mlp.")
    assert isinstance(cfg, DiffusionConfig), "ddpm's conv reverse is the UNet (unet.py)"
    return ConvNet(
        shape,
        channels=tuple(cfg.conv_channels),
        fc_layers=cfg.fc_layers,
        fc_width=cfg.fc_width,
        **common,
    )


class NETReverse(nn.Module):
    """The learned reverse of a fixed diffusion, as a transition operator:
    ``distribution(z_t, 1.0, t - 1)`` is p(z_{t-1} | z_t) (``step`` counts from 0)."""

    kind = "gaussian"
    step_dependent = True
    network = "mlp"  # the network ``build`` puts inside (the registered subclasses')

    @classmethod
    def build(cls, cfg: DiffusionConfig, info: DataInfo) -> NETReverse:
        shape = tuple(info.shape)
        return cls(reverse_network(cls.network, cfg, shape), schedule_betas(cfg), len(shape))

    betas: torch.Tensor  # the buffers registered below
    alpha_bar: torch.Tensor

    def __init__(self, net: nn.Module, betas: torch.Tensor, event_dims: int):
        super().__init__()
        self.net, self.event_dims = net, event_dims
        self.register_buffer("betas", betas.float())
        self.register_buffer("alpha_bar", alpha_bars(betas))
        self.coef_scale = 1.0 / math.sqrt(len(betas))

    def heads(self, s: torch.Tensor, step) -> tuple[torch.Tensor, torch.Tensor]:
        f_mu, f_sigma = self.net(s, step)
        beta = at(self.betas, step, s)
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


class NETReverseMLP(NETReverse):
    """NET's reverse around the MLP (registered as "net-mlp")."""

    network = "mlp"


class NETReverseConv(NETReverse):
    """NET's reverse around the paper's conv network (registered as "net-conv")."""

    network = "conv"


def operator_name(cfg: DiffusionConfig) -> str:
    """The registered reverse a config names ("net" + network = "net-mlp" / "net-conv")."""
    return f"net-{cfg.network}" if cfg.operator == "net" else cfg.operator


def posterior_kl(p: D.Distribution, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """KL(q || p) per example, q = N(mean, var) the forward posterior q(z_{t-1} | z_t, z_0):
    in closed form where p is a factorised Gaussian; else log q(z) - log p(z) at one draw
    z ~ q, an unbiased estimate (any reverse a plugin registers)."""
    if isinstance(p, D.Independent) and isinstance(p.base_dist, D.Normal):
        loc, std = p.base_dist.loc, p.base_dist.scale
        per = std.log() - 0.5 * var.log() + (var + (mean - loc) ** 2) / (2 * std**2) - 0.5
        return per.flatten(1).sum(1)
    q = D.Independent(D.Normal(mean, var.sqrt(), validate_args=False), mean.dim() - 1)
    z = q.sample()
    return q.log_prob(z) - p.log_prob(z)


class Standardizer(nn.Module):
    shift: torch.Tensor  # the buffers registered below
    scale: torch.Tensor

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))


class StandardizedData:
    """What NET and ddpm share on the data side: dequantised images (VW's convention) and
    the per-dimension standardisation their diffusions run in (``self.standard``)."""

    device: torch.device
    info: Any
    config: Any
    standard: Standardizer

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(self.device).float()
        if self.info.modality == "image" and self.config.dequantize:
            x = shared.dequantise(x)
        return x

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.standard.shift) / self.standard.scale

    def unstandardize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.standard.scale + self.standard.shift


class DiffusionTrainer(StandardizedData, Trainer):
    """NET: a fixed forward diffusion and a learned Gaussian reverse, trained on the bound."""

    Config = DiffusionConfig
    SampleOptions = DiffusionSampleOptions
    EvaluateOptions = DiffusionEvaluateOptions
    name = "diffusion"
    config: DiffusionConfig
    EVALUATE_HINT = shared.EVALUATE_HINT

    def metric_notes(self, metrics: dict[str, float]) -> dict[str, str]:
        return shared.likelihood_notes(metrics, self.info.modality == "image")

    @classmethod
    def resolve_config(cls, config, info: DataInfo, device: torch.device) -> DiffusionConfig:
        return shared.resolve_widths(config, device)  # hidden=0, unet_width=0: the device's

    @classmethod
    def default_config(cls, info: DataInfo) -> DiffusionConfig:
        if info.modality == "vector":
            return DiffusionConfig()
        if info.modality != "image":
            raise GMError(f"diffusion models vector or image data, not {info.modality} data.")
        base: dict[str, Any] = {
            "lr": 1e-4,
            "batch_size": 100,
            "steps": 100_000,
            "checkpoint_every": 2000,
        }
        if info.shape[1] * info.shape[2] <= 16 * 16:
            return DiffusionConfig(network="mlp", hidden=1200, norm="layer", **base)
        channels = (16, 32) if info.shape == (1, 28, 28) else (64, 128, 256)
        return DiffusionConfig(network="conv", conv_channels=channels, norm="layer", **base)

    def __init__(self, config: DiffusionConfig, info: DataInfo, device="cpu"):
        super().__init__(config, info, device)
        if info.modality not in ("vector", "image"):
            raise GMError(f"diffusion models vector or image data, not {info.modality} data.")
        if config.diffusion_steps < 1:
            raise GMError("diffusion_steps must be at least 1.")
        if config.network == "conv" and info.modality != "image":
            raise GMError("network 'conv' needs image data; use --set network=mlp.")
        self.shape = tuple(info.shape)
        # the fixed forward diffusion (from the config: nothing of it is learned or saved here)
        betas = schedule_betas(config)
        self.betas = betas.float().to(self.device)
        self.alpha_bar = alpha_bars(betas).to(self.device)
        op = plugins.component("transition_operators", operator_name(config))
        self.model = op.build(config, info).to(self.device)
        self.standard = Standardizer().to(self.device)
        self.opt = self.adam(self.model.parameters())

    def modules(self) -> dict[str, nn.Module]:
        return {"reverse": self.model, "standard": self.standard}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"reverse": self.opt}

    def compile(self) -> None:
        getattr(self.model, "net", self.model).compile()

    def forward_step(self, t: int, z: torch.Tensor) -> D.Distribution:
        """q(z_t | z_{t-1}) for t = 1..T."""
        beta = self.betas[t - 1]
        return D.Independent(
            D.Normal(z * (1 - beta).sqrt(), beta.sqrt().expand_as(z), validate_args=False),
            len(self.shape),
            validate_args=False,
        )

    def training_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.prepare(batch)
        if self.step == 0:
            with torch.no_grad():
                self.standard.shift.copy_(x.mean())
                self.standard.scale.copy_(x.std().clamp_min(1e-6))
        T = self.config.diffusion_steps
        z0 = self.standardize(x)
        t = torch.randint(0, T, (len(x),), device=self.device)  # 0-based: the step is t + 1
        ab = at(self.alpha_bar, t, z0)
        zt = ab.sqrt() * z0 + (1 - ab).sqrt() * torch.randn_like(z0)
        p = self.model.distribution(zt, 1.0, t)
        ab_prev = at(torch.cat([self.alpha_bar.new_ones(1), self.alpha_bar[:-1]]), t, z0)
        beta = at(self.betas, t, z0)
        post_mean = (ab_prev.sqrt() * beta * z0 + (1 - beta).sqrt() * (1 - ab_prev) * zt) / (1 - ab)
        post_var = ((1 - ab_prev) * beta / (1 - ab)).clamp_min(1e-20)
        term = torch.where(t == 0, -p.log_prob(z0), posterior_kl(p, post_mean, post_var))
        loss = T * term.mean()
        self.optimizer_step(loss, self.opt, clip=self.config.clip or None)
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
        z, frames = shared.sample_chain(
            self.model, z, walk, every=options.chain_every, mean=options.mean
        )
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
        x = shared.evaluation_batch(self, data, split, options)
        T, m = self.config.diffusion_steps, self.model
        dims = math.prod(self.shape)
        jacobian = -dims * self.standard.scale.log().item()

        def prior(z: torch.Tensor) -> torch.Tensor:
            return D.Normal(0.0, 1.0).log_prob(z).flatten(1).sum(1)

        def reverse(t: int, z: torch.Tensor) -> D.Distribution:
            return m.distribution(z, 1.0, t - 1)

        def weights(xs: torch.Tensor) -> torch.Tensor:  # each trajectory dequantised afresh
            z = self.standardize(self.prepare(xs))
            return chains.log_weights(z, T, self.forward_step, reverse, prior)

        with torch.no_grad():
            ll, bound = chains.importance_log_likelihood(
                weights, x, options.trajectories, options.chunk
            )
            image = self.info.modality == "image"
            out = shared.likelihood_metrics(
                ll.mean().item() + jacobian,
                bound.mean().item() + jacobian,
                trajectories=options.trajectories,
                examples=len(x),
                walk_steps=T,
                image_dims=dims if image else None,
                cell=shared.cell_nats(self.shape) if image else 0.0,
            )
            if self.info.modality == "vector":
                out["energy_distance"] = shared.sample_energy_distance(
                    self, data, split, options.samples
                )
        return out
