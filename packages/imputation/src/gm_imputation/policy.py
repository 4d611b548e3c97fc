"""Guided policy search: the one trainer of GPSI and the LSTM models, their bounds, and the
primary-policy roll-out that imputes.

A policy network has ``rollout(x, known, avail, steps, guided) -> {"c", "kl_qp", "kl_pq",
"log_w"}``: the final canvas and, per example, the KLs summed over steps and
``log_w = sum_t log p(z_t) - log q(z_t)`` of the sampled z (zero when not guided), and a
pure ``primary_logits(x, known, noise)`` with ``primary_noise(n, steps, device)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch

from gm import fastpath
from gm.config import Switch
from gm_imputation import mixed, observation
from gm_imputation.base import ImputerConfig, NetTrainer
from gm_imputation.scores import Scores

CHUNK = 16384  # most rows per compiled / graphed roll-out call


@dataclasses.dataclass
class GuidedConfig(ImputerConfig):
    """What every guided-policy-search model is configured by (GPSI and LSTM add theirs)."""

    update: Literal["add", "jump"] = "add"
    refine_steps: int = 6
    hidden: int = 500
    z_dim: int = 100
    lambda_q: float = 1.0  # weight of sum_t KL(q||p): 1 makes the loss the bound
    lambda_p: float = 0.05  # weight of sum_t KL(p||q) (the authors' code: 0.05)
    see_mask: bool = False  # give the primary policy and the guide the mask as an input
    clip: float = 10.0  # gradient-norm clip (the authors' code: 10)
    batch_size: int = 200
    observation: str = "auto"  # auto | bernoulli | gaussian (gm_imputation.observation)
    beta_nll: float = 0.0  # > 0: train a table's Gaussian values by beta-NLL (mixed tables)


def repeat(t: torch.Tensor, s: int) -> torch.Tensor:
    """(N, ...) -> (S*N, ...): S copies, sample-major."""
    return t.repeat(s, *([1] * (t.dim() - 1)))


def guided_scores(
    nll: torch.Tensor, kl: torch.Tensor, log_w: torch.Tensor, s: int
) -> dict[str, torch.Tensor]:
    """Per-example bound (mean over S guide rollouts of NLL_T + KL) and the S-sample
    importance-weighted bound -log mean_s p(x_u|z) p(z)/q(z), both upper bounds on the NLL."""
    n = len(nll) // s
    bound = (nll + kl).view(s, n).mean(0)
    log_ratio = (-nll + log_w).view(s, n).double()
    iw = -(torch.logsumexp(log_ratio, 0) - torch.log(torch.tensor(float(s), dtype=torch.float64)))
    return {
        "bound": bound,
        "iw_bound": iw,
        "nll_term": nll.view(s, n).mean(0),
        "kl": kl.view(s, n).mean(0),
    }


class PolicyNet(torch.nn.Module):
    """The network guided policy search trains (GPSI's and the LSTM models'): the interface
    in the module doc, stated for the trainer and the type checker."""

    def rollout(
        self, x: torch.Tensor, known: torch.Tensor, avail: torch.Tensor, steps: int, guided: bool
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def primary_logits(
        self, x: torch.Tensor, known: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    def primary_noise(self, n: int, steps: int, device) -> torch.Tensor:
        raise NotImplementedError


class PrimaryRollout:
    """Imputation's roll-out of the primary policy, ``net.primary_logits(x, known, noise)``,
    handed to :class:`gm.fastpath.FastStep` (compiled / a CUDA graph by the switches) and
    :func:`gm.fastpath.chunked` (equal chunks of at most :data:`CHUNK` rows, so a file of
    any length needs one graph). The noise of every step is drawn up front here, whichever
    path runs, so for a seed the eager and fast paths give the same imputations (to float
    tolerance: compiled kernels fuse and reorder arithmetic). Graphs read the weights in
    place, so they stay right while the weights are updated in place. What the fast paths
    save is measured in docs/benchmarks.md (imputation)."""

    def __init__(self, net: PolicyNet):
        self.net = net
        self._steps: dict[tuple[Switch, Switch], fastpath.FastStep] = {}

    def __call__(
        self,
        x: torch.Tensor,
        known: torch.Tensor,
        steps: int,
        compile: Switch = "auto",
        cuda_graph: Switch = "auto",
    ) -> torch.Tensor:
        """Final canvases ``(N, width)`` after ``steps`` primary-policy steps."""
        noise = self.net.primary_noise(len(x), steps, x.device)
        key = (compile, cuda_graph)
        if key not in self._steps:
            self._steps[key] = fastpath.FastStep(
                self.net.primary_logits, compile=compile, cuda_graph=cuda_graph, what="imputing"
            )
        step = self._steps[key]
        fast = step.compiles(x.device) or fastpath.use(cuda_graph, "cuda_graph", x.device)
        if not fast or len(x) == 0:
            return self.net.primary_logits(x, known, noise)  # eager: one call, no chunks
        return fastpath.chunked(step, x, known, noise, rows=CHUNK)


class GuidedPolicyTrainer(NetTrainer):
    """Guided policy search around ``self.net``, configured by a :class:`GuidedConfig`."""

    _primary: PrimaryRollout | None = None
    config: GuidedConfig
    net: PolicyNet

    def __init__(self, config, info, device="cpu"):
        # the observation model first: the net's canvas width depends on it
        schema = info.meta.get("schema")  # a user's table (gm_imputation.mixed)
        self.obs = observation.get(
            config.observation,
            binary=bool(info.meta.get("binary", False)),
            image=info.modality == "image",
            groups=mixed.Schema.from_meta(schema).groups() if schema else None,
            dim=math.prod(info.shape),
            beta=config.beta_nll,
        )
        super().__init__(config, info, device)

    def training_step(
        self, batch: torch.Tensor, missing: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """One update of guided policy search (Bachman & Precup 2015, Eq. 17) on a batch in
        dataset units: x ~ D_X and m ~ D_M (the training mask, or ``missing``), a roll-out
        of the guide (GPSI's is :func:`gm_imputation.gpsi.guided_rollout`), and a step on
        ``NLL_T + lambda_q sum_t KL(q||p) + lambda_p sum_t KL(p||q)``; the reported bound
        is ``NLL_T + sum_t KL(q||p)`` (Eq. 17 itself, lambda_q = 1, lambda_p = 0)."""
        cfg = self.config
        x, known, target = self.masked(batch, missing)
        r = self.net.rollout(x, known, known + target, cfg.refine_steps, guided=True)
        nll = self.obs.nll(r["c"], x, target)  # -log q(x_u | c_T), missing values only
        fit_nll = self.obs.train_nll(r["c"], x, target) if cfg.beta_nll else nll
        loss = (fit_nll + cfg.lambda_q * r["kl_qp"] + cfg.lambda_p * r["kl_pq"]).mean()
        self.optimizer_step(loss, self.opt, clip=cfg.clip)
        return {
            "loss": loss.detach(),
            "bound": (nll + r["kl_qp"]).mean().detach(),
            "nll": nll.mean().detach(),
            "kl_qp": r["kl_qp"].mean().detach(),
        }

    def floor(self, x, target):
        return super().floor(x, target) if self.obs.name == "bernoulli" else None

    @property
    def refine_steps(self) -> int:
        return self.config.refine_steps

    @property
    def primary_rollout(self) -> PrimaryRollout:
        """The imputation roll-out with its fast paths (compiled graphs kept across calls)."""
        if self._primary is None or self._primary.net is not self.net:
            self._primary = PrimaryRollout(self.net)
        return self._primary

    def score_batch(self, x, known, target, steps, samples, **fast):
        xs, ks, ts = repeat(x, samples), repeat(known, samples), repeat(target, samples)
        g = self.net.rollout(xs, ks, ks + ts, steps, guided=True)
        guided = guided_scores(self.obs.nll(g["c"], xs, ts), g["kl_qp"], g["log_w"], samples)
        # E_p[NLL_T] under the primary policy is an upper bound too (Jensen, with q = p).
        p = self.primary_rollout(xs, ks, steps, **fast)
        guesses = self.obs.mean(p).view(samples, *x.shape)
        return [
            Scores(
                **guided,
                primary_bound=self.obs.nll(p, xs, ts).view(samples, len(x)).mean(0),
                sq_err=(target * (guesses.mean(0) - x) ** 2).sum(-1),
                single_sq_err=(target * (guesses[0] - x) ** 2).sum(-1),
            )
        ]

    def complete(self, x, known, steps, samples, *, draw=False, **fast):
        c = self.primary_rollout(repeat(x, samples), repeat(known, samples), steps, **fast)
        return (self.obs.draw(c) if draw else self.obs.mean(c)).view(samples, *x.shape)
