"""Run folders: ``config.json``, ``model.safetensors``, ``trainer_state.{safetensors,json}``.

Never pickle: weights, optimiser tensors and RNG states are safetensors; everything else
is JSON. Every file is written to a temporary name, flushed to disk and renamed over the
old one, so a crash at any moment leaves the previous checkpoint loadable.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import gm
from gm import config as configs
from gm import plugins
from gm.data import DataInfo
from gm.errors import GMError
from gm.trainer import Trainer

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
STATE = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"


# --- atomic writes ------------------------------------------------------------------
def _stage(path: Path, write) -> str:
    """Write to a temporary file beside ``path`` and flush it to disk; returns its name."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_json(path: Path, obj: Any) -> None:
    path = Path(path)
    os.replace(
        _stage(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n")), path
    )


def _tensor_writer(tensors: dict[str, torch.Tensor], metadata: dict[str, str]):
    # Clone so tensors sharing storage (tied weights) can be saved; safetensors refuses aliases.
    flat = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    return lambda tmp: save_file(flat, tmp, metadata=metadata)


# --- the run record -----------------------------------------------------------------
def run_record(
    model: str, dataset: str, trainer: Trainer, *, seed: int, data_options: dict[str, Any]
) -> dict[str, Any]:
    spec = plugins.get("models", model)
    return {
        "gm_model": model,
        "plugin": spec.plugin,
        "plugin_version": plugins._version(spec.plugin),
        "gm_core_version": gm.__version__,
        "dataset": dataset,
        "data_options": data_options,
        "seed": seed,
        "data": trainer.info.to_json(),
        "config": configs.to_dict(trainer.config),
    }


def read_record(run: Path) -> dict[str, Any]:
    run = Path(run)
    if not run.exists():
        raise GMError(f"{run} does not exist; give the run folder that `gm train --out` wrote.")
    if run.is_file():
        hint = (
            " gm never unpickles .pt/.pth files." if run.suffix in (".pt", ".pth", ".pkl") else ""
        )
        raise GMError(
            f"{run} is a file, not a gm run folder (a folder with config.json and "
            f"model.safetensors).{hint}"
        )
    path = run / CONFIG
    if not path.exists():
        raise GMError(f"{run} is not a gm run folder: it has no {CONFIG}.")
    try:
        record = json.loads(path.read_text())
        record["gm_model"], record["config"], record["data"]  # noqa: B018 - presence check
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise GMError(
            f"{path} is corrupt ({type(err).__name__}: {err}); the run cannot be loaded."
        ) from None
    return record


def build(record: dict[str, Any], device: torch.device | str = "cpu") -> Trainer:
    """A freshly initialised trainer for a run record (no weights loaded)."""
    name = record["gm_model"]
    try:
        spec = plugins.get("models", name)
    except GMError:
        dist = record.get("plugin") or plugins.KNOWN_ELSEWHERE.get(
            name, "the plugin that provides it"
        )
        raise GMError(
            f"this run was made by model {name!r}, which is not installed; pip install {dist}."
        ) from None
    cls = spec.load()
    config = configs.from_dict(cls.Config, record["config"], source=f"{CONFIG} of the run")
    return cls(config, DataInfo.from_json(record["data"]), device)


# --- weights --------------------------------------------------------------------------
def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.exists():
        raise GMError(
            f"{path.parent} has no {path.name}; the run stopped before its first checkpoint."
        )
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError) as err:
        raise GMError(
            f"{path} is not a valid safetensors file ({err}); gm never loads pickled checkpoints."
        ) from None


def save(run: Path, trainer: Trainer, step: int) -> None:
    """Write weights and resume state for ``step`` (call on rank 0)."""
    run = Path(run)
    for stale in run.glob(".*.tmp"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    weights = {
        f"{m}.{k}": v for m, mod in trainer.modules().items() for k, v in mod.state_dict().items()
    }
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    optim_json: dict[str, Any] = {}
    for name, opt in trainer.optimizers().items():
        sd = opt.state_dict()
        plain: dict[str, dict[str, Any]] = {}
        for pid, st in sd["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"optim.{name}.{pid}.{k}"] = v
                else:
                    plain.setdefault(str(pid), {})[k] = v
        optim_json[name] = {"param_groups": sd["param_groups"], "state": plain}
    np_state = np.random.get_state()
    state = {
        "step": step,
        "optimizers": optim_json,
        "python_rng": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy_rng": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "extra": trainer.extra_state(),
    }
    meta = {"step": str(step)}
    # Stage all three files before renaming any, so a kill can only land between renames
    # (microseconds), never between a renamed file and a half-written one.
    staged = [
        (
            _stage(run / STATE_JSON, lambda tmp: Path(tmp).write_text(json.dumps(state, indent=2))),
            STATE_JSON,
        ),
        (_stage(run / STATE, _tensor_writer(tensors, meta)), STATE),
        (_stage(run / WEIGHTS, _tensor_writer(weights, meta)), WEIGHTS),
    ]
    for tmp, name in staged:
        os.replace(tmp, run / name)


def save_weights(folder: Path, trainer: Trainer, step: int) -> None:
    """Weights only, into ``folder`` beside a copy of its parent run's config.json, so that
    :func:`load` reads it as a run (a trainer's best-so-far checkpoint under validation)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parent = folder.parent / CONFIG
    if parent.exists():
        shutil.copyfile(parent, folder / CONFIG)
    weights = {
        f"{m}.{k}": v for m, mod in trainer.modules().items() for k, v in mod.state_dict().items()
    }
    tmp = _stage(folder / WEIGHTS, _tensor_writer(weights, {"step": str(step)}))
    os.replace(tmp, folder / WEIGHTS)


def load_weights(run: Path, trainer: Trainer) -> int:
    """Load ``model.safetensors`` into the trainer's modules; returns the checkpoint's step."""
    tensors, meta = _read_tensors(Path(run) / WEIGHTS)
    for name, module in trainer.modules().items():
        own = module.state_dict()
        part = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")}
        missing, unexpected = sorted(set(own) - set(part)), sorted(set(part) - set(own))
        wrong = [k for k in own if k in part and own[k].shape != part[k].shape]
        if missing or unexpected or wrong:
            detail = (
                f"missing {missing[:3]}"
                if missing
                else f"unexpected {unexpected[:3]}"
                if unexpected
                else f"{wrong[0]} is {tuple(part[wrong[0]].shape)} in the file but "
                f"{tuple(own[wrong[0]].shape)} for this config"
            )
            raise GMError(
                f"{Path(run) / WEIGHTS} does not match its config.json ({name}: {detail}); "
                "was config.json edited, or the file copied from another run?"
            )
        module.load_state_dict(part)
    return int(meta.get("step", 0))


def load(run: Path, device: torch.device | str = "cpu") -> Trainer:
    """The trained model of a run folder, ready to sample or evaluate."""
    trainer = build(read_record(run), device)
    load_weights(run, trainer)
    trainer.train(False)
    return trainer


def load_state(run: Path, trainer: Trainer) -> int:
    """Restore optimisers, RNG states and extra state for an exact resume; returns the step."""
    run = Path(run)
    step = load_weights(run, trainer)
    tensors, meta = _read_tensors(run / STATE)
    try:
        state = json.loads((run / STATE_JSON).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise GMError(f"{run / STATE_JSON} is missing or corrupt ({err}); cannot resume.") from None
    if not (int(meta.get("step", -1)) == state["step"] == step):
        raise GMError(
            f"the checkpoint files in {run} are from different steps; cannot resume exactly."
        )
    for name, opt in trainer.optimizers().items():
        saved = state["optimizers"][name]
        opt_state: dict[int, dict[str, Any]] = {}
        for key, v in tensors.items():
            parts = key.split(".")
            if parts[0] == "optim" and parts[1] == name:
                opt_state.setdefault(int(parts[2]), {})[".".join(parts[3:])] = v
        for pid, st in saved["state"].items():
            opt_state.setdefault(int(pid), {}).update(st)
        opt.load_state_dict({"state": opt_state, "param_groups": saved["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [
        tensors[k]
        for k in sorted(
            (k for k in tensors if k.startswith("rng.cuda.")),
            key=lambda k: int(k.rsplit(".", 1)[1]),
        )
    ]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    v, s, g = state["python_rng"]
    random.setstate((v, tuple(s), g))
    n = state["numpy_rng"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))
    trainer.load_extra_state(state["extra"])
    return step
