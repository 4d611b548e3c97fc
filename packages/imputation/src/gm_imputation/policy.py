"""What GPSI and the LSTM models share: guided training, bounds, primary-policy imputation.

A policy network has ``rollout(x, known, avail, steps, guided) -> {"c", "kl_qp", "kl_pq",
"log_w"}``: the final guess logits and, per example, the KLs summed over steps and
``log_w = sum_t log p(z_t) - log q(z_t)`` of the sampled z (zero when not guided).
"""

from __future__ import annotations

import torch

from gm import fastpath
from gm_imputation import observation
from gm_imputation.base import Fast, ImputerTrainer

CHUNK = 16384  # most rows per compiled / graphed roll-out call


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


class PrimaryRollout:
    """Imputation's roll-out of the primary policy: ``net.primary_logits(x, known, noise)``,
    eager or through a fast path.

    The noise of every step is drawn up front here, whichever path runs, so for a seed the
    eager and fast paths use the same random numbers and give the same imputations (to
    float tolerance: compiled kernels fuse and reorder arithmetic). The fast paths:

    - ``compile``: ``torch.compile(dynamic=False)`` of the whole fixed-step roll-out, one
      graph per (rows, steps). Default (:func:`gm.fastpath.wanted`): on CUDA only. On CPU
      the matrix products dominate: ``bench/bench_imputation.py`` measured 10-20 s of
      (cold) compiling per shape against 0-25% saved per call (48% at 54,000 roll-outs),
      repaid after about 11 calls of 54,000 roll-outs and thousands of calls of 540, so one
      ``gm impute`` of a file does not repay it. If compiling fails where it was not asked
      for, the roll-out warns and runs eagerly.
    - ``cuda_graph``: on CUDA, the (compiled or eager) roll-out captured as one CUDA graph
      at the chunk's shape (:func:`gm.fastpath.cuda_graphed`) and replayed: one launch per
      chunk instead of a few dozen kernels per step from Python. The noise is an input, drawn
      outside the graph, so a replay is exactly the roll-out on the same noise. Ignored
      elsewhere.

    More than :data:`CHUNK` rows run in equal chunks, the last one padded, so a large file
    needs one compiled graph / CUDA graph for all its chunks. Nothing reads a value back to
    the host. Graphs are kept per shape and read the weights in place, so they stay right
    while the weights are updated in place (optimiser steps, ``load_state_dict``).
    """

    def __init__(self, net: torch.nn.Module):
        self.net = net
        self.compile_failed = False
        self._compiled = None
        self._graphs: dict[tuple, object] = {}

    def __call__(
        self, x: torch.Tensor, known: torch.Tensor, steps: int, fast: Fast = Fast()
    ) -> torch.Tensor:
        """Final guess logits ``(N, D)`` after ``steps`` primary-policy steps."""
        noise = self.net.primary_noise(len(x), steps, x.device)
        compiled = fastpath.wanted(fast.compile, x.device)
        compiled = compiled and not (fast.compile is None and self.compile_failed)
        graphed = fastpath.wanted_graph(fast.cuda_graph, x.device)
        if not (compiled or graphed) or len(x) == 0:
            return self.net.primary_logits(x, known, noise)
        out, failed = fastpath.compiled_or_eager(
            lambda c: self._chunked(x, known, noise, c, graphed), compiled, fast.compile, "imputing"
        )
        self.compile_failed |= failed
        return out

    def _chunked(self, x, known, noise, compiled: bool, graphed: bool) -> torch.Tensor:
        if compiled and self._compiled is None:
            self._compiled = torch.compile(self.net.primary_logits, dynamic=False)
        roll = self._compiled if compiled else self.net.primary_logits
        n = len(x)
        size = -(-n // -(-n // CHUNK))  # equal chunks of at most CHUNK rows
        out = []
        for a in range(0, n, size):
            args = [_padded(t[a : a + size], size) for t in (x, known, noise)]
            if graphed:
                key = (size, noise.shape[1], compiled, x.device, x.dtype)
                if key not in self._graphs:
                    self._graphs[key] = fastpath.cuda_graphed(roll, *args)
                c = self._graphs[key](*args)
            else:
                c = roll(*args)
            out.append(c[: n - a].clone())  # a copy: the next replay overwrites a graph's output
        return torch.cat(out)


def _padded(t: torch.Tensor, rows: int) -> torch.Tensor:
    """``t`` with zero rows appended up to ``rows`` (a padded last chunk)."""
    if len(t) == rows:
        return t
    return torch.cat([t, t.new_zeros(rows - len(t), *t.shape[1:])])


class PolicyTrainer(ImputerTrainer):
    """Guided policy search around ``self.net`` with config fields ``refine_steps``,
    ``lambda_q``, ``lambda_p``, ``clip`` and ``observation``."""

    net: torch.nn.Module
    opt: torch.optim.Optimizer
    _primary: PrimaryRollout | None = None

    def __init__(self, config, info, device="cpu"):
        super().__init__(config, info, device)
        self.obs = observation.get(
            config.observation,
            binary=bool(info.meta.get("binary", False)),
            image=info.modality == "image",
        )

    def floor(self, x, target):
        return super().floor(x, target) if self.obs.name == "bernoulli" else None

    def modules(self):
        return {"data": self.state, "net": self.net}

    def optimizers(self):
        return {"net": self.opt}

    @property
    def refine_steps(self) -> int:
        return self.config.refine_steps

    def update(self, x, known, target):
        cfg = self.config
        r = self.net.rollout(x, known, known + target, cfg.refine_steps, guided=True)
        nll = self.obs.nll(r["c"], x, target)
        loss = (nll + cfg.lambda_q * r["kl_qp"] + cfg.lambda_p * r["kl_pq"]).mean()
        self.optimizer_step(loss, self.opt, clip=cfg.clip)
        return {
            "loss": loss.detach(),
            "bound": (nll + r["kl_qp"]).mean().detach(),
            "nll": nll.mean().detach(),
            "kl_qp": r["kl_qp"].mean().detach(),
        }

    @property
    def primary_rollout(self) -> PrimaryRollout:
        """The imputation roll-out with its fast paths (compiled graphs kept across calls)."""
        if self._primary is None or self._primary.net is not self.net:
            self._primary = PrimaryRollout(self.net)
        return self._primary

    def score_batch(self, x, known, target, steps, samples, fast=Fast()):
        xs, ks, ts = repeat(x, samples), repeat(known, samples), repeat(target, samples)
        g = self.net.rollout(xs, ks, ks + ts, steps, guided=True)
        out = guided_scores(self.obs.nll(g["c"], xs, ts), g["kl_qp"], g["log_w"], samples)
        # E_p[NLL_T] under the primary policy is an upper bound too (Jensen, with q = p).
        p = self.primary_rollout(xs, ks, steps, fast)
        out["primary_bound"] = self.obs.nll(p, xs, ts).view(samples, len(x)).mean(0)
        guesses = self.obs.mean(p).view(samples, *x.shape)
        out["sq_err"] = (target * (guesses.mean(0) - x) ** 2).sum(-1)
        out["single_sq_err"] = (target * (guesses[0] - x) ** 2).sum(-1)
        return out

    def complete(self, x, known, steps, samples, fast=Fast(), draw=False):
        c = self.primary_rollout(repeat(x, samples), repeat(known, samples), steps, fast)
        return (self.obs.draw(c) if draw else self.obs.mean(c)).view(samples, *x.shape)
