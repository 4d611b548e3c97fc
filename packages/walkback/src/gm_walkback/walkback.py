"""The Variational Walkback trainer (Algorithm 1 of Goyal, Ke, Ganguli & Bengio, NIPS 2017).

Per minibatch x:

1. ``Tmax = sigma_max^2 / sigma^2`` with sigma_max^2 the data variance and sigma^2 the
   operator's noise variance at T = 1 (both running averages, the heat count
   H = ceil(log2 Tmax) re-read every ``tmax_every`` minibatches so the loop never waits
   on the device); draw ``n ~ U{0..N1}``; ``K = H + n``.
2. s_0 = x, T = 1. For t = 1..K: draw ``s_t ~ p_T(.|s_{t-1})`` without gradient; the
   loss is ``-log p_T(s_{t-1} | s_t)`` (the operator applied at s_t must walk back to
   s_{t-1}); one optimiser step per walk step (``update="online"``, the paper's choice)
   or one for the summed loss (``update="batch"``); after the first n steps, T <- 2T.
3. p* is the Gaussian (factorised Bernoulli for binary data) with the running first and
   second moments of s_K.

``schedule="appendix"`` replaces 1-2 by a fixed K = 30 with T_t = factor^(t-1).
``loss="reconstruction"`` is the appendix tables' "reconstruction error as per-step loss"
as the authors' public code computes it (0.5 |s_{t-1} - F(s_{t-1})| summed, F at the same
state, the variance head unused, forward noise scaled by 1e-5); ``recipe=appendix`` uses it.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import distributions as D
from torch import nn

from gm import checkpoint, distributed, plugins
from gm.config import Range, TrainConfig
from gm.data import DataInfo, Dataset
from gm.errors import GMError
from gm.fastpath import Switch
from gm.trainer import Trainer
from gm_walkback import chains, figures, recipes, schedules, shared
from gm_walkback.networks import frozen_stats
from gm_walkback.operators import SKIP_C, AxesNormal, GaussianOperator

FAMILIES = ("gaussian", "bernoulli")  # operator names that leave the network to `network`


@dataclasses.dataclass
class WalkbackConfig(TrainConfig):
    steps: int = 20_000
    batch_size: int = 256
    lr: float = 1e-4  # the paper's Adam rate (1e-3 diverges on the toys)
    log_every: int = 100
    checkpoint_every: int = 1000
    clip: float = 0.0  # gradient-norm clipping per update (0: off)
    # the paper's recipe (gm_walkback.recipes): "algorithm1", "appendix" or "custom"; it
    # fills in schedule, K, heating, loss and the table's architecture unless --set
    recipe: Literal["algorithm1", "appendix", "custom"] = "custom"
    # the transition operator: a registered one (gm_walkback.plugin: gaussian-mlp, ...; or a
    # third party's), or a family, "gaussian" / "bernoulli", whose network is `network`
    # (the recipe's table architecture): operator=gaussian, network=conv is gaussian-conv
    operator: str = "gaussian"
    network: Literal["mlp", "conv", "linear"] = "mlp"  # linear: N(a s + b, T v) (closed forms)
    hidden: int = 0  # MLP width; 0: 4096 (the paper's toy net) on a GPU, 256 on CPU-only runs
    unet_width: int = 0  # operator=unet's base width; 0: 128 on a GPU, 32 on CPU-only runs
    depth: int = 2
    conv_channels: tuple[int, ...] = (64, 128, 256)
    fc_layers: int = 5
    fc_width: int = 1024
    norm: Literal["none", "batch", "layer"] = "none"  # MLP layers; the convs of the conv net
    fc_norm: Literal["same", "none", "batch", "layer"] = "same"  # the conv net's FC layers
    fc_activation: Literal["leaky", "relu"] = "leaky"  # the conv net's FC layers
    per_step_norm: bool = False  # one normalisation affine (and running stats) per walk step
    alpha: float = 0.5
    temperature_scaling: Literal["variance", "std"] = "variance"
    init_std: float = 0.1  # operator noise std at T = 1 when training starts
    min_std: float = 1e-4  # numerical floor added to softplus(F_sigma)
    # the noise at T = 1 (gm_walkback.operators): "network" (F's variance head, per state and
    # step), "learned" (one std per dimension: per-step parameters cannot cancel the
    # heating) or "fixed" (init_std); max_std > 0 caps it (a free T = 1 noise keeps growing)
    noise: Literal["network", "learned", "fixed"] = "network"
    max_std: float = 0.0
    # the skip (gm_walkback.operators): the operator as a residual F on the heated reversible
    # chain of a Gaussian G fitted to the training data ("full" covariance, "diagonal" or
    # "none": the paper's (1 - alpha) s + alpha F(s)); each T = 1 step redraws a fraction
    # skip_c of G's variance, so Tmax = 1 / skip_c
    skip: Literal["none", "diagonal", "full"] = "none"
    skip_c: float = SKIP_C
    # weight averaging: >0 samples and evaluates an exponential moving average of the
    # operator's weights with this decay (0: the trained weights)
    ema: float = 0.0
    # the walk
    schedule: Literal["doubling", "appendix"] = "doubling"
    n_max: int = 5  # N1: n ~ U{0..N1} steps at T = 1 before heating (doubling schedule)
    tmax: float = 0.0  # fixed Tmax; 0: sigma_max^2 / sigma^2 from running estimates
    tmax_every: int = 100  # re-read Tmax every this many minibatches (H never falls)
    max_levels: int = 16  # at most this many heated levels (and per-step parameter sets)
    walk_steps: int = 30  # K of the appendix schedule
    heat_factor: float = math.sqrt(2)  # T_t = factor^t in the appendix schedule
    # the objective
    update: Literal["online", "batch"] = "online"
    loss: Literal["walkback", "reconstruction"] = "walkback"
    reconstruction_noise: float = 1e-5  # forward noise scale of loss="reconstruction"
    # p*: "accumulate" (Algorithm 1: the accumulated moments of every s_K so far) or "ema"
    # (an exponential moving average with stats_decay, which forgets the early walks)
    pstar_stats: Literal["accumulate", "ema"] = "accumulate"
    stats_decay: float = 0.99  # running averages: data and operator variance (and p* if ema)
    dequantize: bool = True  # 8-bit images: (k + U(0,1)) / 256 for the Gaussian operator
    # validation (Algorithm 1: "monitoring L on a validation set"): every validate_every
    # minibatches the bound (Eq. 5) on validate_examples held-out examples (the dataset's
    # "valid" split, else the last ones of "test"); the best weights go to <run>/best
    validate_every: int = 0
    validate_examples: int = 200

    # T_t = heat_factor^t: 0 or less gives no temperature (a NaN loss), so it is refused
    BOUNDS: ClassVar[dict[str, Range]] = {
        "heat_factor": Range(0, open_lo=True),
        "skip_c": Range(0, 1, open_lo=True),
    }


@dataclasses.dataclass
class WalkbackSampleOptions:
    steps: int = 0  # cooling steps (0: the model's whole walk)
    extra_steps: int = 0  # further steps at T = 1 after cooling
    chain_every: int = 0  # >0: --out shows the chain every k steps instead of the final samples
    mean: bool = False  # return the mean of the last step instead of a draw
    # the chain's fast path (chains.FastChain): inference mode and channels-last convs, and
    # torch.compile and a CUDA graph per step on CUDA ("auto"); "on" also compiles on CPU
    # (repaid on chains of thousands of steps: docs/benchmarks.md); "off": the plain eager
    # loop. Same chain as eager for a seed on CPU (to float tolerance).
    fast: Switch = "auto"


@dataclasses.dataclass
class WalkbackEvaluateOptions:
    # M of the importance-sampled log-likelihood (Eq. 10) and the first N examples of the
    # split (0: all): sized for about a minute on a CPU (shared.EVALUATE_HINT: the paper's)
    trajectories: int = shared.EVALUATE_TRAJECTORIES
    examples: int = shared.EVALUATE_EXAMPLES
    chunk: int = 8192  # states per batched network call
    chains: int = 64  # chains for the reversibility measure
    burn_in: int = 50  # steps at T = 1 before measuring reversibility (appendix H: 50)
    chain_steps: int = 200  # steps at T = 1 that are measured (appendix H: 1000)
    samples: int = 2000  # samples for the energy distance (vector data)


class Stats(nn.Module):
    """Running statistics that are part of the model (saved with the weights); ``full``: p*
    has a full covariance (the full skip's walks end correlated as the data are)."""

    def __init__(self, shape: tuple[int, ...], full: bool = False):
        super().__init__()
        self.full = full
        dims = math.prod(shape)
        self.register_buffer("pstar_mean", torch.zeros(shape))
        self.register_buffer("pstar_var", torch.ones(shape))
        self.register_buffer("data_var", torch.ones(()))
        self.register_buffer("noise_var", torch.ones(()))
        self.register_buffer("heat", torch.zeros((), dtype=torch.long))  # H = ceil(log2 Tmax)
        # accumulated first and second moments of s_K and their count (pstar_stats="accumulate")
        self.register_buffer("pstar_sum", torch.zeros(shape, dtype=torch.float64))
        second = (dims, dims) if full else shape
        self.register_buffer("pstar_sum2", torch.zeros(second, dtype=torch.float64))
        self.register_buffer("pstar_count", torch.zeros((), dtype=torch.float64))
        # the seed of the n ~ U{0..N1} sequence, drawn from the run seed (same on every rank)
        self.register_buffer("n_seed", torch.zeros((), dtype=torch.long))


def is_binary(info: DataInfo) -> bool:
    return bool(info.meta.get("binary")) or info.name.startswith("binarized")


def operator_name(cfg: WalkbackConfig) -> str:
    """The registered operator a config names: a family ("gaussian", "bernoulli") with the
    config's ``network`` (gaussian + mlp = "gaussian-mlp"), or the name as given."""
    if cfg.operator not in FAMILIES:
        return cfg.operator
    if cfg.network == "linear" and cfg.operator != "gaussian":
        raise GMError("the linear network is a Gaussian operator; use --set operator=gaussian.")
    return f"{cfg.operator}-{cfg.network}"


def build_operator(cfg: WalkbackConfig, info: DataInfo) -> nn.Module:
    """The operator a config names, from the transition-operator registry (on the CPU)."""
    return plugins.component("transition_operators", operator_name(cfg)).build(cfg, info)


class WalkbackTrainer(Trainer):
    """Variational Walkback: a transition operator trained to walk back its own heated walks."""

    Config = WalkbackConfig
    SampleOptions = WalkbackSampleOptions
    EvaluateOptions = WalkbackEvaluateOptions
    name = "walkback"
    EVALUATE_HINT = (
        shared.EVALUATE_HINT + " Reversibility over appendix H's 1000 steps: --chain-steps 1000."
    )

    def metric_notes(self, metrics: dict[str, float]) -> dict[str, str]:
        return shared.likelihood_notes(metrics, self.info.modality == "image")

    # The image recipe each dataset gets by default: measured on mnist-5k by
    # docs/results/make_walkback.py (see docs/results/walkback.md and the README).
    IMAGE_RECIPE = "algorithm1"
    # image minibatches without CUDA: about 10 minutes on a 2-core CPU with the paper's
    # operator, roughly 15 with the skip (2.2x slower per minibatch at equal K, K 5.4 not 7.5)
    CPU_STEPS = 3000

    @classmethod
    def default_config(cls, info: DataInfo) -> WalkbackConfig:
        if info.modality == "vector":
            if info.shape == (2,):
                # The paper's 2-D toy setup (appendix C and the authors' toy scripts): a
                # 2 -> 4096 -> 4096 leaky-ReLU MLP (256 wide on CPU-only runs), K = 30 steps
                # heated by 1.1 per step, per-step parameters (appendix I: needed for the
                # MoG). 1000 minibatches = 30 000 online updates.
                cfg = WalkbackConfig(recipe="appendix", per_step_norm=True, steps=1000)
                return recipes.resolve(cfg, WalkbackConfig(), info.name, info.shape)
            return WalkbackConfig()
        if info.modality != "image":
            raise GMError(f"walkback models vector or image data, not {info.modality} data.")
        binary = is_binary(info)
        # the paper's setup where a CUDA device is, else the recipe on the CPU setup
        # (recipes.CPU_IMAGE: a narrow MLP, Adam 1e-3, CPU_STEPS minibatches)
        gpu = shared.cuda_available()
        base = WalkbackConfig(
            recipe=cls.IMAGE_RECIPE,
            operator="bernoulli" if binary else "gaussian",
            lr=1e-4,
            batch_size=100,
            steps=100_000 if gpu else cls.CPU_STEPS,
            per_step_norm=True,
            init_std=0.05,
            checkpoint_every=2000,
        )
        return recipes.resolve(base, WalkbackConfig(), info.name, tuple(info.shape), not gpu)

    def __init__(self, config: WalkbackConfig, info: DataInfo, device="cpu"):
        super().__init__(config, info, device)
        if info.modality not in ("vector", "image"):
            raise GMError(f"walkback models vector or image data, not {info.modality} data.")
        if config.recipe != "custom":  # a recipe named with --set fills in its fields
            default = type(self).default_config(info)
            cpu = not shared.cuda_available()
            config = recipes.resolve(config, default, info.name, tuple(info.shape), cpu)
        self.config = config = shared.resolve_widths(config, self.device)
        if config.network == "conv" and info.modality != "image":
            raise GMError("network 'conv' needs image data; use --set network=mlp.")
        if config.n_max < 0 or config.max_levels < 1 or config.walk_steps < 1:
            raise GMError("n_max must be >= 0, max_levels and walk_steps >= 1.")
        if config.validate_every < 0 or config.validate_examples < 1:
            raise GMError("validate_every must be >= 0 and validate_examples >= 1.")
        self.shape = tuple(info.shape)
        self.operator = build_operator(config, info).to(self.device)
        if config.skip != "none" and not hasattr(self.operator, "skip"):
            # binary data's Bernoulli operator has no skip (the CPU image recipe names one)
            self.config = config = dataclasses.replace(config, skip="none")
        # heads / from_heads where the operator has them (F once per state), else distribution
        self.split = chains.has_heads(self.operator)
        # p*'s family and the data's model space: the operator's kind, else the data's
        self.family = getattr(self.operator, "kind", "bernoulli" if is_binary(info) else "gaussian")
        if config.loss == "reconstruction" and not isinstance(
            getattr(self.operator, "net", None), nn.Module
        ):
            raise GMError(
                "loss 'reconstruction' scores the operator's network F (operator.net), which "
                f"operator {config.operator!r} does not have; use --set loss=walkback."
            )
        # the skip's Gaussian G (gm_walkback.operators) follows the moments of all the data seen
        self.skip = getattr(self.operator, "skip", "none")
        if self.skip != "none" and config.loss == "reconstruction":
            raise GMError(
                "loss 'reconstruction' scores F itself as the reconstruction, which the skip's "
                "residual F is not; use --set skip=none (or loss=walkback)."
            )
        full, dims = self.skip == "full", math.prod(self.shape)
        if full and config.pstar_stats == "ema":
            raise GMError(
                "skip 'full' accumulates p*'s covariance; use --set pstar_stats=accumulate."
            )
        self.moments = shared.Moments(dims, full).to(self.device) if self.skip != "none" else None
        self.skip_warmup = shared.skip_warmup(dims, config.batch_size)
        self.stats = Stats(self.shape, full).to(self.device)
        # drawn from the global generator, seeded by the run seed (the same on every rank)
        self.stats.n_seed.fill_(int(torch.randint(0, 2**31 - 1, (), device="cpu")))
        self.opt = self.adam(self.operator.parameters())
        self.ema = shared.WeightAverage(self.operator, config.ema) if config.ema else None
        # self.step (the engine's count of minibatches done) drives n and the Tmax refresh
        self._heat: int | None = None  # host copy of stats.heat
        self.best_bound = -math.inf  # the best validation bound so far (saved for resume)

    # --- state -------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        out = {"operator": self.operator, "stats": self.stats}
        if self.moments is not None:
            out["moments"] = self.moments
        return {**out, "ema": self.ema} if self.ema is not None else out

    @property
    def sampler(self) -> nn.Module:
        """The operator that samples and is evaluated: the weight average where ``ema`` > 0."""
        return self.ema.module if self.ema is not None else self.operator

    def _update(self, loss: torch.Tensor) -> None:
        self.optimizer_step(loss, self.opt, clip=self.config.clip or None)
        if self.ema is not None:
            self.ema.update(self.operator)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"operator": self.opt}

    def extra_state(self) -> dict[str, Any]:
        return {"best_bound": self.best_bound}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        # (an older checkpoint's "updates" is the engine's step, which it restores itself)
        self.best_bound = float(state.get("best_bound", -math.inf))
        self._heat = None

    def compile(self) -> None:
        """torch.compile the network F (the operator itself is only called through F), or the
        whole operator where it has no ``net``."""
        getattr(self.operator, "net", self.operator).compile()

    # --- the walk ----------------------------------------------------------------------
    @property
    def heat(self) -> int:
        """H = ceil(log2 Tmax), the number of heated levels of the doubling schedule."""
        if self._heat is None:
            if self.config.tmax > 0:  # a fixed Tmax: its H, trained or not
                self._refresh_heat()
            else:
                self._heat = max(1, int(self.stats.heat.item()))
        return self._heat

    def _refresh_heat(self) -> None:
        """Re-read H = ceil(log2 Tmax), never letting it fall.

        Tmax = sigma_max^2 / sigma^2 is a variance ratio, with sigma^2 the operator's own
        noise at T = 1. That noise grows as the operator learns to walk back from heated
        states (seen on MNIST: std 0.05 -> 0.12, H 5 -> 3; 0.14 -> 0.29 for the MLP, H -> 1,
        no heating at all), so a re-estimated H would shorten the walk until p* no longer
        reaches across the data. H is therefore a ratchet: it may rise (the data turned
        out broader than the first estimate) but never falls; with a fixed --set tmax it
        is that Tmax's H. Under temperature_scaling="std" the variance grows as T^2, so
        the heated levels needed are ceil(log2 sqrt(Tmax)), not ceil(log2 Tmax)."""
        cfg = self.config
        if cfg.tmax > 0:
            tmax = cfg.tmax
        elif getattr(self.operator, "skip_tmax", 0.0):  # the skip's, in closed form
            tmax = self.operator.skip_tmax
        else:
            pair = distributed.all_reduce_mean(
                {"d": self.stats.data_var, "s": self.stats.noise_var}
            )
            tmax = (pair["d"] / pair["s"]).item()
        if cfg.temperature_scaling == "std":
            tmax = math.sqrt(tmax)
        heat = schedules.heat_levels(tmax, cfg.max_levels)
        if cfg.tmax <= 0:
            heat = max(heat, int(self.stats.heat.item()))  # the ratchet
        self._heat = heat
        self.stats.heat.fill_(heat)

    def walk(self, n: int = 0) -> schedules.Walk:
        """The forward walk with ``n`` extra steps at T = 1 (generation uses n = 0)."""
        if self.config.schedule == "appendix":
            return schedules.appendix(self.config.walk_steps, self.config.heat_factor)
        return schedules.doubling(self.heat, n)

    def _draw_n(self) -> int:
        # The same n on every torchrun rank (a per-step generator, not the per-rank noise
        # stream), so all ranks make the same number of updates.
        gen = torch.Generator().manual_seed(1_000_003 * self.step + int(self.stats.n_seed.item()))
        return int(torch.randint(0, self.config.n_max + 1, (), generator=gen))

    def prior(self) -> D.Distribution:
        """p*: the distribution generation starts from (fitted to s_K)."""
        ndim = len(self.shape)
        if self.family == "bernoulli":
            probs = self.stats.pstar_mean.clamp(1e-4, 1 - 1e-4)
            return D.Independent(
                D.Bernoulli(probs=probs, validate_args=False), ndim, validate_args=False
            )
        st = self.stats
        if st.full and st.pstar_count > 1:  # a Gaussian of every s_K so far, along its axes
            mean = (st.pstar_sum / st.pstar_count).flatten()
            cov = st.pstar_sum2 / st.pstar_count - torch.outer(mean, mean)
            if st.pstar_count >= 2 * mean.numel():  # its full covariance
                lam, axes = torch.linalg.eigh(cov)
            else:  # from fewer it has directions of no variance: its variances along G's axes
                axes = self.sampler.skip_axes.double()
                lam = ((cov @ axes) * axes).sum(0)
            lam = lam.clamp_min(1e-6 * lam.mean().clamp_min(1e-12))
            return AxesNormal(
                st.pstar_mean,
                axes.float(),
                torch.zeros_like(lam).float(),
                lam.sqrt().float(),
                self.shape,
            )
        std = self.stats.pstar_var.clamp_min(1e-12).sqrt()
        return D.Independent(
            D.Normal(self.stats.pstar_mean, std, validate_args=False), ndim, validate_args=False
        )

    # --- data --------------------------------------------------------------------------
    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """Model space: images dequantised to (k + U) / 256 for the Gaussian operator."""
        x = batch.to(self.device).float()
        if self.info.modality == "image" and self.family == "gaussian" and self.config.dequantize:
            x = shared.dequantise(x)
        return x

    # --- training ----------------------------------------------------------------------
    def step_loss(
        self, s_prev: torch.Tensor, s_next: torch.Tensor, temperature: float, level: int
    ) -> torch.Tensor:
        """The walk-back loss of one step: ``-log p_T(s_{t-1} | s_t)``, the operator applied at
        s_t scoring the state it came from (mean over the batch)."""
        if self.config.loss == "walkback":
            return -self.operator.distribution(s_next, temperature, level).log_prob(s_prev).mean()
        # The authors' code (walkback_nips17): F applied at s_{t-1} reconstructs s_{t-1},
        # -log_p_reverse = 0.5 * sum |x - mu| (an L1 error); the variance head is unused.
        f = self.operator.net(s_prev, level)[0].float()
        if self.family == "bernoulli":
            per = nn.functional.binary_cross_entropy_with_logits(f, s_prev, reduction="none")
        else:
            per = 0.5 * (s_prev - f).abs()
        return per.flatten(1).sum(1).mean()

    def _noise_variance(self, s: torch.Tensor, level, heads=None) -> torch.Tensor:
        """sigma^2 of Tmax = sigma_max^2 / sigma^2: the mean per-dimension noise variance at
        T = 1 (from the Gaussian operator's heads when given: no second pass of F)."""
        op = self.operator
        if heads is not None and isinstance(op, GaussianOperator):
            return heads[1].pow(2).mean()
        if hasattr(op, "noise_variance"):
            return op.noise_variance(s, level)
        return op.distribution(s, 1.0, level).variance.mean()

    def _forward_sample(self, dist: D.Distribution) -> torch.Tensor:
        if self.config.loss == "reconstruction" and self.family == "gaussian":
            mean, std = dist.mean, dist.stddev
            s = mean + self.config.reconstruction_noise * std * torch.randn_like(mean)
            return s.clamp(0, 1) if self.info.modality == "image" else s
        return chains.draw(dist)

    def training_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, st = self.config, self.stats
        x = self.prepare(batch)
        if self.moments is not None:
            g = shared.follow_data(
                self.moments, x, self.step, self.skip_warmup, self.skip == "full"
            )
            if g is not None:
                self.operator.set_skip(*g)
                if self.step == self.skip_warmup and self.stats.full:
                    self._reset_pstar()  # the walks so far ran on G's diagonal: p* forgets them
        decay = cfg.stats_decay if self.step else 0.0
        with torch.no_grad():
            st.data_var.lerp_(x.var(0, unbiased=False).mean(), 1 - decay)
        if self.step == 0 or (cfg.tmax_every and self.step % cfg.tmax_every == 0):
            if self.step == 0:
                with torch.no_grad(), frozen_stats(self.operator):
                    st.noise_var.copy_(self._noise_variance(x, 0))
            self._refresh_heat()
        walk = self.walk(self._draw_n())
        s = x
        losses = []
        for t, (temperature, level) in enumerate(zip(walk.temperatures, walk.levels, strict=True)):
            # the forward sample uses batch statistics but leaves the running ones alone
            with torch.no_grad(), frozen_stats(self.operator):
                if self.split:
                    heads = self.operator.heads(s, level)
                    dist = self.operator.from_heads(heads, temperature)
                else:
                    heads, dist = None, self.operator.distribution(s, temperature, level)
                if t == 0:  # the operator's noise variance at T = 1, at the data
                    var = self._noise_variance(s, level, heads)
                    st.noise_var.lerp_(var, 1 - cfg.stats_decay)
                s_next = self._forward_sample(dist)
            loss = self.step_loss(s, s_next, temperature, level)
            if cfg.update == "online":
                self._update(loss)
                loss = loss.detach()
            losses.append(loss)
            s = s_next
        total = torch.stack(losses).sum()
        if cfg.update == "batch":
            self._update(total)
        self._update_pstar(s, decay)
        k = torch.full((), float(len(walk)), device=self.device)  # a fill, not a host copy
        return {
            "loss": total.detach() / len(walk),
            "walk_steps": k,
            "noise_std": st.noise_var.sqrt(),
            "heat": st.heat.float(),
        }

    def _reset_pstar(self) -> None:
        for buf in (self.stats.pstar_sum, self.stats.pstar_sum2, self.stats.pstar_count):
            buf.zero_()

    def _update_pstar(self, s_k: torch.Tensor, decay: float) -> None:
        """p* follows the moments of s_K: accumulated over every walk so far (Algorithm 1),
        or an exponential moving average (pstar_stats="ema")."""
        st = self.stats
        with torch.no_grad():
            if self.config.pstar_stats == "ema":
                st.pstar_mean.lerp_(s_k.mean(0), 1 - decay)
                st.pstar_var.lerp_(s_k.var(0, unbiased=False), 1 - decay)
                return
            s64 = s_k.double()
            st.pstar_sum.add_(s64.sum(0))
            if st.full:
                flat = s64.flatten(1)
                st.pstar_sum2.add_(flat.T @ flat)
            else:
                st.pstar_sum2.add_(s64.pow(2).sum(0))
            st.pstar_count.add_(len(s_k))
            mean = st.pstar_sum / st.pstar_count
            second = st.pstar_sum2.diagonal().view_as(mean) if st.full else st.pstar_sum2
            st.pstar_mean.copy_(mean)
            st.pstar_var.copy_((second / st.pstar_count - mean.pow(2)).clamp_min(0))

    # --- generation --------------------------------------------------------------------
    def generation_walk(self, steps: int = 0, extra_steps: int = 0) -> schedules.Walk:
        walk = self.walk(0)
        if steps:
            if steps > len(walk):
                raise GMError(
                    f"this model's walk has {len(walk)} steps; --steps must be at most that "
                    "(use --extra-steps for more steps at T = 1)."
                )
            walk = walk.prefix(steps)
        if extra_steps < 0:
            raise GMError("--extra-steps must be >= 0.")
        return walk.reverse(extra_steps)

    def postprocess(self, s: torch.Tensor) -> torch.Tensor:
        return s.clamp(0, 1) if self.info.modality == "image" else s

    def generate(
        self,
        n: int,
        walk: schedules.Walk,
        *,
        every: int = 0,
        mean: bool = False,
        fast: Switch = "off",
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Raw chain states: s_K ~ p*, then ``walk`` (generation order). With ``mean`` the last
        step returns its mean instead of a draw; unless ``fast`` is "off" the chain runs
        through :class:`chains.FastChain` ("on": every fast path asked for, compile too)."""
        s = self.prior().sample((n,))
        run = None
        if fast != "off":
            chain = chains.FastChain(
                self.sampler, compile=fast, channels_last=fast, cuda_graph=fast
            )

            def run(s, walk, every):
                return chain.run(s, walk, every=every)

        return shared.sample_chain(self.sampler, s, walk, every=every, mean=mean, run=run)

    def sample(self, n: int, options: WalkbackSampleOptions):
        if options.chain_every < 0:
            raise GMError("--chain-every must be >= 0.")
        walk = self.generation_walk(options.steps, options.extra_steps)
        s, frames = self.generate(
            n, walk, every=options.chain_every, mean=options.mean, fast=options.fast
        )
        if options.chain_every:
            return self.postprocess(s), self.postprocess(torch.stack(frames))
        return self.postprocess(s)

    def inpaint(
        self,
        x: torch.Tensor,
        known: torch.Tensor,
        extra_steps: int = 0,
        start: Literal["masked", "pstar"] = "masked",
    ) -> torch.Tensor:
        """Fill in the entries of x where ``known`` is false by the cooling walk (and
        ``extra_steps`` more at T = 1) with the known entries clamped at every step. The
        chain starts at the masked image (known entries, zeros elsewhere: the paper's
        appendix B) or, with ``start="pstar"``, at a draw from p*. Known entries come back
        exactly as given."""
        if start not in ("masked", "pstar"):
            raise GMError(f"start must be 'masked' or 'pstar', not {start!r}.")
        values = self.prepare(x)
        walk = self.generation_walk(0, extra_steps)
        if start == "pstar":
            s0 = self.prior().sample((len(x),))
        else:
            s0 = torch.where(known, values, torch.zeros_like(values))
        s, _ = chains.run_chain(self.sampler, s0, walk, known=known, values=values)
        return torch.where(known, x.to(s.device).to(s.dtype), self.postprocess(s))

    def write_samples(self, samples: Any, path: Path, options: Any) -> None:
        figures.write(samples, Path(path), self.info, getattr(options, "chain_every", 0) or 1)

    # --- evaluation ---------------------------------------------------------------------
    def _weights(self):
        """Per-row log importance weights (Eq. 5) of one heated trajectory each, every row
        dequantised afresh."""
        walk = self.walk(0)
        process = chains.WalkbackProcess(self.sampler, walk)
        prior = self.prior()

        def weights(xs: torch.Tensor) -> torch.Tensor:
            return chains.log_weights(
                self.prepare(xs), len(walk), process.forward, process.reverse, prior.log_prob
            )

        return weights

    def cell_nats(self) -> float:
        """D ln 256 for dequantised 8-bit images (:func:`shared.cell_nats`), else 0."""
        if self.info.modality != "image" or self.family != "gaussian":
            return 0.0
        return shared.cell_nats(self.shape) if self.config.dequantize else 0.0

    def evaluate(
        self, data: Dataset, split: str, options: WalkbackEvaluateOptions
    ) -> dict[str, float]:
        """Bound (Eq. 5), IS log-likelihood (Eq. 10, M = --trajectories), bits/dim for images,
        the reversibility measure (appendix H) and, for vectors, the energy distance.

        reversibility = entropy_production / step_entropy, with entropy_production the mean
        of ln p(s_t+1|s_t) - ln p(s_t|s_t+1) per step of a chain at T = 1 after burn-in,
        and step_entropy the mean of -ln p(s_t+1|s_t), counted in 8-bit cells for images
        (differential entropy + D ln 256; NaN ratio where a differential entropy is <= 0)."""
        x = shared.evaluation_batch(self, data, split, options)
        with torch.no_grad():
            ll, bound = chains.importance_log_likelihood(
                self._weights(), x, options.trajectories, options.chunk
            )
            out = shared.likelihood_metrics(
                ll.mean().item(),
                bound.mean().item(),
                trajectories=options.trajectories,
                examples=len(x),
                walk_steps=len(self.walk(0)),
                image_dims=math.prod(self.shape) if self.info.modality == "image" else None,
                cell=self.cell_nats(),
            )
            s, _ = self.generate(options.chains, self.generation_walk(0, options.burn_in))
            out.update(chains.reversibility(self.sampler, s, options.chain_steps, self.cell_nats()))
            if self.info.modality == "vector":
                out["energy_distance"] = shared.sample_energy_distance(
                    self, data, split, options.samples
                )
        return out

    def validate(self, data: Dataset, run: Path, step: int) -> dict[str, float]:
        """The mean bound (Eq. 5, one trajectory per example) on the validation examples;
        when it is the best so far, the weights go to ``<run>/best`` (a run folder that
        ``gm sample --run <run>/best`` loads). Called by the engine every validate_every
        minibatches (Algorithm 1's monitoring; early stopping is picking <run>/best)."""
        n = self.config.validate_examples
        held = [k for k in ("valid", "validation") if k in data.splits]
        if held:
            raw = data.raw(held[0])[:n]
        else:
            raw = data.raw("test")[-n:]
        x = data.decode(raw.to(self.device)).float()
        with torch.no_grad():
            _, bound = chains.importance_log_likelihood(self._weights(), x, 1)
        value = bound.mean().item()
        if value > self.best_bound:
            self.best_bound = value
            checkpoint.save_weights(Path(run) / "best", self, step)
        return {"validation_bound": value, "best_validation_bound": self.best_bound}
