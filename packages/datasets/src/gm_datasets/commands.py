"""``gm datasets prepare NAME [--from PATH]``: decode a dataset into the cache now.

Imported when the CLI is built, so it imports neither torch nor ``datasets`` at module level.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Optional

import typer

from gm.errors import GMError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Prepare datasets ahead of time (decode once into the cache).",
)


@app.callback()
def _group() -> None:
    """Prepare datasets ahead of time (decode once into the cache)."""


# typer reads every option from the signature: spelt out per verb on purpose.
@app.command()
def prepare(
    name: str = typer.Argument(..., help="Dataset name (see gm list-datasets), or images:DIR etc."),
    from_: Optional[Path] = typer.Option(
        None,
        "--from",
        help="Folder holding the dataset's own source "
        "files (e.g. a snapshot_download / hf download folder).",
    ),
    data_dir: Optional[str] = typer.Option(
        None, help="Folder of local dataset copies (or GM_DATA_DIR)."
    ),
    data_option: list[str] = typer.Option(
        [], "--data-option", help="Dataset option key=value (repeatable)."
    ),
) -> None:
    """Decode NAME into the cache: from --from PATH, --data-dir, the Hub cache, or the Hub when online."""
    from gm import plugins
    from gm.config import parse_assignments
    from gm.data import load_dataset
    from gm_datasets.common import describe

    options = parse_assignments(data_option, source="--data-option")
    if from_ is not None:
        kind, colon, _ = name.partition(":")
        loader = plugins.get("datasets", kind if colon else name).load()
        if "source_dir" not in inspect.signature(loader).parameters:
            raise GMError(
                f"dataset {name!r} takes no --from folder; its files are given in its name or options."
            )
        options["source_dir"] = str(from_)
    start = time.perf_counter()
    data = load_dataset(name, data_dir, options)
    sizes = ", ".join(f"{k} {len(v):,}" for k, v in data.splits.items())
    shape = "x".join(map(str, data.info.shape))
    meta = data.info.meta
    if "provenance" in meta:
        source = describe(meta["provenance"])
        where = meta["provenance"].get("cache")
    else:  # read directly each time (digits, tfd, array:FILE, text:FILE)
        source = str(meta.get("file") or meta.get("source") or name)
        where = "not cached (read directly each time)"
    typer.echo(
        f"{data.info.name}: {data.info.modality} {shape}, {sizes} "
        f"({time.perf_counter() - start:.1f} s)\n  source: {source}\n  cache: {where}"
    )
