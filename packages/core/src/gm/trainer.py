"""The trainer interface and the component protocols.

A *trainer* is an algorithm: it builds its modules from a config and a
:class:`~gm.data.DataInfo`, owns its optimisers, and defines ``training_step``. The
engine (:mod:`gm.engine`) runs any trainer with the same device handling, logging,
checkpoints, resume and torchrun support.

Rules a trainer keeps so that checkpoints and resume are exact:
- every piece of state lives in a module (parameters or buffers), an optimiser returned
  by :meth:`Trainer.optimizers`, or :meth:`Trainer.extra_state` (JSON);
- randomness comes from torch's global generator (the engine saves and restores it);
- ``training_step`` returns tensors, not floats (``.item()`` forces a host sync; the
  engine syncs only when it logs).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from gm import distributed, fastpath
from gm.config import TrainConfig
from gm.data import DataInfo, Dataset
from gm.errors import GMError


@dataclasses.dataclass
class NoOptions:
    """Options of ``gm sample`` / ``gm evaluate`` for a trainer that takes none."""


class Trainer:
    """Base class of every training algorithm."""

    Config: ClassVar[type[TrainConfig]] = TrainConfig
    SampleOptions: ClassVar[type] = NoOptions
    EvaluateOptions: ClassVar[type] = NoOptions
    name: ClassVar[str] = "trainer"
    # Metrics of ``evaluate`` that are log-densities of one example, in nats (-1: negated);
    # ``gm evaluate`` moves them to the data's own units (:func:`gm.data.in_data_units`).
    DENSITY_METRICS: ClassVar[dict[str, float]] = {"log_likelihood": 1.0, "lower_bound": 1.0}
    # ``gm evaluate``'s line under its table (e.g. how to ask for a paper's protocol)
    EVALUATE_HINT: ClassVar[str | None] = None

    def __init__(self, config: TrainConfig, info: DataInfo, device: torch.device | str = "cpu"):
        self.config = config
        self.info = info
        self.device = torch.device(device)
        self.world = distributed.current()
        self.step = 0  # updates done before this training_step (the engine sets it)

    # --- to implement -------------------------------------------------------------
    @classmethod
    def default_config(cls, info: DataInfo) -> TrainConfig:
        """The config defaults for this data (override to choose e.g. a conv net for images)."""
        return cls.Config()

    @classmethod
    def resolve_config(
        cls, config: TrainConfig, info: DataInfo, device: torch.device
    ) -> TrainConfig:
        """The config with the choices it leaves to the device made (a width of 0 meaning
        "the device's"). :mod:`gm.build` calls it after every override and before the
        trainer is built, so ``--show-config`` and ``config.json`` show what trains;
        ``__init__`` takes its config as it is. The default: no such choices."""
        return config

    def modules(self) -> dict[str, nn.Module]:
        """Every module whose weights or buffers make up the model (saved by name)."""
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def training_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """One training step on a batch; returns scalar tensors, including ``"loss"``."""
        raise NotImplementedError

    def sample(self, n: int, options: Any) -> Any:
        raise GMError(f"model {self.name!r} does not generate samples.")

    def evaluate(self, data: Dataset, split: str, options: Any) -> dict[str, float]:
        raise GMError(f"model {self.name!r} has no evaluation.")

    @property
    def validate_every(self) -> int:
        """Every how many steps the engine calls :meth:`validate` (0: never, the default)."""
        return 0

    def validate(self, data: Dataset, run: Path, step: int) -> dict[str, float]:
        """Measure the model during training (rank 0, every :attr:`validate_every` steps):
        the metrics of one row of ``RUN/validation.jsonl``."""
        return {}

    def metric_notes(self, metrics: dict[str, float]) -> dict[str, str]:
        """How some of ``evaluate``'s metrics were measured (estimator, sample size), shown
        beside them by ``gm evaluate``'s table."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """JSON-able state outside modules and optimisers (saved for resume)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    @classmethod
    def sample_form(cls, info: DataInfo) -> str:
        """How ``gm sample`` shows samples when no ``--out`` is given: ``"picture"`` (a
        ``.png`` in the run folder: an image grid, strokes, a scatter) or ``"text"`` (what
        :meth:`write_samples` writes to a ``.txt`` file, printed on stdout)."""
        return "picture"

    def write_samples(self, samples: Any, path: Path, options: Any) -> None:
        """Write what :meth:`sample` returned: ``.npy`` raw, ``.png`` a picture."""
        from gm import pictures

        path = Path(path)
        if path.suffix == ".npy":
            np.save(path, torch.as_tensor(samples).detach().float().cpu().numpy())
        elif path.suffix == ".png":
            pictures.auto(torch.as_tensor(samples), self.info).save(path)
        else:
            raise GMError(f"cannot write samples to {path.name}; use a .png or .npy file.")

    # --- provided -----------------------------------------------------------------
    def parameters(self) -> list[nn.Parameter]:
        return [p for m in self.modules().values() for p in m.parameters()]

    def train(self, mode: bool = True) -> None:
        for m in self.modules().values():
            m.train(mode)

    def compile(self) -> None:
        for m in self.modules().values():
            m.compile()

    def adam(self, params, lr: float | None = None, **kwargs: Any) -> torch.optim.Adam:
        """THE Adam of every trainer: the fused single-kernel update where ``fused_optimizer``
        (a :data:`gm.fastpath.Switch`) turns it on (same arithmetic as the per-parameter
        loop), else foreach. ``lr`` defaults to the config's; ``kwargs`` (betas, ...) pass on."""
        fused = fastpath.use(self.config.fused_optimizer, "fused_optimizer", self.device)
        return torch.optim.Adam(
            params,
            lr=self.config.lr if lr is None else lr,
            fused=fused or None,
            foreach=None if fused else True,
            **kwargs,
        )

    def optimizer_step(
        self,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        *,
        clip: float | None = None,
        enabled: torch.Tensor | None = None,
    ) -> None:
        """Backward, average gradients over torchrun ranks, clip, step, zero.

        Only the optimiser's own parameters are reduced, clipped and stepped, and their
        stale gradients (left by another loss) are cleared before ``backward``, so one
        loss never leaks into another optimiser's update.

        ``enabled``: a 0-dim bool tensor (on the parameters' device; the same on every
        rank), or None for always. Where it is false the update is skipped -- parameters,
        moments and step counts left bit for bit as they were -- without reading it back
        to the host: a fused optimiser skips through its ``found_inf`` input (the
        mechanism ``GradScaler`` uses); any other optimiser steps and then restores every
        parameter and state tensor with ``torch.where``. Only an optimiser keeping state
        on another device than ``enabled`` (foreach Adam on CUDA keeps ``step`` on the
        host) falls back to deciding on the host, which costs one sync.
        """
        params = [p for g in optimizer.param_groups for p in g["params"]]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.all_reduce_grads(params)
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        if enabled is None:
            optimizer.step()
        elif any(g.get("fused") for g in optimizer.param_groups):
            optimizer.found_inf = (~enabled).float()  # type: ignore[attr-defined]  # 1: skip the update
            try:
                optimizer.step()
            finally:
                del optimizer.found_inf  # type: ignore[attr-defined]
        else:
            _gated_step(optimizer, params, enabled)
        optimizer.zero_grad(set_to_none=True)


def _gated_step(optimizer: torch.optim.Optimizer, params: list, enabled: torch.Tensor) -> None:
    """``optimizer.step()`` kept only where ``enabled``: every parameter and state tensor
    put back by ``torch.where`` otherwise, with no host read. State made by this very step
    (the first) goes back to zeros, a fresh optimiser's values. If the optimiser keeps a
    state tensor on another device (foreach Adam on CUDA: ``step`` on the host), the
    choice is made on the host instead (one sync) and the old state restored as it was."""
    device = enabled.device
    held = [p.detach().clone() for p in params]
    state = {id(p): {k: v.clone() for k, v in optimizer.state[p].items()} for p in params}
    optimizer.step()
    after = [v for p in params for v in optimizer.state[p].values() if torch.is_tensor(v)]
    with torch.no_grad():
        if any(v.device != device for v in after):
            if not bool(enabled):  # the documented fallback: one host read
                for p, old in zip(params, held, strict=True):
                    p.copy_(old)
                    optimizer.state[p] = state[id(p)]
            return
        for p, old in zip(params, held, strict=True):
            p.copy_(torch.where(enabled, p, old))
            for k, v in optimizer.state[p].items():
                if torch.is_tensor(v):
                    before = state[id(p)].get(k)
                    v.copy_(
                        torch.where(enabled, v, torch.zeros_like(v) if before is None else before)
                    )


@runtime_checkable
class TransitionOperator(Protocol):
    """A stochastic transition operator p_T(s'|s) (Variational Walkback)."""

    def distribution(
        self, s: torch.Tensor, temperature: float | torch.Tensor, step: int | torch.Tensor
    ) -> torch.distributions.Distribution:
        """The distribution of the next state given state ``s`` at ``temperature``;
        ``step`` indexes per-step parameters (normalisation) where the operator has them."""
        ...


class Behaviour(NamedTuple):
    """What a sequence generator did, step by step (the discriminator's input)."""

    hidden: torch.Tensor  # (B, L, H) hidden states (or pre-tanh readout activations)
    outputs: torch.Tensor  # (B, L, O) output parameters (pre-softmax logits, mixture params)


@runtime_checkable
class SequenceGenerator(Protocol):
    """A generative sequence model whose passes return behaviour step by step."""

    def teacher_forced(self, x: torch.Tensor) -> Behaviour:
        """Run on the true sequence x (B, L, ...), predicting x[:, t] from x[:, :t]."""
        ...

    def free_running(
        self, batch_size: int, steps: int, temperature: float = 1.0
    ) -> tuple[torch.Tensor, Behaviour]:
        """Feed back the model's own samples for ``steps`` steps; returns (samples, behaviour),
        the behaviour with its graph to the weights (the sampled tokens held fixed)."""
        ...

    def nll(self, behaviour: Behaviour, x: torch.Tensor) -> torch.Tensor:
        """Nats per step (B, L) of the sequence x under the outputs of ``behaviour``.
        (Scheduled sampling also calls ``scheduled(x, p_true) -> Behaviour``.)"""
        ...


@runtime_checkable
class Discriminator(Protocol):
    """Maps behaviour sequences to one logit per sequence."""

    def forward(self, behaviour: torch.Tensor) -> torch.Tensor: ...
