"""``gm impute``: fill in the missing values of a user's file.

- ``gm impute FILE --out FILLED``: fit on the file's own observed cells, then fill it
  (scikit-learn's ``fit_transform``; :mod:`gm_imputation.fit`). ``--save-run DIR`` keeps
  the model for new files.
- ``gm impute RUN --input FILE --out FILLED``: fill with a model trained before (``gm
  train`` or ``--save-run``); columns are matched by header name.

This module is the CLI (options, messages); the logic, callable from Python, is
:mod:`gm_imputation.filling`. Nothing is written until the input has been read and checked.
This module is imported when the CLI is built, so torch is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from gm.errors import GMError


# One typer.Option per option: `duplicates` sees their declarations as alike by shape.
# typer reads every option from the signature, so verbs spell out their options (and pass
# them on by keyword) in parallel on purpose.
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
        help="Fitting a file: training steps (default: 300 passes over the rows, 800 to "
        "5000 steps; early stopping on held-out cells may end sooner).",
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
    compile: str = typer.Option(
        "auto",
        "--compile",
        help="torch.compile the whole roll-out: auto (on CUDA only), on or off. Same "
        "imputations for a seed, to float tolerance.",
    ),
    cuda_graph: str = typer.Option(
        "auto",
        "--cuda-graph",
        help="Replay the roll-out as one CUDA graph: auto (on CUDA), on or off.",
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
    if input is None and target.is_dir():
        raise GMError(
            f"{target} is a folder; give the file to fill (gm impute FILE --out FILLED), "
            f"or fill a file with this run: gm impute {target} --input FILE --out FILLED."
        )
    if input is not None and (save_run is not None or train_steps is not None):
        raise GMError("--save-run and --train-steps are for fitting a file; drop --input.")
    from gm import progress
    from gm_imputation import filling

    common: dict[str, Any] = dict(
        samples=samples,
        average=average,
        steps=steps,
        seed=seed,
        device=device,
        compile=compile,
        cuda_graph=cuda_graph,
    )
    with progress.enabled(not quiet):  # a bar over the fit's steps and the filled chunks
        if input is None:
            filled = filling.fill_file(
                target, out, model=model, train_steps=train_steps, save_run=save_run, **common
            )
        else:
            filled = filling.fill_with_run(target, input, out, mask=mask, clip=clip, **common)
    typer.echo(_summary(filled))
    if filled.fit is not None:
        typer.echo(_fit_summary(model, filled))


def _summary(f) -> str:
    """What was filled, in one line."""
    if f.image:
        return f"imputed {f.filled} values; wrote {f.out}"
    cols = ", ".join(f"{name}: {n}" for name, n in f.most_filled)
    parts = [
        f"filled {f.filled} of {f.cells} cells ({100 * f.filled / max(f.cells, 1):.1f}%) in "
        f"{f.rows_filled} of {f.rows} rows"
        + (f", {f.empty_rows} of them empty" if f.empty_rows else ""),
        f"most filled: {cols}",
    ]
    if f.left_out:
        parts.append(f"left out of the model as a row index or names: {', '.join(f.left_out[:5])}")
    others = [c for c in f.passed_through if c not in f.left_out]
    if others:
        parts.append(f"passed through untouched: {', '.join(others[:5])}")
    if f.imputations > 1:
        parts.append(f"{f.imputations} imputations")
    return "; ".join(parts) + f"; wrote {f.out}"


def _fit_summary(model: str, f) -> str:
    """How the fit went: steps, time, and the held-out check of its quality."""
    report = f.fit
    found = []
    if report.held_out_rmse == report.held_out_rmse:  # not NaN: numbers were held out
        found.append(
            f"numbers: RMSE {report.held_out_rmse:.3g} column sd, 90% intervals covered "
            f"{100 * report.held_out_coverage:.0f}%"
        )
    if report.held_out_accuracy == report.held_out_accuracy:
        found.append(f"categories: {100 * report.held_out_accuracy:.0f}% right")
    check = (
        f"held-out check on {report.held_out} observed cells hidden from training: "
        + "; ".join(found)
        if report.held_out
        else "too few observed cells to hold some out: trained the full budget"
    )
    return (
        f"model: {model} ({report.observation} observations), {report.steps_run} training "
        f"steps in {report.seconds:.0f} s{' (stopped early)' if report.stopped_early else ''}, "
        f"weights of step {report.best_step}; {check}"
        + (f"; saved the run in {f.saved_run}" if f.saved_run is not None else "")
    )
