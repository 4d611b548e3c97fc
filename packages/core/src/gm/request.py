"""A training request, and its one check: what ``gm train`` and ``gm.train`` both ask for.

:class:`TrainRequest` is built by the CLI or the Python API; :func:`check` is the only place
it is validated (the resume rules, the model, the config keys and values, the data's
modality, the recipe), before any data is loaded or any model built, and the config keys
before torch is imported (a mistyped ``--set`` answers at once). The engine then carries out
the checked request (:mod:`gm.build` resolves its config and builds its trainer).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gm import config as configs
from gm import describe, plugins
from gm.config import parse_duration
from gm.errors import GMError


@dataclass(frozen=True)
class TrainRequest:
    """Everything one training asks for. ``dataset`` is a name (``"swiss-roll"``,
    ``"images:DIR"``), an in-memory :class:`gm.data.Dataset`, or None with ``resume`` (the
    run's own model, dataset, seed and options apply; only ``steps`` may change). ``seed``
    None is 0 for a fresh run. ``source`` names where ``overrides`` came from in messages."""

    model: str
    dataset: Any = None
    steps: int | None = None
    out: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    config_file: str | None = None
    device: str = "auto"
    seed: int | None = None
    resume: Path | None = None
    data_dir: str | None = None
    data_options: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    report_to: tuple[str, ...] = ()
    max_time: float | str | None = None  # seconds, or "90s" / "10m" / "1h30m"
    source: str = field(default="--set", compare=False)  # for messages only

    def __post_init__(self) -> None:
        # one normal form whoever built it (paths as Path, plain dicts and tuples)
        fix = {
            "dataset": self.dataset if self.dataset != "" else None,
            "out": None if self.out is None else Path(self.out),
            "resume": None if self.resume is None else Path(self.resume),
            "config_file": None if self.config_file is None else str(self.config_file),
            "overrides": dict(self.overrides or {}),
            "data_options": dict(self.data_options or {}),
            "report_to": tuple(self.report_to or ()),
            "max_time": None if self.max_time is None else parse_duration(self.max_time),
        }
        for name, value in fix.items():
            object.__setattr__(self, name, value)

    @property
    def dataset_name(self) -> str:
        """The dataset as a run records it (an in-memory dataset: its own name)."""
        return self.dataset if isinstance(self.dataset, str) else self.dataset.info.name


def check(request: TrainRequest) -> TrainRequest:
    """The request, checked, with a resume's own model, dataset, seed and data options
    filled in (a fresh run's seed None made 0); a :class:`GMError` naming the first thing
    wrong. Nothing is loaded or built here."""
    spec = plugins.get("models", request.model)
    if request.steps is not None:  # as an integer (the CLI's --set steps=N is a string)
        steps = configs.check_values(
            configs.TrainConfig, {"steps": request.steps}, source="--steps", what="option"
        )["steps"]
        request = dataclasses.replace(request, steps=steps)
    describe.check_keys(spec, request.overrides, source=request.source)  # before torch
    toml = configs.read_toml(request.config_file) if request.config_file else {}
    describe.check_keys(spec, toml, source=str(request.config_file))
    for name in request.report_to:
        plugins.get("loggers", name)
    request = _resumed(request) if request.resume is not None else _fresh(request, spec)
    cls = plugins.load(spec)
    listed = f"gm train {request.model} --help"
    configs.check_values(cls.Config, toml, source=str(request.config_file), listed=listed)
    configs.check_values(cls.Config, request.overrides, source=request.source, listed=listed)
    if request.resume is None:
        recipe_name(spec, {**toml, **request.overrides}, "")  # a recipe the model has
    return request


def _fresh(request: TrainRequest, spec: Any) -> TrainRequest:
    if request.dataset is None:
        raise GMError(
            f"gm train {spec.name} needs --dataset NAME (see gm list-datasets), "
            "or --resume RUN to continue a run."
        )
    kind = _modality(request.dataset)
    if spec.modalities and kind not in spec.modalities:
        raise GMError(
            f"model {spec.name!r} trains on {'/'.join(spec.modalities)} data; "
            f"dataset {request.dataset_name!r} is {kind} data."
        )
    return dataclasses.replace(request, seed=request.seed or 0)


def _modality(dataset: Any) -> str:
    """What kind of data a dataset holds, from its registry record (nothing loaded)."""
    if not isinstance(dataset, str):
        return dataset.info.modality
    kind, colon, _ = dataset.partition(":")
    return plugins.get("datasets", kind if colon else dataset).modality


def _resumed(request: TrainRequest) -> TrainRequest:
    """A resume takes the run's own model, dataset, seed and options; only steps change."""
    given = [
        name
        for name, value in (
            ("--dataset", request.dataset),
            ("--seed", request.seed),
            ("--data-option", request.data_options),
            ("--out", request.out),
            ("--set", request.overrides),
            ("--config", request.config_file),
        )
        if value not in (None, {}, "")
    ]
    if given:
        raise GMError(
            f"--resume continues {request.resume} with its own config, dataset, seed and "
            f"folder; drop {', '.join(given)} (only --steps may change)."
        )
    from gm.run import Run  # reads checkpoint files: torch

    record = Run.read(request.resume).record  # type: ignore[arg-type]
    made_by = record["gm_model"]
    if made_by != request.model:
        raise GMError(
            f"{request.resume} is a {made_by!r} run; resume it with "
            f"gm train {made_by} --resume {request.resume}."
        )
    from gm import checkpoint

    start = checkpoint.committed_step(request.resume)  # type: ignore[arg-type]
    steps = request.steps if request.steps is not None else record["config"].get("steps")
    if start and isinstance(steps, int) and start >= steps:
        raise GMError(
            f"{request.resume} is already at step {start}; give --steps above {start} to "
            "train further."
        )
    return dataclasses.replace(
        request,
        dataset=record["dataset"],
        seed=record["seed"],
        data_options=record.get("data_options", {}),
    )


def recipe_name(spec: Any, given: dict[str, Any], default: str) -> str:
    """The recipe a config selects: ``given``'s ``recipe`` (from ``--config`` or ``--set``),
    else the model's own (``ModelSpec.recipe``), else ``default`` (the data's); one that
    the model does not register is a :class:`GMError` listing those it does."""
    name = str(given.get("recipe", spec.recipe or default))
    if name and name not in spec.recipes:
        known = ", ".join(spec.recipes)
        raise GMError(
            f"model {spec.name!r} has no recipe {name!r}; "
            + (
                f"its recipes: {known} (gm list-models {spec.name})."
                if known
                else "it has no recipes, so drop recipe."
            )
        )
    return name
