"""Fit an imputer on a user's own table, holes and all, then fill it (``gm impute FILE``).

This is scikit-learn's ``fit_transform`` for gm's policies: no complete rows are needed.

- The table is mixed-type (:mod:`gm_imputation.mixed`): numbers, and categories as
  one-hot values with a categorical observation model.
- The file's observed cells are the only truth. Each training step hides a random share
  of a batch's *observed* cells (a per-row MCAR rate drawn from ``Recipe.mask_rates``; a
  category's values together) on top of the real holes, and scores only the hidden
  observed cells: no loss ever reads a value the file does not have
  (:func:`gm.masks.split_known` keeps NaNs unknown and unscored).
- A share of the observed cells (``HELD_OUT``, in at most ``CHECK_ROWS`` rows) is held out
  from training altogether. The error of the *primary* policy's imputations of them -- the
  policy that fills the file, not the guide's bound -- decides which weights to keep and
  when to stop (:class:`Best`), and their RMSE, accuracy and 90%-interval coverage are
  reported to the user. They are observed, so filling uses them as known values.
- Width and batch are scaled to the table, the step budget is passes over its rows
  (:func:`sized`), so the cost grows with the table.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from gm import build, progress
from gm.config import Switch
from gm.data import DataInfo
from gm.errors import GMError
from gm_imputation import evaluation, mixed
from gm_imputation.base import ImputerTrainer
from gm_imputation.policy import GuidedPolicyTrainer

HELD_OUT = 0.1  # share of the observed cells held out for selection and stopping...
CHECK_ROWS = 1000  # ...in at most this many rows (a check scores their rows)
MIN_HELD_OUT = 30  # fewer held-out cells than this: no early stopping, the full budget
PASSES = 300  # step budget: passes over the rows (a fixed step count would cost small tables
MIN_STEPS = 800  # as much as big ones; a small table still gets this many steps)
MAX_STEPS = 5000
CHECKS = 25  # held-out checks over the budget (at least every CHECK_EVERY_MIN steps)
CHECK_EVERY_MIN = 25
CHECK_ROLLOUTS = 4  # primary roll-outs averaged for a check's point imputation
EMA = 0.99  # decay of the weight average that is checked and kept
PATIENCE = 6  # held-out checks without a better imputation error before stopping
POINT_ROLLOUTS = 16  # primary roll-outs averaged for a point imputation
INTERVAL_DRAWS = 40  # draws per row for the held-out 90% intervals
CHUNK_ROWS = 2048  # rows imputed at a time (memory: samples x rows x width activations)
MODELS = ("gpsi-add", "gpsi-jump", "lstm-add", "lstm-jump")


@dataclasses.dataclass
class Recipe:
    """The accuracy choices of a fit (each measured alone on the results page's ablation;
    the defaults are the winners)."""

    scaling: str = "minmax"  # "minmax": observed range -> [0, 1]; "standard": mean +- 4 sd
    mask_rates: tuple[float, float] = (0.1, 0.6)  # per-row MCAR rate of the training masks
    see_mask: bool = False  # the primary policy (and guide) also see which cells are known
    beta_nll: float = 0.0  # > 0: beta-NLL for the Gaussian values
    select: str = "error"  # keep/stop on the primary's held-out "error", or the "bound"

    def overrides(self) -> dict[str, Any]:
        return {"see_mask": self.see_mask, "beta_nll": self.beta_nll}


@dataclasses.dataclass
class FitReport:
    steps_run: int
    best_step: int
    seconds: float
    observation: str
    held_out: int  # held-out observed cells
    held_out_bound: float  # nats per held-out value (nan without a held-out set)
    held_out_rmse: float  # numeric cells, in units of each column's sd (nan: none)
    held_out_coverage: float  # share of held-out numeric values inside their 90% interval
    stopped_early: bool
    held_out_accuracy: float = math.nan  # category cells: share imputed right (nan: none)
    left_out: list[str] = dataclasses.field(default_factory=list)  # index-like columns


def table_info(
    values: np.ndarray, names: list[str] | None, name: str, schema=None, scaling: str = "minmax"
) -> DataInfo:
    """The DataInfo of a table of codes ``(N, C)`` with NaNs: its schema (the model sees
    ``schema.dim`` values), the raw range each model value is scaled from (a category's
    one-hot values: 0 to 1), and column names."""
    schema = schema or mixed.Schema.numeric(values, names)
    encoded = schema.encode(values)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: caught later
        lo, hi = np.nanmin(encoded, 0), np.nanmax(encoded, 0)
        if scaling == "standard":
            mid, sd = np.nanmean(encoded, 0), np.nanstd(encoded, 0)
            lo, hi = mid - 4 * sd, mid + 4 * sd
    hot = np.ones(schema.dim, dtype=bool)
    hot[_real_dims(schema)] = False
    lo, hi = np.where(hot, 0.0, lo), np.where(hot, 1.0, hi)
    meta: dict[str, Any] = {
        "column_min": lo.tolist(),
        "column_max": hi.tolist(),
        "schema": schema.to_meta(),
    }
    if names:
        meta["columns"] = list(names)
    return DataInfo(name, "vector", (schema.dim,), meta=meta)


def _real_dims(schema) -> np.ndarray:
    return np.flatnonzero(
        np.repeat([c.kind != "category" for c in schema.columns], [c.width for c in schema.columns])
    )


def budget(n: int, batch: int, max_steps: int | None) -> int:
    """Training steps: :data:`PASSES` passes over ``n`` rows, at least :data:`MIN_STEPS`,
    at most ``max_steps`` (default :data:`MAX_STEPS`)."""
    steps = max(MIN_STEPS, math.ceil(PASSES * n / batch))
    return int(min(steps, MAX_STEPS) if max_steps is None else max_steps)


def sized(n: int, d: int, max_steps: int | None) -> dict[str, Any]:
    """Config overrides scaled to an ``n x d`` table: a width that grows with the columns,
    a batch a fraction of the rows (never more than there are), a step budget in passes
    over the rows that early stopping usually cuts short."""
    batch = int(min(512, max(8, n // 4)))
    return {
        "hidden": int(min(128, max(64, 8 * d))),
        "z_dim": int(min(32, max(8, d))),
        "batch_size": batch,
        "steps": budget(n, batch, max_steps),
        "refine_steps": 3,  # 6 (the paper's mnist) cost twice as much for nothing on tables
        "lr": 3e-3,
        "scale_columns": False,  # the info's observed ranges give the scale
        "mask": "nan",  # training masks are drawn here (see the module doc)
    }


def to_unit(trainer: ImputerTrainer, raw: np.ndarray) -> torch.Tensor:
    """Raw model values (NaN = missing) -> unit values on the trainer's device, NaN kept."""
    t = torch.as_tensor(raw, dtype=torch.float32, device=trainer.device)
    return torch.where(torch.isnan(t), t, trainer.scaler.raw_to_unit(t))


def schema_of(trainer: ImputerTrainer) -> mixed.Schema:
    """The run's table schema; a run trained on a dataset (no schema): its values as real
    columns, named as the dataset names them (else unnamed: matched by position)."""
    meta = trainer.info.meta
    if "schema" in meta:
        return mixed.Schema.from_meta(meta["schema"])
    names = meta.get("columns") or [""] * trainer.dim
    return mixed.Schema([mixed.Column(n, "real") for n in names])


def column_range(trainer: ImputerTrainer) -> tuple[np.ndarray, np.ndarray]:
    """Each column's raw training range ``(C,)`` (a category: its level codes)."""
    lo, hi = (t.double().cpu().numpy() for t in trainer.scaler.raw_range())
    schema = schema_of(trainer)
    first = np.cumsum([0] + [c.width for c in schema.columns])[:-1]
    cat = np.array([c.kind == "category" for c in schema.columns])
    widths = np.array([c.width for c in schema.columns])
    return np.where(cat, 0.0, lo[first]), np.where(cat, widths - 1.0, hi[first])


def held_out_cells(observed: np.ndarray, seed: int) -> np.ndarray:
    """A boolean mask of observed cells ``(N, C)`` to hold out (none when too few would be)."""
    rng = np.random.default_rng(seed + 104729)
    pick = observed & (rng.random(observed.shape) < HELD_OUT)
    pick[rng.permutation(len(pick))[CHECK_ROWS:]] = False  # bounded cost of a check
    return pick if pick.sum() >= MIN_HELD_OUT else np.zeros_like(observed)


class Checker:
    """Scores of the primary policy's imputations of the held-out cells (each given the
    rest of its row): the imputation *error* that selection and stopping use -- per held-out
    cell, the squared error in units of the column's sd for a number, the Brier score
    ``sum_k (p_k - [k = level])^2`` for a category -- and, at the end, RMSE, accuracy, 90%
    coverage and the bound."""

    def __init__(self, trainer, x: torch.Tensor, hold_dims: torch.Tensor, values: np.ndarray):
        schema = schema_of(trainer)
        rows = hold_dims.any(1)
        self.x, self.hold = x[rows], hold_dims[rows]
        self.x0 = torch.nan_to_num(self.x)
        self.known = (~torch.isnan(self.x) & ~self.hold).float()
        real = np.zeros(schema.dim, dtype=bool)
        real[_real_dims(schema)] = True
        self.real = torch.as_tensor(real, device=x.device)
        # unit -> sd units of each real value: (raw width) / (raw sd)
        lo, hi = (t.double().cpu().numpy() for t in trainer.scaler.raw_range())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            sd = np.nanstd(schema.encode(values), 0)
        per = np.where(real & (sd > 0), (hi - lo) / np.where(sd > 0, sd, 1.0), 1.0)
        self.to_sd = torch.as_tensor(per, dtype=torch.float32, device=x.device)
        self.groups = schema.groups()
        self.n_real = float((self.hold & self.real).sum())
        self.n_cat = float(sum(self.hold[:, a].sum() for a, _ in self.groups))

    def point(self, trainer, rollouts: int) -> torch.Tensor:
        return interval_draws(trainer, self.x0, self.known, trainer.refine_steps, rollouts, False)

    @torch.no_grad()
    def error(self, trainer, rollouts: int = CHECK_ROLLOUTS) -> float:
        """Mean error per held-out cell of the point imputation (see the class doc)."""
        trainer.train(False)
        guess = self.point(trainer, rollouts).mean(0)
        sq = ((guess - self.x0) * self.to_sd) ** 2 * self.hold.float()
        return float(sq.sum()) / max(self.n_real + self.n_cat, 1.0)

    @torch.no_grad()
    def scores(self, trainer) -> dict[str, float]:
        trainer.train(False)
        steps = trainer.refine_steps
        hold = self.hold.float()
        out = {"bound": math.nan, "rmse": math.nan, "coverage": math.nan, "accuracy": math.nan}
        totals = evaluation.split_totals(trainer, self.x0, self.known, hold, steps, 2, CHUNK_ROWS)
        out["bound"] = totals[-1]["bound"] / float(hold.sum())
        guess = self.point(trainer, POINT_ROLLOUTS).mean(0)
        real = hold * self.real.float()
        if self.n_real:
            err = ((guess - self.x0) * self.to_sd) ** 2 * real
            out["rmse"] = math.sqrt(float(err.sum()) / self.n_real)
            draws = interval_draws(trainer, self.x0, self.known, steps, INTERVAL_DRAWS, True)
            lo, hi = torch.quantile(draws, 0.05, 0), torch.quantile(draws, 0.95, 0)
            inside = ((self.x0 >= lo - 1e-6) & (self.x0 <= hi + 1e-6)).float()
            out["coverage"] = float((real * inside).sum()) / self.n_real
        if self.n_cat:
            right = 0.0
            for a, k in self.groups:
                asked = self.hold[:, a]
                pick = guess[:, a : a + k].argmax(1)
                right += float((self.x0[:, a : a + k].argmax(1) == pick)[asked].sum())
            out["accuracy"] = right / self.n_cat
        return out


def interval_draws(trainer, x0, known, steps, samples, draw=True) -> torch.Tensor:
    """``(S, N, D)`` roll-outs (draws of x, or each roll-out's mean), in row chunks."""
    parts = []
    for a in range(0, len(x0), CHUNK_ROWS):
        sl = slice(a, a + CHUNK_ROWS)
        parts.append(trainer.complete(x0[sl], known[sl], steps, samples, draw=draw))
    return torch.cat(parts, 1)


class Best:
    """The weights to keep: those of the check with the least held-out imputation error
    (``select="error"``; a better bound does not count), or the least bound."""

    def __init__(self, select: str = "error"):
        self.select = select
        self.weights: Any = None  # what weights() returned for the best check so far
        self.score, self.step, self.since = math.inf, 0, 0

    def offer(self, step: int, error: float, bound: float, weights: Callable[[], Any]) -> None:
        score = error if self.select == "error" else bound
        if score < self.score:
            self.weights, self.score, self.step, self.since = weights(), score, step, 0
        else:
            self.since += 1


def fit(
    values: np.ndarray,
    *,
    model: str = "gpsi-add",
    names: list[str] | None = None,
    name: str = "table",
    seed: int = 0,
    max_steps: int | None = None,
    overrides: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
    on_check: Callable[[int, int, float], None] | None = None,
    schema: mixed.Schema | None = None,
    recipe: Recipe | None = None,
) -> tuple[ImputerTrainer, FitReport]:
    """A ``model`` trained on the observed cells of the codes ``values`` ``(N, C)`` (NaN =
    hole; ``schema`` says each column's kind, by default inferred from the numbers).
    ``on_check(step, budget, held_out_error)`` is called at every held-out check."""
    if model not in MODELS:
        raise GMError(f"--model must be one of {', '.join(MODELS)}, not {model!r}.")
    recipe = recipe or Recipe()
    schema = schema or mixed.Schema.numeric(values, names)
    n = len(values)
    info = table_info(values, names, name, schema, recipe.scaling)
    base = sized(n, schema.dim, max_steps)
    if model.startswith("gpsi"):
        # The authors' code also gives the primary policy the residual x - guess on the
        # known values (the LSTM reader has it already): on wine, diabetes and breast
        # cancer at mcar:0.2 it lowered gm's RMSE by 2-4% (a one-seed pilot, 1000 steps).
        base["primary_residual"] = True
    base.update(recipe.overrides())
    cls, cfg = build.resolve(model, info, device, overrides={**base, **(overrides or {})})
    torch.manual_seed(seed)
    trainer = build.trainer(cls, cfg, info, device)
    assert isinstance(trainer, GuidedPolicyTrainer)  # every model of MODELS trains with one
    observed = ~np.isnan(values)
    hold_np = held_out_cells(observed, seed)
    spread = torch.as_tensor(schema.dim_column(), device=trainer.device)  # column -> values
    x = to_unit(trainer, schema.encode(values))
    hold = torch.as_tensor(hold_np, device=trainer.device)[:, spread]
    train_x = x.masked_fill(hold, float("nan"))  # held-out cells are holes for training
    usable = torch.nonzero(~torch.isnan(train_x).all(1)).flatten()  # rows with evidence
    if len(usable) == 0:
        raise GMError("the table has no observed value to learn from.")
    checker = Checker(trainer, x, hold, values) if hold_np.any() else None
    every = max(CHECK_EVERY_MIN, cfg.steps // CHECKS)
    gen = torch.Generator(device=trainer.device).manual_seed(seed)
    lo, hi = recipe.mask_rates
    average = WeightAverage(trainer, EMA)
    best, start, step = Best(recipe.select), time.perf_counter(), 0
    with progress.bar(cfg.steps, "fit", unit="steps") as bar:  # a step each, no host sync
        for step in range(1, cfg.steps + 1):
            trainer.train(True)
            idx = usable[
                torch.randint(len(usable), (cfg.batch_size,), generator=gen, device=x.device)
            ]
            xb = train_x[idx]
            rate = lo + (hi - lo) * torch.rand(len(xb), 1, generator=gen, device=x.device)
            cells = torch.rand((len(xb), len(schema.columns)), generator=gen, device=x.device)
            hide = (cells < rate)[:, spread]  # a category's values are hidden together
            trainer.step = step - 1  # updates done before this one, as the engine sets it
            trainer.training_step(xb, missing=hide)  # unit values: the scale is [0, 1]
            average.update(trainer)
            if checker is not None and (step % every == 0 or step == cfg.steps):
                live = average.swap_in(trainer)
                error = checker.error(trainer)
                bound = math.nan
                if recipe.select == "bound":
                    bound = held_out_bound(trainer, checker)
                bar.goto(step, f"held-out error {error:.4g}")
                if on_check:
                    on_check(step, cfg.steps, error)
                best.offer(step, error, bound, lambda: _weights(trainer))
                _load(trainer, live)
                if best.since >= PATIENCE:
                    break
            else:
                bar.goto(step)
    stopped = step < cfg.steps
    if best.weights is None:  # no held-out check: keep the average at the end of the budget
        best.weights, best.step = average.avg, step
    _load(trainer, best.weights)
    nan = math.nan
    scores = (
        checker.scores(trainer)
        if checker is not None
        else dict.fromkeys(("bound", "rmse", "coverage", "accuracy"), nan)
    )
    trainer.train(False)
    return trainer, FitReport(
        steps_run=step,
        best_step=best.step,
        seconds=time.perf_counter() - start,
        observation=getattr(getattr(trainer, "obs", None), "name", "?"),
        held_out=int(hold_np.sum()),
        held_out_bound=scores["bound"],
        held_out_rmse=scores["rmse"],
        held_out_coverage=scores["coverage"],
        stopped_early=stopped,
        held_out_accuracy=scores["accuracy"],
    )


def held_out_bound(trainer, checker: Checker) -> float:
    """The variational bound per held-out value (the guide's; what selection used before)."""
    hold = checker.hold.float()
    totals = evaluation.split_totals(
        trainer, checker.x0, checker.known, hold, trainer.refine_steps, 2, CHUNK_ROWS
    )
    return totals[-1]["bound"] / float(hold.sum())


def _weights(trainer) -> dict[str, dict[str, torch.Tensor]]:
    return {k: copy.deepcopy(m.state_dict()) for k, m in trainer.modules().items()}


def _load(trainer, weights: dict[str, dict[str, torch.Tensor]]) -> None:
    for key, module in trainer.modules().items():
        module.load_state_dict(weights[key])


class WeightAverage:
    """An exponential moving average of the trainer's parameters (buffers -- column ranges,
    the gallery -- are copied as they are): the averaged weights are what is checked on the
    held-out cells and kept, which smooths the step-to-step noise of small batches on small
    tables."""

    def __init__(self, trainer, decay: float):
        self.decay, self.updates = decay, 0
        self.avg = _weights(trainer)

    @torch.no_grad()
    def update(self, trainer) -> None:
        # warm-up: early on the average is over the updates so far, not the initial weights
        self.updates += 1
        decay = min(self.decay, self.updates / (self.updates + 9))
        for key, module in trainer.modules().items():
            learned = {name for name, _ in module.named_parameters()}
            for name, value in module.state_dict().items():
                if name in learned and value.is_floating_point():
                    self.avg[key][name].lerp_(value, 1 - decay)
                else:
                    self.avg[key][name].copy_(value)

    def swap_in(self, trainer) -> dict[str, dict[str, torch.Tensor]]:
        """Load the averaged weights; returns the live ones (to load back)."""
        live = _weights(trainer)
        _load(trainer, self.avg)
        return live


@torch.no_grad()
def fill(
    trainer: ImputerTrainer,
    values: np.ndarray,
    write: Callable[[int, int, np.ndarray], None],
    *,
    samples: int = 1,
    average: bool = False,
    steps: int | None = None,
    compile: Switch = "auto",
    cuda_graph: Switch = "auto",
) -> None:
    """Fill the NaNs of the codes ``values`` ``(N, C)`` chunk by chunk, calling
    ``write(k, first_row, rows)`` with the codes of imputation k.

    ``samples`` = 1: the point imputation, the mean of :data:`POINT_ROLLOUTS` roll-outs'
    means (an estimate of E[x_missing | x_observed]; a category: its most probable level).
    ``samples`` = S > 1: S draws of x (multiple imputation), or with ``average`` the mean
    of S roll-outs' means. Observed values are copied from ``values`` exactly.
    """
    fast: dict[str, Any] = {"compile": compile, "cuda_graph": cuda_graph}
    schema = schema_of(trainer)
    point = samples == 1 or average
    # Sample-major, so a text output can write imputation 1's rows, then imputation 2's...
    jobs = [
        (k, a) for k in range(1 if point else samples) for a in range(0, len(values), CHUNK_ROWS)
    ]
    for k, a in progress.track(jobs, len(jobs), "impute"):  # a chunk of rows each
        raw = values[a : a + CHUNK_ROWS]
        unit = to_unit(trainer, schema.encode(raw))
        if point:
            rollouts = POINT_ROLLOUTS if samples == 1 else samples
            out = trainer.impute(unit, rollouts, steps, **fast).mean(0)
        else:
            out = trainer.impute(unit, 1, steps, draw=True, **fast)[0]
        back = schema.decode(trainer.scaler.unit_to_raw(out).double().cpu().numpy())
        write(k, a, np.where(np.isnan(raw), back, raw))  # observed values exactly
