"""What every imputer shares: config, column scaling, masks, evaluation, imputation.

Data reach a model as ``(N, D)`` values in [0, 1] ("unit" values), NaN where the data
itself has no value. Images are already in [0, 1]. Vector data are min-max scaled per
column by a :class:`DataState` the model carries in its checkpoint (running min/max over
the training batches; a dataset that arrives scaled, like gm-datasets' ``array:FILE``,
records its raw ranges in ``info.meta`` and the model keeps those too), so a run can take
a user's raw ``.csv`` and give back raw values.

Subclasses implement :meth:`ImputerTrainer.update` (one training update on masked data),
:meth:`ImputerTrainer.score_batch` (per-example sums for evaluation) and
:meth:`ImputerTrainer.complete` (imputations).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gm import distributed, masks
from gm.config import TrainConfig
from gm.data import DataInfo, Dataset
from gm.errors import GMError
from gm.trainer import Trainer
from gm_imputation.nets import bernoulli_entropy

GALLERY = 16  # training examples kept in the checkpoint for sample pictures


@dataclasses.dataclass
class ImputerConfig(TrainConfig):
    mask: str = "mcar:0.5"  # the training mask spec (see gm.masks)
    scale_columns: bool = True  # vector data: min-max scale columns to [0, 1] (running, train)
    steps: int = 20_000
    batch_size: int = 128
    lr: float = 1e-3
    log_every: int = 100
    checkpoint_every: int = 2000


@dataclasses.dataclass(frozen=True)
class Fast:
    """Switches of the imputation roll-out's fast paths (see ``policy.PrimaryRollout``):
    ``None`` is the default, on CUDA only (:func:`gm.fastpath.wanted`). Models without a
    roll-out to speed up ignore them."""

    compile: bool | None = None  # torch.compile the whole fixed-step roll-out
    cuda_graph: bool | None = None  # on CUDA: replay the roll-out as one CUDA graph


@dataclasses.dataclass
class EvaluateOptions:
    mask: str = ""  # mask spec to evaluate under (default: the run's training mask)
    samples: int = 10  # rollouts per example, averaged for the bound and the RMSE point estimate
    steps: tuple[int, ...] = ()  # refinement steps (default: the trained number); several = a study
    mask_seed: int = 0  # the masks depend on this seed only, so every model sees the same ones
    batch_size: int = 500
    limit: int = 0  # evaluate the first N examples only (0: all)
    compile: bool | None = None  # primary roll-out compiled (default: on CUDA only)
    cuda_graph: bool | None = None  # primary roll-out as a CUDA graph (default: on CUDA)


@dataclasses.dataclass
class SampleOptions:
    mask: str = ""  # mask spec for the gallery imputations (default: the run's)
    compile: bool | None = None  # primary roll-out compiled (default: on CUDA only)
    cuda_graph: bool | None = None  # primary roll-out as a CUDA graph (default: on CUDA)


def meta_ranges(meta: dict[str, Any], dim: int) -> tuple[list[float], list[float]] | None:
    """Raw per-column (min, max) recorded by a dataset that scaled its columns to [0, 1]."""
    for lo_key, hi_key in (("column_min", "column_max"), ("col_min", "col_max"), ("min", "max")):
        lo, hi = meta.get(lo_key), meta.get(hi_key)
        if (
            isinstance(lo, list | tuple)
            and isinstance(hi, list | tuple)
            and len(lo) == len(hi) == dim
        ):
            return [float(v) for v in lo], [float(v) for v in hi]
    scaling = meta.get("scaling")
    if isinstance(scaling, dict):
        return meta_ranges(scaling, dim)
    return None


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Every rank's rows of ``x`` under torchrun (the same result on every rank), else x."""
    world = distributed.current()
    if not world.distributed:
        return x
    parts = [torch.empty_like(x) for _ in range(world.size)]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts)


class DataState(nn.Module):
    """Column scaling and a few gallery examples, as buffers (so they are in the checkpoint).

    raw --(raw_lo, raw_hi from the dataset's meta)--> dataset units --(lo, hi)--> [0, 1]
    """

    def __init__(self, dim: int, running: bool, raw: tuple[list[float], list[float]] | None):
        super().__init__()
        self.running = running
        # Running ranges start empty (lo = +inf, hi = -inf) and widen with each batch.
        self.register_buffer("lo", torch.full((dim,), math.inf) if running else torch.zeros(dim))
        self.register_buffer("hi", torch.full((dim,), -math.inf) if running else torch.ones(dim))
        self.register_buffer("raw_lo", torch.tensor(raw[0]) if raw else torch.zeros(dim))
        self.register_buffer("raw_hi", torch.tensor(raw[1]) if raw else torch.ones(dim))
        self.register_buffer("gallery", torch.zeros(GALLERY, dim))
        self.register_buffer("gallery_set", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        """Widen the running column ranges by a training batch ``(B, D)`` (NaN-aware)."""
        if not self.running:
            return
        lo = torch.nan_to_num(x, nan=math.inf).amin(0)
        hi = torch.nan_to_num(x, nan=-math.inf).amax(0)
        if distributed.current().distributed:
            torch.distributed.all_reduce(lo, op=torch.distributed.ReduceOp.MIN)
            torch.distributed.all_reduce(hi, op=torch.distributed.ReduceOp.MAX)
        torch.minimum(self.lo, lo, out=self.lo)
        torch.maximum(self.hi, hi, out=self.hi)

    def span(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(low, width) of each column in dataset units; an unseen column maps as [0, 1]."""
        seen = torch.isfinite(self.lo) & torch.isfinite(self.hi)
        lo = torch.where(seen, self.lo, torch.zeros_like(self.lo))
        width = torch.where(seen & (self.hi > self.lo), self.hi - self.lo, torch.ones_like(self.lo))
        return lo, width

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        lo, width = self.span()
        return ((x - lo) / width).clamp(0, 1)

    def from_unit(self, u: torch.Tensor) -> torch.Tensor:
        lo, width = self.span()
        return lo + u * width

    def raw_to_unit(self, raw: torch.Tensor) -> torch.Tensor:
        width = torch.where(
            self.raw_hi > self.raw_lo, self.raw_hi - self.raw_lo, torch.ones_like(self.raw_lo)
        )
        return self.to_unit((raw - self.raw_lo) / width)

    def unit_to_raw(self, u: torch.Tensor) -> torch.Tensor:
        width = torch.where(
            self.raw_hi > self.raw_lo, self.raw_hi - self.raw_lo, torch.ones_like(self.raw_lo)
        )
        return self.raw_lo + self.from_unit(u) * width

    def raw_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw values each column took in training (what the model can speak for)."""
        return self.unit_to_raw(torch.zeros_like(self.lo)), self.unit_to_raw(
            torch.ones_like(self.lo)
        )


class ImputerTrainer(Trainer):
    """Base of every imputer: masks, scaling, evaluation and imputation around a model."""

    Config = ImputerConfig
    EvaluateOptions = EvaluateOptions
    SampleOptions = SampleOptions
    name = "imputer"

    def __init__(self, config: ImputerConfig, info: DataInfo, device: torch.device | str = "cpu"):
        super().__init__(config, info, device)
        if info.modality not in ("vector", "image"):
            raise GMError(
                f"imputation models need vector or image data, not {info.modality} "
                f"data ({info.name})."
            )
        self.shape = tuple(info.shape)
        self.dim = math.prod(self.shape)
        self.mask_spec = masks.parse(config.mask)
        self.mask_spec.check(self.shape, info.modality)
        running = info.modality == "vector" and config.scale_columns
        self.state = DataState(self.dim, running, meta_ranges(info.meta, self.dim)).to(self.device)
        self._gallery_ready: bool | None = None

    # --- to implement -------------------------------------------------------------------
    @property
    def refine_steps(self) -> int:
        """The number of refinement steps the model was trained with (1 if not iterative)."""
        return 1

    def update(
        self, x: torch.Tensor, known: torch.Tensor, target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """One training update on unit data ``x`` (NaN-free), float masks ``known``/``target``."""
        raise NotImplementedError

    def score_batch(
        self,
        x: torch.Tensor,
        known: torch.Tensor,
        target: torch.Tensor,
        steps: int,
        samples: int,
        fast: Fast = Fast(),
    ) -> dict[str, torch.Tensor]:
        """Per-example sums for evaluation: ``bound`` (NLL bound of the targets), ``sq_err``
        (squared error of the point imputation on the targets) and any model extras."""
        raise NotImplementedError

    def complete(
        self,
        x: torch.Tensor,
        known: torch.Tensor,
        steps: int,
        samples: int,
        fast: Fast = Fast(),
        draw: bool = False,
    ) -> torch.Tensor:
        """``samples`` imputations ``(S, N, D)`` in [0, 1] of the values not ``known``: each
        roll-out's mean, or with ``draw`` a draw of x from its observation model (models
        without one give their point imputation either way)."""
        raise NotImplementedError

    def floor(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
        """The least NLL any model can give the targets under this model's scoring, per
        example (the Bernoulli entropy), or None where there is no such floor."""
        return bernoulli_entropy(x, target)

    # --- shared -------------------------------------------------------------------------
    def flat(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.reshape(len(batch), self.dim).float()

    def unit(self, batch: torch.Tensor) -> torch.Tensor:
        """A batch in dataset units -> (N, D) unit values (NaN kept)."""
        return self.state.to_unit(self.flat(batch))

    def training_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.flat(batch)
        self.state.observe(x)
        self._fill_gallery(x)
        x = self.state.to_unit(x)
        missing = self.mask_spec.sample(
            len(x), self.shape, modality=self.info.modality, device=x.device
        ).reshape(len(x), self.dim)
        x0, known, target = masks.split_known(x, missing)
        return self.update(x0, known, target)

    def _fill_gallery(self, x: torch.Tensor) -> None:
        if self._gallery_ready is None:
            self._gallery_ready = bool(self.state.gallery_set.item())  # once per process
        if self._gallery_ready:
            return
        rows = gather_rows(x)[:GALLERY]  # the same examples on every rank
        self.state.gallery[: len(rows)] = rows
        self.state.gallery_set.fill_(True)
        self._gallery_ready = True

    def draw_masks(self, n: int, spec: str, seed: int) -> torch.Tensor:
        """Evaluation masks ``(n, D)``: a function of (spec, seed) alone, the same for all models."""
        parsed = masks.parse(spec)
        gen = torch.Generator().manual_seed(seed)
        return parsed.sample(
            n, self.shape, modality=self.info.modality, generator=gen, device=self.device
        ).reshape(n, self.dim)

    @torch.no_grad()
    def evaluate(self, data: Dataset, split: str, options: EvaluateOptions) -> dict[str, float]:
        if tuple(data.info.shape) != self.shape:
            raise GMError(
                f"this run was trained on examples of shape {self.shape}; "
                f"{data.info.name!r} has shape {tuple(data.info.shape)}."
            )
        if options.samples < 1 or options.batch_size < 1:
            raise GMError("--samples and --batch-size must be at least 1.")
        if any(t < 0 for t in options.steps):
            raise GMError("--steps must be non-negative numbers of refinement steps.")
        self.train(False)
        x = self.unit(data.tensor(split, self.device))
        if options.limit:
            x = x[: options.limit]
        missing = self.draw_masks(len(x), options.mask or self.config.mask, options.mask_seed)
        x0, known, target = masks.split_known(x, missing)
        n_target = float(target.sum())
        if n_target == 0:
            raise GMError(
                f"the mask {options.mask or self.config.mask!r} hides no observed value "
                f"of {data.info.name!r}; choose a mask that drops something."
            )
        common = {
            "n_examples": float(len(x)),
            "n_missing": n_target,
            "drop_rate": n_target / float((~torch.isnan(x)).sum()),
        }
        floor = self.floor(x0, target)
        if floor is not None:
            common["floor_per_value"] = float(floor.sum()) / n_target
        # One --steps value replaces the trained number; several are a study: each gives
        # metric@T keys, and the plain keys stay those of the trained number of steps.
        study = len(options.steps) > 1
        main = options.steps[0] if len(options.steps) == 1 else self.refine_steps
        fast = Fast(options.compile, options.cuda_graph)
        out: dict[str, float] = {}
        for steps in dict.fromkeys((main, *options.steps)):
            totals: dict[str, float] = {}
            for a in range(0, len(x), options.batch_size):
                sl = slice(a, a + options.batch_size)
                part = self.score_batch(x0[sl], known[sl], target[sl], steps, options.samples, fast)
                for k, v in part.items():
                    totals[k] = totals.get(k, 0.0) + float(v.double().sum())
            metrics = self.summarise(totals, n_target, len(x), common["drop_rate"])
            if steps == main:
                out.update({**metrics, "steps": float(steps)})
            if study and steps in options.steps:
                out.update({f"{k}@{steps}": v for k, v in metrics.items()})
        return {**out, **common}

    def summarise(
        self, totals: dict[str, float], n_target: float, n: int, drop_rate: float
    ) -> dict[str, float]:
        """Totals over the split -> metrics; ``X_bound`` and ``X_sq_err`` give
        ``X_nll_per_value``, ``X_nll_paper`` and ``X_rmse_missing`` for each prefix X."""
        out: dict[str, float] = {}
        for key, total in totals.items():
            if key.endswith("bound"):
                pre = key[: -len("bound")]
                out[pre + "nll_per_value"] = total / n_target
                out[pre + "nll_paper"] = total / n / drop_rate
            elif key.endswith("sq_err"):
                out[key[: -len("sq_err")] + "rmse_missing"] = math.sqrt(total / n_target)
            else:
                out[key + "_per_value"] = total / n_target
        return out

    @torch.no_grad()
    def impute(
        self,
        x: torch.Tensor,
        samples: int = 1,
        steps: int | None = None,
        missing: torch.Tensor | None = None,
        *,
        draw: bool = False,
        compile: bool | None = None,
        cuda_graph: bool | None = None,
    ) -> torch.Tensor:
        """Imputations ``(S, N, D)`` in unit values of the NaNs of unit data ``x`` (N, D)
        (and of ``missing`` where given); the other values are copied exactly. ``draw``:
        draws of x (multiple imputation) instead of each roll-out's mean.
        ``compile``/``cuda_graph`` switch the roll-out's fast paths (:class:`Fast`)."""
        self.train(False)
        hide = torch.isnan(x) if missing is None else torch.isnan(x) | missing
        x0 = torch.nan_to_num(x, nan=0.0)
        known = (~hide).to(x0.dtype)
        steps = self.refine_steps if steps is None else steps
        out = self.complete(x0, known, steps, samples, Fast(compile, cuda_graph), draw=draw)
        return known * x0 + (1 - known) * out

    @torch.no_grad()
    def sample(
        self, n: int, options: SampleOptions
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Imputations of the gallery examples (cycled to ``n``), in dataset units:
        ``(completed, masked view with missing values at 0.5, truth)``."""
        truth = self.state.to_unit(
            self.state.gallery[torch.arange(n, device=self.device) % GALLERY]
        )
        spec = masks.parse(options.mask or self.config.mask)
        missing = spec.sample(
            n, self.shape, modality=self.info.modality, device=self.device
        ).reshape(n, self.dim)
        filled = self.impute(
            truth, 1, missing=missing, compile=options.compile, cuda_graph=options.cuda_graph
        )[0]
        view = torch.where(missing, torch.full_like(truth, 0.5), truth)
        back = lambda u: self.state.from_unit(u).reshape(n, *self.shape)  # noqa: E731
        return back(filled), back(view), back(truth)

    def write_samples(self, samples: Any, path: Path, options: Any) -> None:
        from gm import pictures

        filled, view, truth = samples if isinstance(samples, tuple) else (samples, None, None)
        path = Path(path)
        if path.suffix == ".npy":
            np.save(path, filled.detach().float().cpu().numpy())
        elif path.suffix == ".png" and self.info.modality == "image" and view is not None:
            # blocks of 8 examples: a row of truths, of masked inputs, of imputations
            per = min(8, len(filled))
            blocks = [
                torch.cat([t[i : i + per] for t in (truth, view, filled)])
                for i in range(0, min(len(filled) // per, 4) * per, per)  # up to 32 examples
            ]
            pictures.image_grid(
                torch.cat(blocks),
                nrow=per,
                scale=pictures.scale_for(self.shape[-1]),
                row_labels=["truth", "masked (grey)", "imputed"],
            ).save(path)
        elif path.suffix == ".png" and self.info.modality == "vector" and view is not None:
            # rows = examples, columns = features (unit scale): truth | masked | imputed
            panels = [
                torch.nan_to_num(self.state.to_unit(t.reshape(len(t), -1)), nan=0.5)
                for t in (truth, view, filled)
            ]
            gap = torch.ones(len(filled), 1, device=filled.device)
            table = torch.cat([panels[0], gap, panels[1], gap, panels[2]], 1)
            scale = max(2, min(16, 512 // table.shape[1]))
            pictures.image_grid(
                table[None, None],
                nrow=1,
                scale=scale,
                title="a row per example; columns: truth | masked (grey) | imputed",
            ).save(path)
        elif path.suffix == ".png":
            pictures.auto(filled, self.info).save(path)
        else:
            raise GMError(f"cannot write samples to {path.name}; use a .png or .npy file.")
