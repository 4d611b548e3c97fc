"""Filling a user's file, callable from Python (``gm impute`` is the CLI around it).

- :func:`fill_file`: fit on the file's own observed cells, then fill it (scikit-learn's
  ``fit_transform``; :mod:`gm_imputation.fit`), optionally saving the model as a run.
- :func:`fill_with_run`: fill a table (columns matched by header name) or an image and
  its mask with a model trained before.

Nothing is written until the input has been read and checked; observed cells are written
back byte for byte (a text file's own cell text).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from gm import checkpoint, distributed
from gm.config import Switch
from gm.engine import seed_everything
from gm.errors import GMError
from gm.run import Run
from gm_imputation import fit, userdata

SWITCHES = ("auto", "on", "off")


@dataclasses.dataclass
class Filled:
    """What a fill did (for a summary): counts over the input's own missing cells."""

    out: Path
    cells: int  # cells of the input
    filled: int  # cells that were missing, now filled
    rows: int
    rows_filled: int  # rows with at least one filled cell...
    empty_rows: int  # ...of which this many had no observed cell at all
    most_filled: list[tuple[str, int]]  # up to 5 columns with the most filled cells
    passed_through: list[str]  # columns not modelled, copied untouched...
    imputations: int  # blocks of rows written: 1, or S draws
    fit: fit.FitReport | None = None  # fill_file: how the fit went
    saved_run: Path | None = None
    image: bool = False  # an image was filled (filled = its missing values)
    left_out: list[str] = dataclasses.field(default_factory=list)  # index / name columns


def _check(samples: int, steps: int | None, compile: str, cuda_graph: str) -> None:
    if samples < 1:
        raise GMError("--samples must be at least 1.")
    if steps is not None and steps < 0:
        raise GMError("--steps must be a non-negative number of refinement steps.")
    for name, value in (("compile", compile), ("cuda-graph", cuda_graph)):
        if value not in SWITCHES:
            raise GMError(f"--{name} must be auto, on or off, not {value!r}.")


def fill_file(
    path: Path,
    out: Path,
    *,
    samples: int = 1,
    average: bool = False,
    model: str = "gpsi-add",
    train_steps: int | None = None,
    save_run: Path | None = None,
    steps: int | None = None,
    seed: int = 0,
    device: str = "auto",
    compile: Switch = "auto",
    cuda_graph: Switch = "auto",
) -> Filled:
    """Fit ``model`` on the observed cells of the table ``path`` and write it filled to
    ``out``; ``save_run`` also keeps the model as a run folder (for :func:`fill_with_run`)."""
    _check(samples, steps, compile, cuda_graph)
    if train_steps is not None and train_steps < 1:
        raise GMError("--train-steps must be at least 1.")
    path, out = Path(path), Path(out)
    if path.suffix.lower() in userdata.IMAGE_SUFFIXES:
        raise GMError(
            "fitting works on tables; to fill an image, train a model on images first and "
            "run gm impute RUN --input IMAGE --mask MASK --out OUT."
        )
    table = userdata.read_table(path)
    values = userdata.check_missing(table, path)
    userdata.check_output(out, table)
    if save_run is not None and (Path(save_run) / checkpoint.CONFIG).exists():
        raise GMError(f"{save_run} already holds a run; pick another --save-run folder.")
    if len(values) < 2:
        raise GMError(f"{path} has one row; fitting needs several rows to learn from.")
    seed_everything(seed)
    trainer, report = fit.fit(
        values,
        model=model,
        names=table.names,
        name=path.name,
        seed=seed,
        max_steps=train_steps,
        device=distributed.choose_device(device),
        schema=table.schema,
    )
    fast = {"compile": compile, "cuda_graph": cuda_graph}
    _write(trainer, table, values, values, out, samples, average, steps, fast)
    if save_run is not None:
        save_run = Path(save_run)
        save_run.mkdir(parents=True, exist_ok=True)
        record = checkpoint.run_record(
            model, f"file:{path.name}", trainer, seed=seed, data_options={}
        )
        checkpoint.save(save_run, trainer, report.best_step)
        checkpoint.write_json(save_run / checkpoint.CONFIG, record)  # last: marks a whole run
    filled = _counts(table, values, out, 1 if average else samples)
    return dataclasses.replace(filled, fit=report, saved_run=save_run)


def fill_with_run(
    run: Path,
    input: Path,
    out: Path,
    *,
    mask: Path | None = None,
    samples: int = 1,
    average: bool = False,
    steps: int | None = None,
    clip: bool = False,
    seed: int = 0,
    device: str = "auto",
    compile: Switch = "auto",
    cuda_graph: Switch = "auto",
) -> Filled:
    """Fill ``input`` (a table, or an image with its ``mask``: white = missing) with the
    trained imputer in ``run`` and write ``out``; ``clip`` clamps values outside the
    run's training range instead of stopping."""
    _check(samples, steps, compile, cuda_graph)
    input, out = Path(input), Path(out)
    opened = Run.read(run)  # the record first: a run that cannot impute is said at once
    opened.require("impute")
    trainer = Run.open(opened, distributed.choose_device(device)).trainer
    seed_everything(seed)
    fast = {"compile": compile, "cuda_graph": cuda_graph}
    if input.suffix.lower() in userdata.IMAGE_SUFFIXES:
        return _fill_image(trainer, run, input, out, mask, samples, average, steps, fast)
    if mask is not None:
        raise GMError("--mask is for image inputs; in a table, missing values are NaN or empty.")
    table = userdata.read_table(input)
    schema = fit.schema_of(trainer)
    table = userdata.match_columns(table, schema, input, run)
    original = userdata.check_missing(table, input)
    userdata.check_output(out, table)
    lo, hi = fit.column_range(trainer)
    values = userdata.check_range(original, lo, hi, table, input, clip)
    _write(trainer, table, values, original, out, samples, average, steps, fast)
    return _counts(table, original, out, 1 if average else samples)


def _fill_image(trainer, run, input, out, mask, samples, average, steps, fast) -> Filled:
    if trainer.info.modality != "image" or len(trainer.shape) != 3:
        raise GMError(
            f"{run} was trained on {trainer.info.modality} data; give it a .csv, .tsv "
            "or .npy file, not an image."
        )
    if mask is None:
        raise GMError("an image input needs --mask MASK.png: white where values are missing.")
    values, missing = userdata.read_image(input, mask, trainer.shape)
    unit = torch.as_tensor(values.reshape(1, -1), dtype=torch.float32, device=trainer.device)
    hide = torch.as_tensor(missing.reshape(1, -1), device=trainer.device)
    completed = trainer.impute(unit, samples, steps, missing=hide, **fast)
    if average:
        completed = completed.mean(0, keepdim=True)
    result = completed.cpu().numpy().reshape(len(completed), *trainer.shape)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".npy":
        np.save(out, result)
    else:
        userdata.write_image(out, result)
    n = int(missing.sum())
    return Filled(out, missing.size, n, 1, int(n > 0), 0, [], [], len(completed), image=True)


def _write(trainer, table, values, original, out, samples, average, steps, fast) -> None:
    """Fill ``values`` (the model's input) and write the rows; observed cells come from
    ``original`` (the file's own values, even where ``clip`` clamped the input)."""
    writer = userdata.TableWriter(out, table, 1 if average else samples)

    def write(k, a, rows):
        own = original[a : a + len(rows)]
        writer.write(k, a, np.where(np.isnan(own), rows, own))

    try:
        fit.fill(trainer, values, write, samples=samples, average=average, steps=steps, **fast)
    except BaseException:
        writer.abort()
        raise
    writer.close()


def _counts(table, values: np.ndarray, out: Path, imputations: int) -> Filled:
    nan = np.isnan(values)
    per = nan.sum(0)
    return Filled(
        out=out,
        cells=int(nan.size),
        filled=int(nan.sum()),
        rows=len(values),
        rows_filled=int(nan.any(1).sum()),
        empty_rows=int(nan.all(1).sum()),
        most_filled=[(table.column_name(j), int(per[j])) for j in np.argsort(-per)[:5] if per[j]],
        passed_through=list(table.passed_through),
        imputations=imputations,
        left_out=list(table.left_out),
    )
