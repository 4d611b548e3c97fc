"""``gm impute``: fill in the missing values of a user's file.

- ``gm impute FILE --out FILLED``: fit on the file's own observed cells, then fill it
  (scikit-learn's ``fit_transform``; :mod:`gm_imputation.fit`). ``--save-run DIR`` keeps
  the model for new files.
- ``gm impute RUN --input FILE --out FILLED``: fill with a model trained before (``gm
  train`` or ``--save-run``); columns are matched by header name.

Nothing is written until the input has been read and checked. This module is imported when
the CLI is built, so torch is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gm.errors import GMError


def impute(
    ctx: typer.Context,
    target: Path = typer.Argument(
        ...,
        help="The file to fill (.csv, .tsv or .npy; gm fits on its own observed cells), or "
        "with --input a run folder (gm train, or an earlier --save-run).",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Where to write the completed data (.csv/.tsv/.npy for tables, .png for an image).",
    ),
    input: Optional[Path] = typer.Option(
        None,
        "--input",
        "-i",
        help="With a run folder as the argument: the .csv/.tsv/.npy to fill (NaN or empty "
        "cells are missing), or an image together with --mask.",
    ),
    mask: Optional[Path] = typer.Option(
        None,
        "--mask",
        help="For an image input: a mask image of the same size, white where values are missing.",
    ),
    samples: int = typer.Option(
        1,
        "--samples",
        "-s",
        help="1: the point imputation (mean of 16 roll-outs). S > 1: S draws of the missing "
        "values (multiple imputation), written as S blocks of rows.",
    ),
    average: bool = typer.Option(
        False, "--average", help="With --samples S: write the mean of S roll-outs instead."
    ),
    model: str = typer.Option(
        "gpsi-add", "--model", help="Fitting a file: gpsi-add, gpsi-jump, lstm-add or lstm-jump."
    ),
    train_steps: Optional[int] = typer.Option(
        None,
        "--train-steps",
        help="Fitting a file: most training steps (default 5000; early stopping on held-out "
        "cells usually ends sooner).",
    ),
    save_run: Optional[Path] = typer.Option(
        None, "--save-run", help="Fitting a file: also save the model as a run folder here."
    ),
    steps: Optional[int] = typer.Option(
        None, "--steps", help="Refinement steps (default: the number the model was trained with)."
    ),
    clip: bool = typer.Option(
        False,
        "--clip",
        help="With a run: clamp values outside its training range instead of stopping.",
    ),
    compile: Optional[bool] = typer.Option(
        None,
        "--compile/--no-compile",
        help="torch.compile the whole roll-out (default: on CUDA only). Same imputations "
        "for a seed, to float tolerance.",
    ),
    cuda_graph: Optional[bool] = typer.Option(
        None,
        "--cuda-graph/--no-cuda-graph",
        help="On CUDA, replay the roll-out as one CUDA graph (default: on).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Fill in the missing values of your own table (fit on the file itself, or with a run)."""
    if ctx.args:
        raise GMError(
            f"gm impute got unexpected arguments {' '.join(ctx.args)}; see gm impute --help."
        )
    if samples < 1:
        raise GMError("--samples must be at least 1.")
    if steps is not None and steps < 0:
        raise GMError("--steps must be a non-negative number of refinement steps.")
    if train_steps is not None and train_steps < 1:
        raise GMError("--train-steps must be at least 1.")
    if input is None:
        if target.is_dir():
            raise GMError(
                f"{target} is a folder; give the file to fill (gm impute FILE --out FILLED), "
                f"or fill a file with this run: gm impute {target} --input FILE --out FILLED."
            )
        _fit_and_fill(
            target,
            out,
            samples,
            average,
            model,
            train_steps,
            save_run,
            steps,
            quiet,
            seed,
            device,
            {"compile": compile, "cuda_graph": cuda_graph},
        )
        return
    if save_run is not None or train_steps is not None:
        raise GMError("--save-run and --train-steps are for fitting a file; drop --input.")
    _fill_with_run(
        target,
        input,
        out,
        mask,
        samples,
        average,
        steps,
        clip,
        seed,
        device,
        {"compile": compile, "cuda_graph": cuda_graph},
    )


def _fit_and_fill(
    path, out, samples, average, model, train_steps, save_run, steps, quiet, seed, device, fast
) -> None:

    from gm import checkpoint, distributed
    from gm.engine import seed_everything
    from gm_imputation import fit, userdata

    if Path(path).suffix.lower() in userdata.IMAGE_SUFFIXES:
        raise GMError(
            "fitting works on tables; to fill an image, train a model on images first and "
            "run gm impute RUN --input IMAGE --mask MASK --out OUT."
        )
    table = userdata.read_table(path)
    values = userdata.check_missing(table, path)
    userdata.check_output(out, table)
    if save_run is not None and (Path(save_run) / checkpoint.CONFIG).exists():
        raise GMError(f"{save_run} already holds a run; pick another --save-run folder.")
    n, d = values.shape
    if n < 2:
        raise GMError(f"{path} has one row; fitting needs several rows to learn from.")
    seed_everything(seed)

    from gm import progress

    with progress.enabled(not quiet):  # a bar over the fit's steps and the filled chunks
        trainer, report = fit.fit(
            values,
            model=model,
            names=table.names,
            name=Path(path).name,
            seed=seed,
            max_steps=train_steps,
            device=distributed.choose_device(device),
        )
        _write(trainer, table, values, values, out, samples, average, steps, fast)
    if save_run is not None:
        save_run = Path(save_run)
        save_run.mkdir(parents=True, exist_ok=True)
        record = checkpoint.run_record(
            model, f"file:{Path(path).name}", trainer, seed=seed, data_options={}
        )
        checkpoint.save(save_run, trainer, report.best_step)
        checkpoint.write_json(save_run / checkpoint.CONFIG, record)  # last: marks a whole run
    typer.echo(_summary(table, values, out, samples, average))
    check = (
        f"held-out check on {report.held_out} observed cells hidden from training: RMSE "
        f"{report.held_out_rmse:.3g} of each column's range, 90% intervals covered "
        f"{100 * report.held_out_coverage:.0f}%"
        if report.held_out
        else "too few observed cells to hold some out: trained the full budget"
    )
    typer.echo(
        f"model: {model} ({report.observation} observations), {report.steps_run} training "
        f"steps in {report.seconds:.0f} s{' (stopped early)' if report.stopped_early else ''}, "
        f"weights of step {report.best_step}; {check}"
        + (f"; saved the run in {save_run}" if save_run is not None else "")
    )


def _write(trainer, table, values, original, out, samples, average, steps, fast) -> None:
    """Fill ``values`` (the model's input) and write the rows; observed cells come from
    ``original`` (the file's own values, even where ``--clip`` clamped the input)."""
    import numpy as np

    from gm_imputation import fit, userdata

    writer = userdata.TableWriter(out, table, 1 if average else samples)

    def write(k, a, rows):
        own = original[a : a + len(rows)]
        writer.write(k, a, np.where(np.isnan(own), rows, own))

    try:
        fit.fill(trainer, values, write, samples=samples, average=average, steps=steps, fast=fast)
    except BaseException:
        writer.abort()
        raise
    writer.close()


def _summary(table, values, out, samples, average) -> str:
    import numpy as np

    nan = np.isnan(values)
    per = nan.sum(0)
    cols = ", ".join(
        f"{table.column_name(j)}: {int(per[j])}" for j in np.argsort(-per)[:5] if per[j]
    )
    empty = int(nan.all(1).sum())
    parts = [
        f"filled {int(nan.sum())} of {nan.size} cells ({100 * nan.mean():.1f}%) in "
        f"{int(nan.any(1).sum())} of {len(values)} rows"
        + (f", {empty} of them empty" if empty else ""),
        f"most filled: {cols}",
    ]
    if table.passed_through:
        parts.append(f"passed through untouched: {', '.join(table.passed_through[:5])}")
    if samples > 1 and not average:
        parts.append(f"{samples} imputations")
    return "; ".join(parts) + f"; wrote {out}"


def _fill_with_run(
    run, input, out, mask, samples, average, steps, clip, seed, device, fast
) -> None:
    import numpy as np
    import torch

    from gm import distributed
    from gm.engine import seed_everything
    from gm.run import Run
    from gm_imputation import userdata

    opened = Run.read(run)
    opened.require("impute")
    trainer = opened.load_trainer(distributed.choose_device(device)).trainer
    seed_everything(seed)
    state, dev = trainer.state, trainer.device
    if input.suffix.lower() in userdata.IMAGE_SUFFIXES:
        if trainer.info.modality != "image" or len(trainer.shape) != 3:
            raise GMError(
                f"{run} was trained on {trainer.info.modality} data; give it a .csv, .tsv "
                "or .npy file, not an image."
            )
        if mask is None:
            raise GMError("an image input needs --mask MASK.png: white where values are missing.")
        values, missing = userdata.read_image(input, mask, trainer.shape)
        unit = torch.as_tensor(values.reshape(1, -1), dtype=torch.float32, device=dev)
        hide = torch.as_tensor(missing.reshape(1, -1), device=dev)
        completed = trainer.impute(unit, samples, steps, missing=hide, **fast)
        if average:
            completed = completed.mean(0, keepdim=True)
        result = completed.cpu().numpy().reshape(len(completed), *trainer.shape)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".npy":
            np.save(out, result)
        else:
            userdata.write_image(out, result)
        typer.echo(f"imputed {int(missing.sum())} values; wrote {out}")
        return
    if mask is not None:
        raise GMError("--mask is for image inputs; in a table, missing values are NaN or empty.")
    table = userdata.read_table(input)
    table = userdata.match_columns(table, trainer.info.meta.get("columns"), trainer.dim, input, run)
    original = userdata.check_missing(table, input)
    userdata.check_output(out, table)
    lo, hi = (t.double().cpu().numpy() for t in state.raw_range())
    values = userdata.check_range(original, lo, hi, table, input, clip)
    _write(trainer, table, values, original, out, samples, average, steps, fast)
    typer.echo(_summary(table, original, out, samples, average))
