"""The Python API: ``gm.train``, ``gm.load``, ``Model.sample`` and ``Model.evaluate``.

``gm.train`` is the one way to train (``gm train`` calls it) and ``gm.load`` (over
:meth:`Run.open`) the one way to load: a thin layer over the engine and run folders, so a run made
here is a run folder like any other (``gm sample RUN`` works on it, and the reverse).
:class:`Run` (:mod:`gm.run`) is a run folder; :class:`Model` is a loaded, trained model. Documented on
one page: docs/python-api.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gm.errors import GMError
from gm.run import Run

__all__ = ["Model", "Run", "as_dataset", "load", "train"]


class Model:
    """A trained model, ready to sample and evaluate (wraps the run's trainer)."""

    def __init__(self, trainer: Any, run: Path, record: dict[str, Any]):
        self.trainer, self.run, self.record = trainer, run, record

    @classmethod
    def of(cls, opened: Run) -> Model:
        """The model of an opened :class:`Run`."""
        return cls(opened.trainer, opened.path, opened.record)

    @property
    def name(self) -> str:
        return self.record["gm_model"]

    @property
    def config(self) -> Any:
        return self.trainer.config

    def __repr__(self) -> str:
        return (
            f"gm.Model({self.name!r}, trained on {self.record['dataset']!r}, run={str(self.run)!r})"
        )

    def _options(self, cls: type, options: dict[str, Any], verb: str) -> Any:
        from gm import config as configs

        return configs.override(cls(), options, source=f"{verb}() of {self.name}", what="option")

    def sample(self, n: int = 64, *, seed: int | None = None, **options: Any) -> Any:
        """``n`` samples (a tensor for most models). ``options`` are the model's sample
        options (``gm list-models NAME`` lists them), e.g. ``steps=``, ``temperature=``."""
        import torch

        from gm.engine import seed_everything

        if n < 1:
            raise GMError("n must be at least 1.")
        opts = self._options(self.trainer.SampleOptions, options, "sample")
        if seed is not None:
            seed_everything(seed)
        with torch.no_grad():
            return self.trainer.sample(n, opts)

    def save_samples(self, samples: Any, path: str | os.PathLike, **options: Any) -> Path:
        """Write samples as the CLI does: ``.png`` a picture, ``.npy`` the array."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        opts = self._options(self.trainer.SampleOptions, options, "save_samples")
        self.trainer.write_samples(samples, path, opts)
        return path

    def evaluate(
        self, data: Any = None, split: str = "test", *, seed: int = 0, **options: Any
    ) -> dict[str, float]:
        """Metrics on a split of ``data``: None (the run's dataset), a dataset name, a
        :class:`gm.data.Dataset`, or a tensor of examples (evaluated as ``split``)."""
        from gm.data import load_dataset
        from gm.engine import seed_everything

        if data is None:
            dataset = Run(self.run, record=self.record).dataset()
        elif isinstance(data, str):
            dataset = load_dataset(data, None, {})
        else:
            dataset = as_dataset(data, name=self.record["data"]["name"], split=split)
        opts = self._options(self.trainer.EvaluateOptions, options, "evaluate")
        seed_everything(seed)
        return self.trainer.evaluate(dataset, split, opts)


def load(run: str | os.PathLike, device: str = "auto") -> Model:
    """A trained model from a run folder, ``hf://OWNER/NAME`` or ``OWNER/NAME``."""
    from gm import distributed

    return Model.of(Run.open(run, distributed.choose_device(device)))


def as_dataset(data: Any, *, name: str = "tensor", split: str = "train") -> Any:
    """A :class:`gm.data.Dataset` from a Dataset, a tensor/array, or a dict of splits.

    A tensor's modality follows its dtype and shape: integer (N, L) token sequences,
    uint8 or float (N, C, H, W) images, float (N, L, 3) pen strokes, float (N, D) vectors.
    A lone tensor becomes ``split`` (for training: the last 10% become ``test``).
    """
    import torch

    from gm.data import DataInfo, Dataset

    if isinstance(data, Dataset):
        return data
    splits = dict(data) if isinstance(data, dict) else None
    if splits is None:
        x = torch.as_tensor(data)
        if split == "train" and len(x) >= 10:
            cut = len(x) - len(x) // 10
            splits = {"train": x[:cut], "test": x[cut:]}
        else:
            splits = {split: x}
    splits = {k: torch.as_tensor(v) for k, v in splits.items()}
    first = next(iter(splits.values()))
    if first.ndim < 2:
        raise GMError(
            f"data must have one row per example, got a tensor of shape {tuple(first.shape)}."
        )
    if not first.dtype.is_floating_point and first.dtype != torch.uint8:
        info = DataInfo(
            name, "sequence", tuple(first.shape[1:]), int(max(v.max() for v in splits.values())) + 1
        )
        splits = {k: v.long() for k, v in splits.items()}
    elif first.ndim == 4:
        info = DataInfo(name, "image", tuple(first.shape[1:]))
    elif first.ndim == 3 and first.shape[-1] == 3:
        info = DataInfo(name, "strokes", tuple(first.shape[1:]))
    elif first.ndim == 2:
        info = DataInfo(name, "vector", tuple(first.shape[1:]))
        splits = {k: v.float() for k, v in splits.items()}
    else:
        raise GMError(
            f"cannot tell what data of shape {tuple(first.shape)} is; give (N, D) vectors, "
            "(N, C, H, W) images, (N, L) integer tokens or (N, L, 3) strokes."
        )
    try:
        return Dataset(info, splits)
    except ValueError as err:
        raise GMError(f"the splits of data disagree: {err}.") from None


def train(
    model: str,
    data: Any = None,
    *,
    steps: int | None = None,
    out: str | os.PathLike | None = None,
    device: str = "auto",
    seed: int | None = None,
    progress: bool = True,
    report_to: tuple[str, ...] = (),
    data_options: dict[str, Any] | None = None,
    max_time: float | str | None = None,
    config_file: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    data_dir: str | None = None,
    _source: str = "",
    **config: Any,
) -> Run:
    """Train ``model`` (a name from ``gm list-models``) on ``data`` (a dataset name, a
    ``images:DIR``-style source, a :class:`gm.data.Dataset`, a tensor or a dict of split
    tensors); ``config`` keys override the model's config (``lr=1e-3``), after those of
    ``config_file`` (TOML). ``max_time`` (seconds, or ``"10m"``, ``"1h30m"``) stops at the
    first step boundary after that much training, with that step saved. ``resume`` (with
    ``data`` None) continues that run with its own config, data and seed; only ``steps``
    may change. ``seed`` defaults to 0. Returns the run. ``gm train`` calls this, so both
    check a request the same way (:func:`gm.request.check`) before anything is built."""
    from gm.request import TrainRequest, check

    dataset = data if data is None or isinstance(data, str) else as_dataset(data)
    request = TrainRequest(
        model,
        dataset,
        steps=steps,
        out=None if out is None else Path(out),
        overrides=config,
        config_file=None if config_file is None else os.fspath(config_file),
        device=device,
        seed=seed,
        resume=None if resume is None else Path(resume),
        data_dir=data_dir,
        data_options=data_options or {},
        progress=progress,
        report_to=tuple(report_to),
        max_time=max_time,
        source=_source or f"gm.train({model!r}, ...)",  # the CLI: "--set"
    )
    request = check(request)  # the config keys before torch is imported
    from gm import engine

    return Run(engine._execute(request))
