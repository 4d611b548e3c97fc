"""What every imputer shares: its config, and the trainer around a model's three parts.

Data reach a model as ``(N, D)`` values in [0, 1] ("unit" values), NaN where the data
itself has no value: a :class:`~gm_imputation.scaling.ColumnScaler` maps a vector's columns
(images are already in [0, 1]), a :class:`~gm_imputation.gallery.Gallery` keeps a few
training examples for pictures, and :mod:`gm_imputation.evaluation` is the one evaluation
protocol. A model implements ``training_step`` (on :meth:`ImputerTrainer.masked` data),
:meth:`ImputerTrainer.score_batch` (typed per-example scores) and
:meth:`ImputerTrainer.complete` (imputations).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch

from gm import masks
from gm.config import Switch, TrainConfig
from gm.data import DataInfo, Dataset
from gm.errors import GMError
from gm.trainer import Trainer
from gm_imputation import evaluation, gallery
from gm_imputation.evaluation import EvaluateOptions
from gm_imputation.nets import bernoulli_entropy, blend
from gm_imputation.scaling import ColumnScaler, meta_ranges
from gm_imputation.scores import Scores


@dataclasses.dataclass
class ImputerConfig(TrainConfig):
    mask: str = "mcar:0.5"  # the training mask spec (see gm.masks)
    scale_columns: bool = True  # vector data: min-max scale columns to [0, 1] (running, train)
    steps: int = 20_000
    batch_size: int = 128
    lr: float = 1e-3
    log_every: int = 100
    checkpoint_every: int = 2000


@dataclasses.dataclass
class SampleOptions:
    mask: str = ""  # mask spec for the gallery imputations (default: the run's)
    compile: Switch = "auto"  # primary roll-out compiled (gm.fastpath: auto = on CUDA)
    cuda_graph: Switch = "auto"  # primary roll-out as a CUDA graph (auto = on CUDA)


class ImputerTrainer(Trainer):
    """Base of every imputer: masks, scaling, gallery, evaluation and imputation."""

    Config = ImputerConfig
    EvaluateOptions = EvaluateOptions
    SampleOptions = SampleOptions
    name = "imputer"
    config: ImputerConfig
    reports_best_pass = False  # evaluation: report the last refinement pass (the VAE: best)

    def __init__(self, config: ImputerConfig, info: DataInfo, device: torch.device | str = "cpu"):
        super().__init__(config, info, device)
        if info.modality not in ("vector", "image"):
            raise GMError(
                f"imputation models need vector or image data, not {info.modality} "
                f"data ({info.name})."
            )
        self.shape = tuple(info.shape)
        self.dim = math.prod(self.shape)
        self.mask_spec = self.parse_mask(config.mask)
        running = info.modality == "vector" and config.scale_columns
        raw = meta_ranges(info.meta, self.dim)
        self.scaler = ColumnScaler(self.dim, running, raw).to(self.device)
        self.gallery = gallery.Gallery(self.dim).to(self.device)

    # --- to implement -------------------------------------------------------------------
    @property
    def refine_steps(self) -> int:
        """The number of refinement steps the model was trained with (1 if not iterative)."""
        return 1

    def score_batch(
        self,
        x: torch.Tensor,
        known: torch.Tensor,
        target: torch.Tensor,
        steps: int,
        samples: int,
        *,
        compile: Switch = "auto",
        cuda_graph: Switch = "auto",
    ) -> list[Scores]:
        """Per-example scores of the ``target`` values after each refinement pass the model
        reports: its last only (a list of one), or every pass where
        :attr:`reports_best_pass`."""
        raise NotImplementedError

    def complete(
        self,
        x: torch.Tensor,
        known: torch.Tensor,
        steps: int,
        samples: int,
        *,
        draw: bool = False,
        compile: Switch = "auto",
        cuda_graph: Switch = "auto",
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
    def parse_mask(self, spec: str) -> masks.MaskSpec:
        """``spec`` parsed and checked for this data (:mod:`gm.masks`; on vectors ``mar:K``
        is a block of K consecutive entries and ``bottom-half`` the last half)."""
        parsed = masks.parse(spec)
        parsed.check(self.shape, self.info.modality)
        return parsed

    def modules(self):
        return {"scaler": self.scaler, "gallery": self.gallery}

    def flat(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.reshape(len(batch), self.dim).float()

    def unit(self, batch: torch.Tensor) -> torch.Tensor:
        """A batch in dataset units -> (N, D) unit values (NaN kept)."""
        return self.scaler.to_unit(self.flat(batch))

    def masked(
        self, batch: torch.Tensor, missing: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A training batch in dataset units -> ``(x0, known, target)`` unit data under the
        training mask (or ``missing``, True = hidden, where the caller draws its own);
        the batch also widens the column ranges and fills the gallery once."""
        x = self.flat(batch)
        self.scaler.observe(x)
        self.gallery.fill(x)
        x = self.scaler.to_unit(x)
        if missing is None:
            missing = self.mask_spec.sample(
                len(x), self.shape, modality=self.info.modality, device=x.device
            ).reshape(len(x), self.dim)
        return masks.split_known(x, missing)

    @torch.no_grad()
    def evaluate(self, data: Dataset, split: str, options: Any) -> dict[str, float]:
        return evaluation.evaluate(self, data, split, options)

    @torch.no_grad()
    def impute(
        self,
        x: torch.Tensor,
        samples: int = 1,
        steps: int | None = None,
        missing: torch.Tensor | None = None,
        *,
        draw: bool = False,
        compile: Switch = "auto",
        cuda_graph: Switch = "auto",
    ) -> torch.Tensor:
        """Imputations ``(S, N, D)`` in unit values of the NaNs of unit data ``x`` (N, D)
        (and of ``missing`` where given); the other values are copied exactly. ``draw``:
        draws of x (multiple imputation) instead of each roll-out's mean.
        ``compile``/``cuda_graph`` switch the roll-out's fast paths (:mod:`gm.fastpath`)."""
        self.train(False)
        hide = torch.isnan(x) if missing is None else torch.isnan(x) | missing
        x0 = torch.nan_to_num(x, nan=0.0)
        known = (~hide).to(x0.dtype)
        steps = self.refine_steps if steps is None else steps
        out = self.complete(
            x0, known, steps, samples, draw=draw, compile=compile, cuda_graph=cuda_graph
        )
        return blend(x0, known, out)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        options: Any,  # a SampleOptions
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Imputations of the gallery examples (cycled to ``n``), in dataset units:
        ``(completed, masked view with missing values at 0.5, truth)``."""
        truth = self.scaler.to_unit(self.gallery.examples(n))
        spec = self.parse_mask(options.mask or self.config.mask)
        missing = spec.sample(
            n, self.shape, modality=self.info.modality, device=self.device
        ).reshape(n, self.dim)
        fast = {"compile": options.compile, "cuda_graph": options.cuda_graph}
        filled = self.impute(truth, 1, missing=missing, **fast)[0]
        view = torch.where(missing, torch.full_like(truth, 0.5), truth)
        back = lambda u: self.scaler.from_unit(u).reshape(n, *self.shape)  # noqa: E731
        return back(filled), back(view), back(truth)

    def write_samples(self, samples: Any, path: Path, options: Any) -> None:
        gallery.write(samples, path, self.info, self.scaler.to_unit)


class NetTrainer(ImputerTrainer):
    """An imputer around one network, ``self.net`` (made by :meth:`build_net`), trained by
    one Adam; data of fewer than 256 values per example (digits, tables) get the smaller
    net of :attr:`small`."""

    small: dict[str, Any] = {}

    def __init__(self, config: ImputerConfig, info: DataInfo, device: torch.device | str = "cpu"):
        super().__init__(config, info, device)
        self.net = self.build_net().to(self.device)
        self.opt = self.adam(self.net.parameters())

    def build_net(self) -> torch.nn.Module:
        raise NotImplementedError

    @classmethod
    def default_config(cls, info: DataInfo) -> ImputerConfig:
        return cls.Config(**cls.small) if math.prod(info.shape) < 256 else cls.Config()

    def modules(self):
        return {**super().modules(), "net": self.net}

    def optimizers(self):
        return {"net": self.opt}
