"""What the walkback trainer and the NET baseline share: the data's model space (8-bit images
dequantised), the network width rule, the last step's mean as a sample, and the measures
``gm evaluate`` reports for both (bits/dim from nats, the energy distance to a split).

One place for each, so the two models are measured by the same code.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable

import torch
from torch import nn

from gm.data import Dataset
from gm.errors import GMError
from gm_walkback import chains
from gm_walkback.schedules import Walk

CPU_HIDDEN = 256  # MLP width used on CPU-only runs when hidden = 0 ("auto")
GPU_HIDDEN = 4096  # the paper's 2-D toy width


def cuda_available() -> bool:
    """Whether defaults may assume a GPU (the image recipes pick the paper's setup there)."""
    return torch.cuda.is_available()


def default_hidden(device: torch.device) -> int:
    """The MLP width ``hidden = 0`` stands for: the paper's 4096 on a GPU, 256 on CPU."""
    return GPU_HIDDEN if device.type == "cuda" else CPU_HIDDEN


CPU_UNET_WIDTH = 32  # the UNet operator's base width on CPU-only runs when unet_width = 0
GPU_UNET_WIDTH = 128


def resolve_widths(config, device: torch.device):
    """``config`` with its "auto" widths (``hidden = 0``, ``unet_width = 0``) made the device's:
    the MLP 4096 / 256 wide and the UNet 128 / 32 wide on a GPU / on CPU."""
    gpu = device.type == "cuda"
    changes = {}
    if getattr(config, "hidden", None) == 0:
        changes["hidden"] = default_hidden(device)
    if getattr(config, "unet_width", None) == 0:
        changes["unet_width"] = GPU_UNET_WIDTH if gpu else CPU_UNET_WIDTH
    return dataclasses.replace(config, **changes) if changes else config


class WeightAverage(nn.Module):
    """An exponential moving average of a module's weights (buffers copied), the copy that
    samples and is evaluated where a trainer's ``ema`` decay is > 0. The decay warms up as
    min(decay, (1 + n) / (10 + n)) over the n updates so far, so early averages are not
    dominated by the initial weights."""

    def __init__(self, module: nn.Module, decay: float):
        super().__init__()
        if not 0 < decay < 1:
            raise GMError(f"ema must be 0 (off) or between 0 and 1, not {decay}.")
        self.decay = decay
        self.module = copy.deepcopy(module).requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        n = self.updates.float()  # on the device: no sync with the host per update
        weight = 1 - ((1 + n) / (10 + n)).clamp(max=self.decay)
        for avg, p in zip(self.module.parameters(), module.parameters(), strict=True):
            avg.lerp_(p.detach(), weight.to(avg.dtype))
        for avg, b in zip(self.module.buffers(), module.buffers(), strict=True):
            avg.copy_(b)
        self.updates += 1


def dequantise(x: torch.Tensor) -> torch.Tensor:
    """8-bit values in [0, 1] to (k + U(0, 1)) / 256: a density over [0, 1] whose integral
    over an 8-bit cell is the probability of that value (fresh noise on every call)."""
    return (torch.round(x * 255) + torch.rand_like(x)) / 256


def cell_nats(shape: tuple[int, ...]) -> float:
    """D ln 256, the log-volume of one 8-bit cell, negated: continuous log-density of the
    dequantised data in nats + this = log-probability of the 8-bit image."""
    return math.prod(shape) * math.log(256)


def bits_per_dim(nats: float, dims: int, cell: float) -> float:
    """Bits per dimension of a log-likelihood ``nats`` (``cell``: :func:`cell_nats` or 0)."""
    return -(nats - cell) / (dims * math.log(2))


def likelihood_metrics(
    ll: float,
    bound: float,
    *,
    trajectories: int,
    examples: int,
    walk_steps: int,
    image_dims: int | None,
    cell: float,
) -> dict[str, float]:
    """``gm evaluate``'s likelihood rows: the mean IS log-likelihood (Eq. 10) and bound (Eq. 5)
    and, for images (``image_dims``), both in bits/dim."""
    out = {
        "lower_bound": bound,
        "log_likelihood": ll,
        "trajectories": float(trajectories),
        "examples": float(examples),
        "walk_steps": float(walk_steps),
    }
    if image_dims:
        out["bits_per_dim"] = bits_per_dim(ll, image_dims, cell)
        out["bound_bits_per_dim"] = bits_per_dim(bound, image_dims, cell)
    return out


# the defaults of ``gm evaluate`` (about a minute for an MNIST run on a CPU) and the hint
# under its table: how to ask for the full protocol
EVALUATE_TRAJECTORIES = 20
EVALUATE_EXAMPLES = 100
EVALUATE_HINT = (
    "Defaults sized for about a minute on a CPU; the paper's protocol (M = 100 importance-"
    "sampled trajectories on every example of the split): --trajectories 100 --examples 0."
)


def likelihood_notes(metrics: dict[str, float], image: bool) -> dict[str, str]:
    """What ``gm evaluate`` prints beside the likelihood rows: each one's estimator and
    sample size, e.g. "IS (Eq. 10), M = 20 trajectories, 100 images"."""
    m, n = int(metrics["trajectories"]), int(metrics["examples"])
    size = f"{n} {'images' if image else 'examples'}"
    is_ = f"importance sampling (Eq. 10), M = {m} trajectories, {size}"
    bound = f"variational bound (ELBO), mean over M = {m} trajectories, {size}"
    notes = {"log_likelihood": is_, "lower_bound": bound, "bits_per_dim": is_}
    notes["bound_bits_per_dim"] = bound
    return {k: v for k, v in notes.items() if k in metrics}


def evaluation_batch(trainer, data: Dataset, split: str, options) -> torch.Tensor:
    """The examples ``gm evaluate`` scores, checked and decoded but not yet dequantised: each
    of the M trajectories of Eq. 10 draws its own dequantisation (the uniform noise is part of
    the proposal, so the average over trajectories integrates the density over the 8-bit
    cell), by ``trainer.prepare`` on the repeated rows."""
    if options.trajectories < 1:
        raise GMError("--trajectories must be at least 1.")
    raw = data.raw(split)
    if tuple(raw.shape[1:]) != trainer.shape:
        raise GMError(
            f"dataset {data.info.name!r} has examples of shape {tuple(raw.shape[1:])}, "
            f"but this model was trained on shape {trainer.shape}."
        )
    if options.examples:
        raw = raw[: options.examples]
    return data.decode(raw.to(trainer.device)).float()


Run = Callable[[torch.Tensor, Walk, int], tuple[torch.Tensor, list[torch.Tensor]]]


def sample_chain(
    op, s: torch.Tensor, walk: Walk, *, mean: bool, every: int = 0, run: Run | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The chain from ``s`` along ``walk`` (generation order) by ``run(s, walk, every)``
    (default :func:`chains.run_chain`); with ``mean`` the last step returns its mean instead
    of a draw (the last frame too)."""
    if run is None:

        def run(s, walk, every):
            return chains.run_chain(op, s, walk, every=every)

    if not (mean and len(walk)):
        return run(s, walk, every)
    s, frames = run(s, walk.prefix(len(walk) - 1), every)
    with torch.no_grad():
        s = op.distribution(s, walk.temperatures[-1], walk.levels[-1]).mean
    return s, (frames + [s] if every else frames)


def energy_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Multivariate energy distance 2E|a-b| - E|a-a'| - E|b-b'| (V-statistic)."""
    a, b = a.reshape(len(a), -1).double(), b.reshape(len(b), -1).double()
    return (
        2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean()
    ).item()


def sample_energy_distance(trainer, data: Dataset, split: str, n: int) -> float:
    """The energy distance between ``n`` samples (default sample options) and the first ``n``
    examples of ``split``: the vector-data sample measure of ``gm evaluate``."""
    samples = trainer.sample(n, trainer.SampleOptions())
    return energy_distance(samples, data.tensor(split, trainer.device)[:n])


# --- the data's Gaussian (ddpm's x0 skip, walkback's skip operator) ------------------------
def fp32_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` in (at least) float32 also under bf16 autocast: the skip resolves noise of
    std sqrt(beta_1) ~ 0.006, far below bf16's precision."""
    with torch.autocast(a.device.type, enabled=False):
        dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
        return a.to(dtype) @ b.to(dtype)


class Moments(nn.Module):
    """Sums of the training data seen so far (float64; ddpm's standardised, walkback's
    dequantised): per dimension, and its outer products where the skip Gaussian has a full
    covariance."""

    def __init__(self, dims: int, full: bool):
        super().__init__()
        self.full = full
        self.register_buffer("sum", torch.zeros(dims, dtype=torch.float64))
        self.register_buffer("sum2", torch.zeros((dims, dims) if full else dims).double())
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    def add(self, z: torch.Tensor) -> None:
        z = z.flatten(1).double()
        self.sum.add_(z.sum(0))
        self.sum2.add_(fp32_matmul(z.T, z) if self.full else z.pow(2).sum(0))
        self.count.add_(len(z))

    def gaussian(self, full: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(mean, variances along the axes, axes or None: the data's own) of everything added,
        float32, the variances floored at 1e-6 of their mean; ``full``: the covariance's
        eigendecomposition, else its diagonal."""
        mean = self.sum / self.count
        if not full:
            second = self.sum2.diagonal() if self.full else self.sum2
            var = second / self.count - mean.pow(2)
            return mean.float(), var.clamp_min(1e-6 * var.mean()).float(), None
        cov = self.sum2 / self.count - torch.outer(mean, mean)
        lam, axes = torch.linalg.eigh(cov)
        return mean.float(), lam.clamp_min(1e-6 * lam.mean()).float(), axes.float()


SKIP_REFRESH = 100  # a full skip's eigendecomposition is refreshed every this many steps


def skip_warmup(dims: int, batch_size: int) -> int:
    """Steps a full skip keeps its diagonal: until 2 D examples are in (a covariance from
    fewer rows than dimensions has directions of no variance, where the next batch's targets
    explode)."""
    return math.ceil(2 * dims / batch_size)


def follow_data(
    moments: Moments, z: torch.Tensor, step: int, warmup: int, full: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
    """Add a training batch to ``moments`` and return the skip Gaussian to set now (None: keep
    the current one): the diagonal every step until ``warmup`` (or always, unless ``full``),
    then the full covariance's eigendecomposition at ``warmup``, at every power of two (the
    estimate improves fastest early) and every SKIP_REFRESH steps."""
    with torch.no_grad():
        moments.add(z)
        if not full or step < warmup:
            return moments.gaussian(full=False)
        if step == warmup or step % SKIP_REFRESH == 0 or step & (step - 1) == 0:
            return moments.gaussian(full=True)
    return None
