"""``gm impute``: fill in the missing values of a user's file with a trained run.

This module is imported when the CLI is built, so torch is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gm.errors import GMError


def impute(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="Run folder written by gm train (an imputation model)."),
    input: Path = typer.Option(
        ...,
        "--input",
        "-i",
        help=".csv or .npy with NaN or empty cells "
        "for missing values, or an image file together with --mask.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Where to write the completed data (.csv/.npy for tables, .png for an image).",
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
        help="Number of imputations to draw (multiple imputation, to see the uncertainty).",
    ),
    average: bool = typer.Option(
        False,
        "--average",
        help="Write the mean of the samples (a point estimate) instead of each sample.",
    ),
    steps: Optional[int] = typer.Option(
        None, "--steps", help="Refinement steps (default: the number the run was trained with)."
    ),
    clip: bool = typer.Option(
        False,
        "--clip",
        help="Clamp values outside the training range instead of stopping with an error.",
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
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Impute the missing values of your own data with a trained imputation run."""
    if ctx.args:
        raise GMError(
            f"gm impute got unexpected arguments {' '.join(ctx.args)}; see gm impute --help."
        )
    if samples < 1:
        raise GMError("--samples must be at least 1.")
    if steps is not None and steps < 0:
        raise GMError("--steps must be a non-negative number of refinement steps.")
    import numpy as np
    import torch

    from gm import checkpoint, distributed
    from gm.engine import seed_everything
    from gm_imputation import userdata
    from gm_imputation.base import ImputerTrainer

    trainer = checkpoint.load(run, distributed.choose_device(device))
    if not isinstance(trainer, ImputerTrainer):
        raise GMError(
            f"{run} holds a {trainer.name!r} model, which does not impute; train one "
            "of gpsi-add, gpsi-jump, lstm-add, lstm-jump, vae-imputer, template-matching."
        )
    fast = {"compile": compile, "cuda_graph": cuda_graph}
    seed_everything(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    state, dev = trainer.state, trainer.device
    is_image = input.suffix.lower() in userdata.IMAGE_SUFFIXES
    if is_image:
        if trainer.info.modality != "image" or len(trainer.shape) != 3:
            raise GMError(
                f"{run} was trained on {trainer.info.modality} data; give it a .csv or "
                ".npy file, not an image."
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
        if out.suffix.lower() == ".npy":
            np.save(out, result)
        else:
            userdata.write_image(out, result)
        typer.echo(f"imputed {int(missing.sum())} values; wrote {out}")
        return
    if mask is not None:
        raise GMError("--mask is for image inputs; in a .csv or .npy, missing values are NaN.")
    table = userdata.read_table(input)
    values = table.values.reshape(len(table.values), -1)
    if values.shape[1] != trainer.dim:
        raise GMError(
            f"{input} has {values.shape[1]} values per row but {run} was trained on "
            f"{trainer.dim}; give the same columns in the same order."
        )
    original = userdata.check_missing(table, input)
    lo, hi = (t.double().cpu().numpy() for t in state.raw_range())
    values = userdata.check_range(original, lo, hi, table, input, clip)
    raw = torch.as_tensor(values, dtype=torch.float32, device=dev)
    unit = torch.where(torch.isnan(raw), raw, state.raw_to_unit(raw))
    completed = trainer.impute(unit, samples, steps, **fast)
    if average:
        completed = completed.mean(0, keepdim=True)
    back = state.unit_to_raw(completed).double().cpu().numpy()
    nan = np.isnan(original)
    back = np.where(nan[None], back, original[None])  # observed values copied exactly
    userdata.write_table(out, table, back)
    typer.echo(
        f"imputed {int(nan.sum())} values in {len(values)} rows"
        f"{f' ({samples} imputations)' if samples > 1 and not average else ''}; wrote {out}"
    )
