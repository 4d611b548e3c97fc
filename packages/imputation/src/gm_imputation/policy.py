"""What GPSI and the LSTM models share: guided training, bounds, primary-policy imputation.

A policy network has ``rollout(x, known, avail, steps, guided) -> {"c", "kl_qp", "kl_pq",
"log_w"}``: the final guess logits and, per example, the KLs summed over steps and
``log_w = sum_t log p(z_t) - log q(z_t)`` of the sampled z (zero when not guided).
"""

from __future__ import annotations

import torch

from gm_imputation.base import ImputerTrainer
from gm_imputation.nets import bernoulli_nll


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


class PolicyTrainer(ImputerTrainer):
    """Guided policy search around ``self.net`` with config fields ``refine_steps``,
    ``lambda_q``, ``lambda_p`` and ``clip``."""

    net: torch.nn.Module
    opt: torch.optim.Optimizer

    def modules(self):
        return {"data": self.state, "net": self.net}

    def optimizers(self):
        return {"net": self.opt}

    @property
    def refine_steps(self) -> int:
        return self.config.refine_steps

    def step(self, x, known, target):
        cfg = self.config
        r = self.net.rollout(x, known, known + target, cfg.refine_steps, guided=True)
        nll = bernoulli_nll(r["c"], x, target)
        loss = (nll + cfg.lambda_q * r["kl_qp"] + cfg.lambda_p * r["kl_pq"]).mean()
        self.optimizer_step(loss, self.opt, clip=cfg.clip)
        return {
            "loss": loss.detach(),
            "bound": (nll + r["kl_qp"]).mean().detach(),
            "nll": nll.mean().detach(),
            "kl_qp": r["kl_qp"].mean().detach(),
        }

    def score_batch(self, x, known, target, steps, samples):
        xs, ks, ts = repeat(x, samples), repeat(known, samples), repeat(target, samples)
        g = self.net.rollout(xs, ks, ks + ts, steps, guided=True)
        out = guided_scores(bernoulli_nll(g["c"], xs, ts), g["kl_qp"], g["log_w"], samples)
        # E_p[NLL_T] under the primary policy is an upper bound too (Jensen, with q = p).
        p = self.net.rollout(xs, ks, ks, steps, guided=False)
        out["primary_bound"] = bernoulli_nll(p["c"], xs, ts).view(samples, len(x)).mean(0)
        guesses = torch.sigmoid(p["c"]).view(samples, *x.shape)
        out["sq_err"] = (target * (guesses.mean(0) - x) ** 2).sum(-1)
        out["single_sq_err"] = (target * (guesses[0] - x) ** 2).sum(-1)
        return out

    def complete(self, x, known, steps, samples):
        ks = repeat(known, samples)
        c = self.net.rollout(repeat(x, samples), ks, ks, steps, guided=False)["c"]
        return torch.sigmoid(c).view(samples, *x.shape)
