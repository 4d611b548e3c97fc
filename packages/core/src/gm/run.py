"""A run folder as one object that every verb opens the same way.

:class:`Run` is a run folder: its record (``config.json``), its trainer (weights loaded),
its dataset and its ``metrics.jsonl``. ``Run.open(path, device=...)`` is the one way to
load a trained run (``gm.load`` wraps it; every verb -- sample, evaluate, push, a plugin's
inpaint or impute -- uses it); the engine makes a fresh one or continues one. Torch and the
checkpoint code are imported on first use, so ``gm.Run`` stays cheap to import.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gm import hub
from gm.errors import GMError

METRICS = "metrics.jsonl"
MAX_METRICS = 2**30  # a run logging a row a step for a million steps writes ~200 MB


class MetricsFile:
    """``metrics.jsonl``: one JSON row per logged step, appended as training goes."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def _text(self) -> str:
        """The file's text ('' if there is none), read only from a regular file."""
        from gm import checkpoint

        if not os.path.lexists(self.path):
            return ""
        return checkpoint.read_regular(self.path, MAX_METRICS).decode("utf-8", "replace")

    def rows(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self._text().splitlines() if x.strip()]

    def append(self, row: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def keep_until(self, step: int) -> None:
        """Keep the rows up to ``step`` (the checkpoint a resume starts from), dropping a torn
        line (a write cut short); replaced atomically, so a kill here loses nothing."""
        from gm import checkpoint

        if not os.path.lexists(self.path):
            return
        keep = []
        for line in self._text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
                keep.append(line)
        checkpoint.write_text(self.path, "".join(ln + "\n" for ln in keep))

    def elapsed(self) -> float:
        """The wall time the rows so far took (earlier sessions of a resumed run)."""
        rows = self._text().splitlines()
        return float(json.loads(rows[-1]).get("time", 0.0)) if rows else 0.0


# What core's capabilities are called in the line refusing a verb (a plugin's capability
# brings its own: CapabilitySpec.lacks).
_LACKS = {"sample": "does not generate samples", "evaluate": "has no evaluation"}


class Run:
    """A run folder: ``path``, ``record`` (the ``config.json`` content), ``metrics`` (the
    rows of ``metrics.jsonl``), once opened with a device ``trainer``, and once asked for
    (or given by the engine) ``data``, the run's dataset."""

    def __init__(
        self, path: str | os.PathLike, *, record: dict | None = None, trainer=None, data=None
    ):
        self.path = Path(path)
        self._record = record
        self.trainer, self.data = trainer, data

    # --- opening ------------------------------------------------------------------------
    @classmethod
    def read(cls, path: str | os.PathLike) -> Run:
        """The run's record only, checked (no torch work): a wrong RUN is said first."""
        from gm import checkpoint

        folder = hub.resolve(os.fspath(path))  # a run folder, or hf://OWNER/NAME
        return cls(folder, record=checkpoint.read_record(folder))

    @classmethod
    def open(cls, path: str | os.PathLike, device: Any = "cpu") -> Run:
        """A trained run, ready to sample or evaluate: its record read afresh, its trainer
        built from it on ``device``, the last checkpoint's weights loaded, in eval mode
        (``path`` may be a :class:`Run`, which is path-like)."""
        from gm import build, checkpoint, progress

        run = cls.read(path)
        progress.status(f"loading {run.path}")  # also ends a Hub download's "fetching" line
        run.trainer = build.from_record(run.record, device, run=run.path)
        checkpoint.load_weights(run.path, run.trainer)
        run.trainer.train(False)
        progress.settle()  # loaded: the line ends before the verb's own output
        return run

    # --- what it holds ------------------------------------------------------------------
    @property
    def record(self) -> dict[str, Any]:
        if self._record is None:
            from gm import checkpoint

            self._record = checkpoint.read_record(self.path)
        return self._record

    @property
    def model(self) -> str:
        return self.record["gm_model"]

    @property
    def metrics_file(self) -> MetricsFile:
        return MetricsFile(self.path / METRICS)

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl``: step, the trainer's metrics, steps_per_s, time, lr."""
        return self.metrics_file.rows()

    def dataset(self, name: str | None = None, data_dir: str | None = None):
        """The run's own dataset with its options (loaded once), or the dataset ``name``
        with default options."""
        from gm import progress
        from gm.data import load_dataset

        if name is None and self.data is not None:
            return self.data
        progress.status(f"loading dataset {name or self.record['dataset']}")
        options = self.record.get("data_options", {}) if name is None else {}
        data = load_dataset(name or self.record["dataset"], data_dir, options)
        if name is None:
            self.data = data
        return data

    @property
    def capabilities(self) -> tuple[str, ...]:
        """What the run's model does (its :class:`~gm.specs.ModelSpec` declares it)."""
        from gm import build

        # a model not installed: the plugin to install
        build.model_spec(self.model, str(self.record.get("plugin") or ""))
        return model_capabilities(self.model)

    def require(self, capability: str) -> None:
        """One line refusing a verb the run's model cannot do."""
        if capability not in self.capabilities:
            raise GMError(lacks(self.model, capability))

    # --- as a path ----------------------------------------------------------------------
    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, name: str | os.PathLike) -> Path:
        """A file of the run: ``run / "metrics.jsonl"``."""
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"gm.Run({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)


def model_capabilities(model: str) -> tuple[str, ...]:
    """What a registered model declares it does (:func:`gm.plugins.capabilities`)."""
    from gm import plugins

    return tuple(plugins.get("models", model).capabilities)


def lacks(model: str, capability: str) -> str:
    """``model 'x' cannot inpaint; models that can: a, b.`` (from the registry)."""
    from gm import plugins

    able = [s.name for s in plugins.registry("models").values() if capability in s.capabilities]
    hint = f"; models that can: {', '.join(able)}" if able else ""
    declared = plugins.registry("capabilities").get(capability)
    phrase = _LACKS.get(capability) or (declared and declared.lacks) or f"cannot {capability}"
    return f"model {model!r} {phrase}{hint}."
