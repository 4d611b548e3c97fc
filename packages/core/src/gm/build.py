"""Building a model: the one place its config is resolved and its trainer constructed.

The config that trains is resolved in this order, each layer overriding the one before:

1. the trainer's ``default_config(info)``: its defaults for this data (never the device);
2. the selected recipe (:attr:`gm.specs.ModelSpec.recipes`), named by the config field
   ``recipe``: ``--set``/``--config``'s, else the model's (``ModelSpec.recipe``), else the
   data default's;
3. ``--config FILE``, then ``--set`` (what the user gives always wins), then ``--steps``;
4. the trainer's ``resolve_config(config, info, device)``: the choices a config leaves to the
   device (walkback's ``hidden=0``: 4096 wide on a GPU, 256 on a CPU).

The device enters only through the recipe (a recipe that depends on it) and step 4, so
resolving for ``"cuda"`` touches no GPU. ``gm train --show-config`` prints what
:func:`config_for` returns, the engine builds the trainer from exactly that, and
``config.json`` records it; a saved run is rebuilt from its record as it is (no layer is
applied again). :func:`trainer` is the only constructor of trainers in gm.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from gm import checkpoint, compat, distributed, plugins
from gm import config as configs
from gm.data import DataInfo, Dataset, load_dataset
from gm.errors import GMError
from gm.request import TrainRequest, recipe_name
from gm.specs import ModelSpec
from gm.specs import resolve as resolve_target
from gm.trainer import Trainer

# A distribution name as PyPI spells it: what a tampered record may put in an install hint.
_DIST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def model_spec(name: str, plugin: str | None = None) -> ModelSpec:
    """The registered model ``name``; for a run (``plugin``: the distribution its record
    names) that is not installed, one line saying what to install."""
    try:
        return plugins.get("models", name)
    except GMError:
        if plugin is None:
            raise
        dist = plugin if _DIST_NAME.fullmatch(plugin) else "the plugin that provides it"
        raise GMError(
            f"this run was made by model {name!r}, which is not installed; pip install {dist}."
        ) from None


def recipe(spec: ModelSpec, name: str, info: DataInfo, device: torch.device) -> dict[str, Any]:
    """The config defaults of ``spec``'s recipe ``name`` ('' : none) for this data and device."""
    if not name:
        return {}
    found = spec.recipes[name]
    return dict(resolve_target(found)(info, device) if isinstance(found, str) else found)


def resolve(
    model: str,
    info: DataInfo,
    device: torch.device | str = "cpu",
    *,
    overrides: dict[str, Any] | None = None,
    config_file: str | Path | None = None,
) -> tuple[type[Trainer], Any]:
    """The trainer class of ``model`` and the config it trains with on ``info``'s data on
    ``device`` (the layers of the module docstring)."""
    spec = model_spec(model)
    cls: type[Trainer] = plugins.load(spec)
    device = torch.device(device)
    overrides = dict(overrides or {})
    toml = configs.read_toml(config_file) if config_file else {}
    cfg = cls.default_config(info)
    name = recipe_name(spec, {**toml, **overrides}, cfg.recipe)
    cfg = configs.override(
        cfg, {**recipe(spec, name, info, device), "recipe": name}, source=f"recipe {name!r}"
    )
    if config_file:
        cfg = configs.override(cfg, toml, source=str(config_file))
    cfg = configs.override(cfg, overrides, source="--set")
    return cls, cls.resolve_config(cfg, info, device)


def config_for(request: TrainRequest, info: DataInfo, device: torch.device) -> Any:
    """The config a checked request trains with: a fresh run's resolved config, or a resumed
    run's own; ``--steps`` last. What ``--show-config`` prints and the engine builds."""
    if request.resume is None:
        _, cfg = resolve(
            request.model,
            info,
            device,
            overrides=request.overrides,
            config_file=request.config_file,
        )
    else:
        record = checkpoint.read_record(request.resume)  # its model: the request's (checked)
        cls: type[Trainer] = plugins.load(model_spec(request.model))
        cfg = configs.from_dict(
            cls.Config, record["config"], source=f"{checkpoint.CONFIG} of the run"
        )
    if request.steps is not None:
        cfg = configs.override(cfg, {"steps": request.steps}, source="--steps")
    return cfg


def show_config(request: TrainRequest) -> Any:
    """What ``gm train ... --show-config`` prints: the config a checked request would train
    with on its device (the data is loaded for its shape; nothing is built)."""
    device = distributed.choose_device(request.device)
    if isinstance(request.dataset, Dataset):
        info = request.dataset.info
    elif request.resume is not None:
        info = DataInfo.from_json(checkpoint.read_record(request.resume)["data"])
    else:
        info = load_dataset(request.dataset, request.data_dir, request.data_options).info
    return config_for(request, info, device)


def trainer(
    cls: type[Trainer], config: Any, info: DataInfo, device: Any, *, weights: Path | None = None
) -> Trainer:
    """``cls(config, info, device)``, a config the model cannot use as one line. With the
    ``weights`` of a run, the weights file's header is first compared with the shapes of the
    trainer built on the meta device (no memory), so a config edited to a huge size is one
    line, never a huge allocation."""
    if weights is not None and checkpoint.has_checkpoint(weights):
        try:  # the RNG as it was: the real build draws the same initial weights
            with torch.random.fork_rng(devices=[]), torch.device("meta"):
                shell = cls(config, info, torch.device("meta"))
            shapes = checkpoint.shapes(shell)
        except Exception:  # noqa: BLE001 - a trainer that cannot be built on meta: load checks
            shapes = None
        if shapes is not None:
            checkpoint.check_weights(weights, shapes)
    try:
        return cls(config, info, device)
    except (ValueError, RuntimeError, OverflowError, MemoryError) as err:
        raise GMError(
            f"model {cls.name!r} cannot be built with this config "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            "check the --set values."
        ) from None


def from_record(
    record: dict[str, Any], device: torch.device | str = "cpu", *, run: Path | None = None
) -> Trainer:
    """A freshly initialised trainer for a run record (no weights loaded): its recorded
    config as it is. With the ``run`` folder, its weights' shapes are checked first."""
    name = record["gm_model"]
    spec = model_spec(name, str(record.get("plugin") or ""))
    compat.check_record(record, f"the {name!r} run")
    cls: type[Trainer] = plugins.load(spec)
    config = configs.from_dict(
        cls.Config, record["config"], source=f"{checkpoint.CONFIG} of the run"
    )
    return trainer(cls, config, DataInfo.from_json(record["data"]), device, weights=run)
