"""The ``gm inpaint`` verb. This module is imported when the CLI is built, so it imports
neither torch nor the implementation at module level."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


# typer reads every option from the signature: spelt out per verb on purpose.
def inpaint(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="Run folder of a trained walkback model."),
    dataset: Optional[str] = typer.Option(
        None, "--dataset", "-d", help="Dataset (default: the run's)."
    ),
    mask: str = typer.Option(
        "bottom-half", help="bottom-half, mar:K (K x K square) or mcar:P (drop rate)."
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help=".png picture or .npy array (default: RUN/inpaint.png)."
    ),
    n: int = typer.Option(16, "-n", help="Number of examples to fill in."),
    split: str = typer.Option("test", help="Split the examples come from."),
    extra_steps: int = typer.Option(
        0, "--extra-steps", help="Further clamped steps at T = 1 after cooling."
    ),
    seed: int = typer.Option(0, help="Random seed (mask and chain)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    data_dir: Optional[str] = typer.Option(
        None, help="Folder of local dataset copies (or GM_DATA_DIR)."
    ),
) -> None:
    """Fill in the unknown part of examples: the known part is clamped at every step of the
    cooling chain. The picture shows rows of masked inputs, completions and originals."""
    from gm.errors import GMError

    if ctx.args:
        raise GMError(
            f"gm inpaint got unexpected arguments {' '.join(ctx.args)}; see gm inpaint --help."
        )
    from gm.hub import default_out
    from gm_walkback.inpainting import inpaint_run

    out = out or default_out(run, "inpaint.png")  # never the working folder unless asked

    rmse = inpaint_run(
        run,
        dataset=dataset,
        mask=mask,
        out=out,
        n=n,
        split=split,
        extra_steps=extra_steps,
        seed=seed,
        device=device,
        data_dir=data_dir,
    )
    typer.echo(f"wrote {out} (RMSE on the unknown entries: {rmse:.4f})")
