"""Experiment loggers: each metrics row of a run goes to ``metrics.jsonl`` and to every
logger named by ``--report-to`` (registered through the ``gm_loggers`` hook, so W&B or
MLflow can be a third-party plugin). TensorBoard is built in.

A logger is a class ``Logger(run: Path, record: dict)`` with ``log(step, row)`` and
``close()``; ``record`` is the run's ``config.json`` content (model, dataset, config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from gm import plugins
from gm.errors import GMError


class Logger(Protocol):
    def log(self, step: int, row: dict[str, float]) -> None: ...

    def close(self) -> None: ...


def open_loggers(names: tuple[str, ...] | list[str], run: Path, record: dict[str, Any]) -> list:
    """One logger per name (unknown names: one error with the close names)."""
    specs = [plugins.get("loggers", n) for n in names]  # all checked before any opens
    return [spec.load()(Path(run), record) for spec in specs]


class TensorBoard:
    """Scalars under ``RUN/tensorboard`` (``tensorboard --logdir RUN``)."""

    def __init__(self, run: Path, record: dict[str, Any]):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise GMError(
                "--report-to tensorboard needs the tensorboard package: "
                "pip install 'gm-core[tensorboard]'."
            ) from None
        self.writer = SummaryWriter(str(Path(run) / "tensorboard"))
        self.writer.add_text(
            "config", "\n".join(f"    {k} = {v!r}" for k, v in record.get("config", {}).items())
        )

    def log(self, step: int, row: dict[str, float]) -> None:
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()
