"""The template-matching baselines: copy the missing values from the nearest training example.

*Honest*: nearest by mean squared distance on the known values (this is a 1-nearest-
neighbour imputer). *Oracle*: nearest on the missing values themselves, which looks at the
answer; it shows how good the best single template could be.

Every training row is a template by default: the memory is sized from the dataset's
``train_rows`` (kept in the run record, so a reloaded run has the same size) and "training"
is one step whose batch is the whole training split. ``--set max_templates=M`` keeps M
(a random M: the last M rows of that shuffled batch). The memory is circular, so more
steps of smaller batches keep the latest rows. Matching runs over chunks of queries, so
its memory stays bounded (:data:`NEAREST_CELLS`) however many templates there are.

Bernoulli scoring needs probabilities away from 0 and 1: a template value t is scored as
``p = (1 - eps) t + eps / 2``. ``eps`` is chosen for each evaluation batch from a grid by
leave-one-out matching of stored templates under the batch's own mask patterns, so it uses
training data only.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from gm.data import DataInfo
from gm_imputation.base import ImputerConfig, ImputerTrainer
from gm_imputation.gallery import gather_rows
from gm_imputation.nets import bernoulli_nll_probs
from gm_imputation.scores import Scores

EPS_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5)
TUNE_ROWS = 500  # templates used for the leave-one-out choice of eps
NEAREST_CELLS = 1 << 22  # queries x templates per distance chunk (a few 32 MiB matrices)


@dataclasses.dataclass
class TemplateConfig(ImputerConfig):
    max_templates: int | None = None  # templates kept (None: every training row)
    steps: int = 1  # one step: its batch is the whole training split (default_config)
    log_every: int = 1
    checkpoint_every: int = 1


class Memory(nn.Module):
    """Stored training rows in *dataset* units (so a later widening of the running column
    ranges rescales them too), their observed-value masks and which slots are filled."""

    rows: torch.Tensor  # the buffers registered below
    avail: torch.Tensor
    filled: torch.Tensor
    cursor: torch.Tensor

    def __init__(self, capacity: int, dim: int):
        super().__init__()
        self.register_buffer("rows", torch.zeros(capacity, dim))
        self.register_buffer("avail", torch.zeros(capacity, dim))
        self.register_buffer("filled", torch.zeros(capacity, dtype=torch.bool))
        self.register_buffer("cursor", torch.zeros((), dtype=torch.long))

    def write(self, x: torch.Tensor, avail: torch.Tensor) -> None:
        cap = len(self.rows)
        x, avail = x[-cap:], avail[-cap:]
        at = (self.cursor + torch.arange(len(x), device=x.device)) % cap
        self.rows[at] = x
        self.avail[at] = avail
        self.filled[at] = True
        self.cursor.copy_((self.cursor + len(x)) % cap)

    @torch.no_grad()
    def nearest(
        self, table: torch.Tensor, x: torch.Tensor, on: torch.Tensor, exclude_self: bool = False
    ) -> torch.Tensor:
        """Index of the nearest row of ``table`` (the stored rows in unit values) to each row
        of x, by mean squared difference over the values ``on`` (float mask) that the
        template also has. With ``exclude_self``, rows identical to the query on all its
        values are skipped (leave-one-out). Runs over chunks of queries of at most
        :data:`NEAREST_CELLS` query-template pairs."""
        r, a = table.double(), self.avail.double()
        ar, ar2 = a * r, a * r * r
        rows = max(1, NEAREST_CELLS // max(1, len(r)))
        parts = [
            self._nearest(
                a, ar, ar2, x[i : i + rows].double(), on[i : i + rows].double(), exclude_self
            )
            for i in range(0, len(x), rows)
        ]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=x.device)

    def _nearest(self, a, ar, ar2, x, on, exclude_self) -> torch.Tensor:
        def sq_dist(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # sum_d w_bd a_md (x_bd - r_md)^2 as three (B, M) products, and the overlap count
            return (w * x * x) @ a.T - 2 * (w * x) @ ar.T + w @ ar2.T, w @ a.T

        total, count = sq_dist(on)
        dist = total / count.clamp_min(1)
        inf = torch.full_like(dist, float("inf"))
        dist = torch.where((count > 0) & self.filled[None], dist, inf)
        if exclude_self:
            full, _ = sq_dist(torch.ones_like(x))
            dist = torch.where(full.abs() < 1e-9, inf, dist)
        return dist.argmin(1)


class TemplateMatchingTrainer(ImputerTrainer):
    Config = TemplateConfig
    name = "template-matching"
    config: TemplateConfig

    def __init__(self, config: TemplateConfig, info: DataInfo, device="cpu"):
        super().__init__(config, info, device)
        every = info.train_rows or config.steps * config.batch_size  # what training writes
        capacity = min(every, config.max_templates or every)
        self.memory = Memory(capacity, self.dim).to(self.device)

    @classmethod
    def default_config(cls, info: DataInfo) -> TemplateConfig:
        # one step whose batch is the whole training split: every row becomes a template
        return cls.Config(batch_size=info.train_rows) if info.train_rows else cls.Config()

    def modules(self):
        return {**super().modules(), "memory": self.memory}

    def table(self) -> torch.Tensor:
        """The stored rows in unit values."""
        return self.scaler.to_unit(self.memory.rows)

    def training_step(self, batch):
        x, known, target = self.masked(batch)
        avail = known + target
        loss = torch.zeros((), device=x.device)
        if bool(self.memory.filled.any()):  # a later step: how well the stored templates
            table = self.table()  # impute this batch before storing it (honest, eps 0.03)
            p = 0.97 * table[self.memory.nearest(table, x, known)] + 0.015
            loss = (bernoulli_nll_probs(p, x, target).sum() / target.sum().clamp_min(1)).float()
        # Under torchrun every rank stores every rank's rows, so the memories stay identical.
        rows = self.scaler.from_unit(x)  # exact: the ranges already include this batch
        self.memory.write(gather_rows(rows), gather_rows(avail))
        return {"loss": loss}

    def choose_eps(self, known: torch.Tensor) -> float:
        """Leave-one-out on stored templates under these mask patterns: the eps of EPS_GRID
        giving the least Bernoulli NLL of the hidden template values."""
        idx = torch.nonzero(self.memory.filled).flatten()[:TUNE_ROWS]
        if len(idx) < 2:
            return 0.1
        table = self.table()
        rows, avail = table[idx], self.memory.avail[idx]
        pattern = known[torch.arange(len(idx), device=known.device) % len(known)]
        k, t = pattern * avail, (1 - pattern) * avail
        guess = table[self.memory.nearest(table, rows, k, exclude_self=True)]
        scores = [
            float(bernoulli_nll_probs((1 - e) * guess + e / 2, rows, t).sum()) for e in EPS_GRID
        ]
        return EPS_GRID[min(range(len(EPS_GRID)), key=scores.__getitem__)]

    def score_batch(self, x, known, target, steps, samples, **fast):
        eps = self.choose_eps(known)
        table = self.table()

        def scored(on):  # (bound, sq_err) of the template nearest on the values `on`
            guess = table[self.memory.nearest(table, x, on)]
            bound = bernoulli_nll_probs((1 - eps) * guess + eps / 2, x, target)
            return bound, (target * (guess - x) ** 2).sum(-1)

        (bound, sq_err), (o_bound, o_sq_err) = scored(known), scored(target)
        return [Scores(bound=bound, sq_err=sq_err, oracle_bound=o_bound, oracle_sq_err=o_sq_err)]

    def complete(self, x, known, steps, samples, *, draw=False, **fast):
        table = self.table()
        guess = table[self.memory.nearest(table, x, known)]
        return guess.expand(samples, *x.shape).clone()
