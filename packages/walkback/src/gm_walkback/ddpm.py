"""``ddpm``: the diffusion model a user would pick today, as a baseline for walkback and NET.

Ho, Jain & Abbeel 2020 (DDPM) with Nichol & Dhariwal 2021 (improved DDPM):

- Forward: ``q(z_t | z_0) = N(sqrt(abar_t) z_0, 1 - abar_t)`` on the cosine schedule
  ``abar_t = f(t) / f(0)``, ``f(t) = cos(((t / T + s) / (1 + s)) pi / 2)^2``, s = 0.008,
  ``beta_t = min(1 - abar_t / abar_{t-1}, 0.999)``; data standardised by one scalar shift
  and scale measured on the first batch (as NET), so unit variance.
- Reverse: ``p(z_{t-1} | z_t) = N(mu, Sigma)`` with ``mu`` the forward posterior mean at the
  predicted ``x0``, from the network's first head: ``predict="eps"`` (Ho et al.:
  ``x0 = (z_t - sqrt(1 - abar) F) / sqrt(abar)``) or ``predict="x0"`` with an analytic
  skip: ``x0 = E_G[z_0 | z_t] + sd_G[z_0 | z_t] F``, the posterior mean and std of z_0 were
  the data a diagonal Gaussian G with the per-dimension mean and variance of the training
  data (accumulated over every batch seen, saved with the model). F = 0 is then G's exact
  reverse, and F learns what G misses. (With mean 0 and variance 1 this is
  ``sqrt(abar) z_t + sqrt(1 - abar) F``, v-prediction; that scalar skip leaves an MLP to
  carry every pixel through its hidden layer, which a 256-wide one cannot: on MNIST it
  stayed at 7.95 bits/dim after 500 updates);
  ``log Sigma = v log beta_t + (1 - v) log beta~_t`` with ``v = (F_v + 1) / 2`` from the
  second head (Nichol & Dhariwal's learned interpolation; beta~_1 clipped to beta~_2).
- Loss: the hybrid ``L_simple + lambda L_vlb`` (lambda = 0.001), ``L_simple`` the mean
  squared error of the first head against its target, ``L_vlb`` estimated at one uniform t
  as ``T L_t`` in bits per dimension, with the mean stopped (only Sigma learns from it).
- EMA weights (``ema_decay``, warmed up as ``min(decay, (1 + n) / (10 + n))``) sample and
  evaluate; both sets are saved.
- Evaluation: the ELBO, every term in closed form at one draw of z_t per term (Ho et al.'s
  estimator), ``-log p(z_0|z_1)`` a continuous Gaussian on the dequantised data, in
  bits/dim by walkback's convention (:mod:`gm_walkback.shared`).
- Sampling with fewer steps than trained (``gm sample RUN --steps K``): K evenly strided
  timesteps S and their respaced betas ``1 - abar_{S_i} / abar_{S_{i-1}}`` (Nichol &
  Dhariwal section 4), the network called at the original timesteps.

The reverse is a registered transition operator (``--set operator=NAME``, default "ddpm-mlp",
the MLP the other models use with per-step affines over ``step_basis`` temporal basis
functions; "unet" for the UNet), whose ``distribution(z_t, 1.0, t - 1)`` is p(z_{t-1}|z_t).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import distributions as D
from torch import nn

from gm import plugins
from gm.config import Range, TrainConfig
from gm.data import DataInfo, Dataset
from gm.errors import GMError
from gm.trainer import Trainer
from gm_walkback import figures, schedules, shared
from gm_walkback.diffusion import (
    StandardizedData,
    Standardizer,
    at,
    cosine_betas,
    reverse_network,
)
from gm_walkback.networks import take
from gm_walkback.shared import Moments, fp32_matmul  # noqa: F401 (ddpm.Moments: one copy)


@dataclasses.dataclass
class DDPMConfig(TrainConfig):
    steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    log_every: int = 100
    checkpoint_every: int = 1000
    clip: float = 1.0  # gradient-norm clipping (0: off)
    diffusion_steps: int = 1000
    cosine_s: float = 0.008  # the cosine schedule's offset s
    predict: Literal["x0", "eps"] = "x0"  # x0 with the analytic skip, or Ho et al.'s eps
    # the x0 skip's Gaussian: full covariance (auto: up to FULL_SKIP_DIMS dimensions),
    # diagonal, or none (mean 0, variance 1: v-prediction)
    skip: Literal["auto", "full", "diagonal", "none"] = "auto"
    vlb_weight: float = 0.001  # lambda of the hybrid loss
    ema_decay: float = 0.999
    # the reverse: a registered transition operator ("ddpm-mlp", "unet", ...)
    operator: str = "ddpm-mlp"
    hidden: int = 0  # MLP width; 0: 4096 on a GPU, 256 on CPU-only runs (as walkback)
    depth: int = 2
    norm: Literal["none", "layer"] = "none"
    step_basis: int = 10  # the MLP's temporal basis functions over the steps (0: one per step)
    unet_width: int = 0  # operator=unet's base width; 0: 128 on a GPU, 32 on CPU-only runs
    dequantize: bool = True

    BOUNDS: ClassVar[dict[str, Range]] = {
        "diffusion_steps": Range(1),
        "vlb_weight": Range(0),
        "ema_decay": Range(0, 1),
        "clip": Range(0),
    }


@dataclasses.dataclass
class DDPMSampleOptions:
    steps: int = 0  # reverse steps (0: all diffusion_steps); fewer: evenly strided, respaced
    chain_every: int = 0  # >0: --out shows the chain every k steps
    mean: bool = False  # the last reverse step's mean instead of a draw


@dataclasses.dataclass
class DDPMEvaluateOptions:
    examples: int = 100  # the first N examples of the split (0: all)
    trajectories: int = 1  # ELBO draws (dequantisation and z_t) averaged per example
    chunk: int = 1000  # examples per network call
    samples: int = 2000  # samples for the energy distance (vector data)


FULL_SKIP_DIMS = 4096  # skip="auto" keeps a full covariance up to this many dimensions


def skip_kind(cfg: DDPMConfig, dims: int) -> str:
    if cfg.skip == "auto":
        return "full" if dims <= FULL_SKIP_DIMS else "diagonal"
    return cfg.skip


# --- the schedule ---------------------------------------------------------------------------
def strided(steps: int, k: int) -> torch.Tensor:
    """K evenly spaced 0-based timesteps of a T-step schedule, the first and the last among
    them (Nichol & Dhariwal's respacing of one section)."""
    if not 1 <= k <= steps:
        raise GMError(f"--steps must be between 1 and the model's {steps} diffusion steps.")
    if k == 1:
        return torch.tensor([steps - 1])
    return torch.round(torch.arange(k, dtype=torch.float64) * (steps - 1) / (k - 1)).long()


def respaced_betas(betas: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """The betas whose alpha-bars are the full schedule's at ``timesteps``:
    ``1 - abar_{S_i} / abar_{S_{i-1}}`` with abar_{S_{-1}} = 1."""
    ab = torch.cumprod(1 - betas.double(), 0)[timesteps]
    prev = torch.cat([ab.new_ones(1), ab[:-1]])
    return 1 - ab / prev


class DDPMReverse(nn.Module):
    """p(z_{t-1} | z_t) of a (possibly respaced) K-step schedule around a network F(z, t):
    ``step`` i = 0..K-1 is t = i + 1, and F is called at the original timestep ``timesteps[i]``.
    Every quantity of the posterior and the bound lives here, once."""

    kind = "gaussian"
    step_dependent = True

    @classmethod
    def build(cls, cfg: DDPMConfig, info: DataInfo) -> DDPMReverse:
        """The default reverse: around the MLP the other models use (NET's reverse net)."""
        shape = tuple(info.shape)
        return cls.from_config(reverse_network("mlp", cfg, shape), cfg, shape)

    @classmethod
    def from_config(cls, net: nn.Module, cfg: DDPMConfig, shape: tuple[int, ...]) -> DDPMReverse:
        betas = cosine_betas(cfg.diffusion_steps, cfg.cosine_s)
        skip = skip_kind(cfg, math.prod(shape)) if cfg.predict == "x0" else "none"
        return cls(net, betas, shape, cfg.predict, skip)

    def __init__(
        self,
        net: nn.Module,
        betas: torch.Tensor,
        shape: tuple[int, ...],
        predict: str = "x0",
        skip: str = "diagonal",
        timesteps: torch.Tensor | None = None,
    ):
        super().__init__()
        if predict not in ("x0", "eps"):
            raise GMError(f"predict must be 'x0' or 'eps', not {predict!r}.")
        self.net, self.shape, self.predict = net, tuple(shape), predict
        self.event_dims, self.skip = len(self.shape), skip
        # the skip Gaussian (predict="x0"; set by the trainer): its mean, its variances along
        # its axes, and the axes (full covariance only; else the data's own coordinates)
        dims = math.prod(self.shape)
        self.register_buffer("skip_mean", torch.zeros(self.shape))
        self.register_buffer("skip_var", torch.ones(dims))
        if skip == "full":
            self.register_buffer("skip_axes", torch.eye(dims))
        b = betas.double()
        ab = torch.cumprod(1 - b, 0)
        ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
        post_var = b * (1 - ab_prev) / (1 - ab)
        # log beta~ with beta~_1 = 0 replaced by beta~_2 (improved-diffusion's clipping)
        clipped = torch.cat([post_var[1:2], post_var[1:]]) if len(b) > 1 else b
        tables = {
            "betas": b,
            "alpha_bar": ab,
            "post_var": post_var,
            "log_beta": b.log(),
            "log_post_var": clipped.log(),
            "post_c0": b * ab_prev.sqrt() / (1 - ab),  # posterior mean = c0 x0 + ct z_t
            "post_ct": (1 - ab_prev) * (1 - b).sqrt() / (1 - ab),
        }
        for name, value in tables.items():
            self.register_buffer(name, value.float(), persistent=False)
        heads = getattr(net, "heads", None)
        if isinstance(heads, nn.ModuleList) and len(heads) == 2 and timesteps is None:
            with torch.no_grad():  # start at F = 0, v = 1: the skip Gaussian's exact reverse
                for head, bias in zip(heads, (0.0, 1.0), strict=True):
                    for p in head.parameters():
                        p.zero_()
                    head.bias.fill_(bias)
        if timesteps is None:
            timesteps = torch.arange(len(b))
        self.register_buffer("timesteps", timesteps.long(), persistent=False)

    def respaced(self, k: int) -> DDPMReverse:
        """The same network on K evenly strided steps (K = T: this reverse)."""
        steps = len(self.betas)
        if k in (0, steps):
            return self
        ts = strided(steps, k)
        full = self.betas.double()
        rev = DDPMReverse(
            self.net, respaced_betas(full, ts), self.shape, self.predict, self.skip, ts
        )
        rev = rev.to(full.device)
        for name, value in self.named_buffers():
            if name.startswith("skip_"):
                getattr(rev, name).copy_(value)
        return rev

    # --- the network's outputs -------------------------------------------------------------
    def outputs(self, z: torch.Tensor, step) -> tuple[torch.Tensor, torch.Tensor]:
        """(F, F_v) in float32: the first head (eps or the x0 correction) and v's raw head."""
        f, f_v = self.net(z, take(self.timesteps, step))
        return f.float(), f_v.float()

    # the skip Gaussian G works along its axes, where it is a diagonal Gaussian
    def _rot(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *shape) -> (B, D): coordinates along G's axes."""
        x = x.flatten(1)
        return fp32_matmul(x, self.skip_axes) if self.skip == "full" else x

    def _unrot(self, y: torch.Tensor) -> torch.Tensor:
        y = fp32_matmul(y, self.skip_axes.T) if self.skip == "full" else y
        return y.view(-1, *self.shape)

    def x0(self, z: torch.Tensor, step, f: torch.Tensor) -> torch.Tensor:
        if self.predict == "eps":
            ab = at(self.alpha_bar, step, z)
            return (z - (1 - ab).sqrt() * f) / ab.sqrt()
        y = self._rot(z - at(self.alpha_bar, step, z).sqrt() * self.skip_mean)
        ab, lam = at(self.alpha_bar, step, y), self.skip_var
        denom = ab * lam + 1 - ab
        gain, sd = ab.sqrt() * lam / denom, (lam * (1 - ab) / denom).sqrt()
        return self.skip_mean + self._unrot(gain * y + sd * self._rot(f))

    def target(self, z0: torch.Tensor, noise: torch.Tensor, step) -> torch.Tensor:
        """What F should output at z_t = sqrt(abar) z0 + sqrt(1 - abar) noise (for x0:
        ``(z0 - E_G[z0|z_t]) / sd_G[z0|z_t]`` along G's axes, without the cancellation)."""
        if self.predict == "eps":
            return noise
        y0, n = self._rot(z0 - self.skip_mean), self._rot(noise)
        ab, lam = at(self.alpha_bar, step, y0), self.skip_var
        root = (ab * lam + 1 - ab).sqrt()
        return self._unrot(((1 - ab) / lam).sqrt() / root * y0 - (ab * lam).sqrt() / root * n)

    def posterior(self, z0: torch.Tensor, z: torch.Tensor, step) -> tuple[torch.Tensor, ...]:
        """Mean and variance of q(z_{t-1} | z_t, z_0)."""
        mean = at(self.post_c0, step, z) * z0 + at(self.post_ct, step, z) * z
        return mean, at(self.post_var, step, z).expand_as(z)

    def mean_log_var(
        self, z: torch.Tensor, step, f: torch.Tensor, f_v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """p(z_{t-1} | z_t)'s mean and log-variance from the network's outputs."""
        mean = self.posterior(self.x0(z, step, f), z, step)[0]
        v = (f_v + 1) / 2
        return mean, v * self.log_var_top(z, step) + (1 - v) * at(self.log_post_var, step, z)

    def log_var_top(self, z: torch.Tensor, step) -> torch.Tensor:
        """The upper end (v = 1) of the learned log-variance: log beta_t (Nichol & Dhariwal)
        for eps; for x0 the skip Gaussian's own reverse variance per dimension, beta~_t +
        c0_t^2 Var_G[z_0 | z_t] (the law of total variance), which is beta_t for unit-variance
        data and makes F = 0, v = 1 a diagonal G's exact reverse."""
        if self.predict == "eps":
            return at(self.log_beta, step, z)
        lam = self.skip_var
        ab = at(self.alpha_bar, step, lam[None])
        x0_var = lam * (1 - ab) / (ab * lam + 1 - ab)  # along G's axes
        if self.skip == "full":  # the diagonal of U diag(x0_var) U^T
            x0_var = fp32_matmul(x0_var, self.skip_axes.pow(2).T)
        x0_var = x0_var.view(-1, *self.shape)
        return (at(self.post_var, step, z) + at(self.post_c0, step, z) ** 2 * x0_var).log()

    def sample_z(self, z0: torch.Tensor, noise: torch.Tensor, step) -> torch.Tensor:
        ab = at(self.alpha_bar, step, z0)
        return ab.sqrt() * z0 + (1 - ab).sqrt() * noise

    # --- the transition-operator interface ---------------------------------------------------
    def heads(self, z: torch.Tensor, step) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.mean_log_var(z, step, *self.outputs(z, step))
        return mean, (0.5 * log_var).exp()

    def from_heads(self, heads, temperature=1.0) -> D.Distribution:
        mean, std = heads
        return D.Independent(
            D.Normal(mean, std, validate_args=False), self.event_dims, validate_args=False
        )

    def distribution(self, z: torch.Tensor, temperature, step) -> D.Distribution:
        return self.from_heads(self.heads(z, step))


def gaussian_kl(m1, lv1, m2, lv2) -> torch.Tensor:
    """KL(N(m1, e^lv1) || N(m2, e^lv2)) elementwise."""
    return 0.5 * (lv2 - lv1 + (lv1 - lv2).exp() + (m1 - m2) ** 2 * (-lv2).exp() - 1)


def gaussian_nll(x, mean, log_var) -> torch.Tensor:
    """-log N(x; mean, e^log_var) elementwise."""
    return 0.5 * (math.log(2 * math.pi) + log_var + (x - mean) ** 2 * (-log_var).exp())


def _term(rev, z0, z, step, f, f_v) -> torch.Tensor:
    """L_{t-1} elementwise at z_t (step i = t - 1, an int or one per example): the decoder's
    ``-log p(z_0|z_1)`` at i = 0, else ``KL(q(z_{t-1}|z_t, z_0) || p(z_{t-1}|z_t))``."""
    mean, log_var = rev.mean_log_var(z, step, f, f_v)
    if not torch.is_tensor(step) and step == 0:
        return gaussian_nll(z0, mean, log_var)
    q_mean, q_var = rev.posterior(z0, z, step)
    kl = gaussian_kl(q_mean, q_var.clamp_min(1e-30).log(), mean, log_var)
    if not torch.is_tensor(step):
        return kl
    first = (step == 0).view(-1, *[1] * (z0.dim() - 1))
    return torch.where(first, gaussian_nll(z0, mean, log_var), kl)


def prior_kl(rev: DDPMReverse, z0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(z_T | z_0) || N(0, I)) per example."""
    ab = rev.alpha_bar[-1]
    kl = gaussian_kl(ab.sqrt() * z0, (1 - ab).log(), torch.zeros_like(z0), torch.zeros_like(z0))
    return kl.flatten(1).sum(1)


def negative_bound(rev: DDPMReverse, z0: torch.Tensor) -> torch.Tensor:
    """-ELBO per example in nats: L_T + sum_t L_{t-1}, each term in closed form at its own
    draw of z_t (Ho et al.'s estimator of the bound)."""
    total = prior_kl(rev, z0)
    for i in range(len(rev.betas)):
        z = rev.sample_z(z0, torch.randn_like(z0), i)
        total = total + _term(rev, z0, z, i, *rev.outputs(z, i)).flatten(1).sum(1)
    return total


def hybrid_terms(
    rev: DDPMReverse, z0: torch.Tensor, step: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_simple, L_t) per example: the first head's mean squared error against its target,
    and the bound's term at t in bits per dimension with the mean stopped (Sigma only)."""
    z = rev.sample_z(z0, noise, step)
    f, f_v = rev.outputs(z, step)
    simple = (f - rev.target(z0, noise, step)).pow(2).flatten(1).mean(1)
    vlb = _term(rev, z0, z, step, f.detach(), f_v).flatten(1).mean(1) / math.log(2)
    return simple, vlb


class DDPMTrainer(StandardizedData, Trainer):
    """Improved DDPM: cosine schedule, learned variance by the hybrid loss, EMA weights."""

    Config = DDPMConfig
    SampleOptions = DDPMSampleOptions
    EvaluateOptions = DDPMEvaluateOptions
    name = "ddpm"
    EVALUATE_HINT = (
        "Defaults: one ELBO draw per example on the first 100; the whole split with more "
        "draws: --examples 0 --trajectories 4."
    )

    def metric_notes(self, metrics: dict[str, float]) -> dict[str, str]:
        return shared.likelihood_notes(metrics, self.info.modality == "image")

    @classmethod
    def default_config(cls, info: DataInfo) -> DDPMConfig:
        if info.modality not in ("vector", "image"):
            raise GMError(f"ddpm models vector or image data, not {info.modality} data.")
        if info.modality == "image":
            # 100 steps, as EVALUATION.md's anchor: on mnist-5k they beat 1000 at 500 updates
            # (5.80 against 5.86 bits/dim) and evaluate 10x faster; diffusion_steps=1000 is
            # Ho et al.'s
            return DDPMConfig(steps=2000, checkpoint_every=500, diffusion_steps=100)
        return DDPMConfig()

    def __init__(self, config: DDPMConfig, info: DataInfo, device="cpu"):
        super().__init__(config, info, device)
        if info.modality not in ("vector", "image"):
            raise GMError(f"ddpm models vector or image data, not {info.modality} data.")
        self.config = config = shared.resolve_widths(config, self.device)
        self.shape = tuple(info.shape)
        op = plugins.component("transition_operators", config.operator)
        wrong = GMError(
            f"operator {config.operator!r} is not a ddpm reverse; use --set operator=ddpm-mlp "
            "or operator=unet."
        )
        try:
            model = op.build(config, info)
        except AttributeError:  # another model's operator, reading that model's config
            raise wrong from None
        if not isinstance(model, DDPMReverse):
            raise wrong
        self.model = model.to(self.device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.standard = Standardizer().to(self.device)
        dims, self.skip = math.prod(self.shape), self.model.skip
        self.moments = Moments(dims, self.skip == "full").to(self.device)
        # the full skip: its diagonal until 2 D examples are in, then its eigendecomposition
        self.skip_warmup = shared.skip_warmup(dims, config.batch_size)
        self.opt = self.adam(self.model.parameters())

    def modules(self) -> dict[str, nn.Module]:
        return {
            "reverse": self.model,
            "ema": self.ema,
            "standard": self.standard,
            "moments": self.moments,
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"reverse": self.opt}

    def compile(self) -> None:
        self.model.net.compile()

    def set_skip(self, mean: torch.Tensor, var: torch.Tensor, axes: torch.Tensor | None) -> None:
        """Set the skip Gaussian of the reverse (the EMA copies it with the buffers)."""
        rev = self.model
        rev.skip_mean.copy_(mean.view(self.shape))
        rev.skip_var.copy_(var)
        if rev.skip == "full":
            rev.skip_axes.copy_(torch.eye(len(var), device=var.device) if axes is None else axes)

    def ema_decay(self) -> float:
        """The EMA decay after ``self.step`` updates (warmed up so early weights fade fast)."""
        return min(self.config.ema_decay, (1 + self.step) / (10 + self.step))

    def update_ema(self) -> None:
        d = self.ema_decay()
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                e.lerp_(p, 1 - d)
            for e, b in zip(self.ema.buffers(), self.model.buffers(), strict=True):
                e.copy_(b)

    def training_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.prepare(batch)
        if self.step == 0:
            with torch.no_grad():
                self.standard.shift.copy_(x.mean())
                self.standard.scale.copy_(x.std().clamp_min(1e-6))
        z0 = self.standardize(x)
        if self.skip != "none":  # the skip's Gaussian follows all the data seen so far
            g = shared.follow_data(
                self.moments, z0, self.step, self.skip_warmup, self.skip == "full"
            )
            if g is not None:
                self.set_skip(*g)
        T = self.config.diffusion_steps
        t = torch.randint(0, T, (len(x),), device=self.device)
        simple, vlb = hybrid_terms(self.model, z0, t, torch.randn_like(z0))
        loss = (simple + self.config.vlb_weight * T * vlb).mean()
        self.optimizer_step(loss, self.opt, clip=self.config.clip or None)
        self.update_ema()
        return {"loss": loss.detach(), "mse": simple.mean().detach(), "vlb": vlb.mean().detach()}

    # --- generation --------------------------------------------------------------------
    def sample(self, n: int, options: DDPMSampleOptions):
        if options.chain_every < 0:
            raise GMError("--chain-every must be >= 0.")
        rev = self.ema.respaced(options.steps)
        k = len(rev.betas)
        walk = schedules.Walk((1.0,) * k, tuple(range(k - 1, -1, -1)))
        z = torch.randn(n, *self.shape, device=self.device)
        z, frames = shared.sample_chain(rev, z, walk, every=options.chain_every, mean=options.mean)

        def post(v):
            v = self.unstandardize(v)
            return v.clamp(0, 1) if self.info.modality == "image" else v

        if options.chain_every:
            return post(z), post(torch.stack(frames))
        return post(z)

    def write_samples(self, samples: Any, path: Path, options: Any) -> None:
        figures.write(samples, Path(path), self.info, getattr(options, "chain_every", 0) or 1)

    # --- evaluation --------------------------------------------------------------------
    def evaluate(self, data: Dataset, split: str, options: DDPMEvaluateOptions) -> dict[str, float]:
        """The ELBO (EMA weights) per example, in the data's units, and for images in bits/dim
        ("bound_bits_per_dim": an ELBO bound on ``examples`` images, each dequantised afresh
        per trajectory); for vectors also the energy distance of samples to the split."""
        x = shared.evaluation_batch(self, data, split, options)
        dims = math.prod(self.shape)
        jacobian = -dims * self.standard.scale.log().item()
        bounds = []
        with torch.no_grad():
            rows = x.repeat_interleave(options.trajectories, 0)
            for i in range(0, len(rows), max(1, options.chunk)):
                z0 = self.standardize(self.prepare(rows[i : i + options.chunk]))
                bounds.append(-negative_bound(self.ema, z0))
            bound = torch.cat(bounds).view(len(x), options.trajectories).mean(1) + jacobian
            out = {
                "lower_bound": bound.mean().item(),
                "examples": float(len(x)),
                "trajectories": float(options.trajectories),
                "diffusion_steps": float(self.config.diffusion_steps),
            }
            if self.info.modality == "image":
                cell = shared.cell_nats(self.shape) if self.config.dequantize else 0.0
                out["bound_bits_per_dim"] = shared.bits_per_dim(out["lower_bound"], dims, cell)
            else:
                out["energy_distance"] = shared.sample_energy_distance(
                    self, data, split, options.samples
                )
        return out
