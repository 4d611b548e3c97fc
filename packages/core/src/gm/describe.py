"""What a model takes, for people: its settings as tables and the check of ``--set`` keys.

Read from the source (:mod:`gm.schema`), so ``gm train MODEL --help``, ``gm list-models
NAME`` and a mistyped ``--set`` key answer before torch is imported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gm import plugins, schema
from gm.config import closest
from gm.errors import GMError

DATA_DEPENDENT = (
    "Defaults are the config class's; some models choose data-dependent values at train "
    "time (gm train MODEL --dataset NAME --show-config prints the resolved config)."
)


def check_keys(spec: Any, keys: Iterable[str], *, source: str, attr: str = "Config") -> None:
    """A :class:`GMError` naming the closest valid keys for the first unknown one."""
    fields = schema.fields(spec, attr)
    if fields is None:  # unreadable source: the config itself checks after import
        return
    valid = [f.name for f in fields]
    for key in keys:
        if key not in valid:
            raise GMError(
                f"unknown config key {key!r} for model {spec.name!r} in {source}."
                + closest(key, valid, f"gm train {spec.name} --help")
            )


def fields_table(fields: list[schema.Field], title: str):
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("key", no_wrap=True, style="bold")
    table.add_column("type", overflow="fold")
    table.add_column("default", no_wrap=True)
    table.add_column("note", overflow="fold")
    for f in fields:
        table.add_row(f.name, f.type, f.default, f.note)
    return table


def _console():
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        return Console(width=max(console.width, 160), no_color=True, highlight=False)
    return console


def print_config_help(spec: Any) -> None:
    """The config keys under a model's ``gm train MODEL --help``."""
    console = _console()
    fields = schema.model_fields(spec)
    console.print(fields_table(fields, f"config keys of {spec.name} (--set key=value)"))
    console.print(DATA_DEPENDENT, style="dim")


def datasets_for(spec: Any) -> list[str]:
    wanted = set(spec.modalities)
    return [
        name
        for name, d in plugins.registry("datasets").items()
        if not wanted or d.modality in wanted
    ]


def recipe_lines(spec: Any) -> list[str]:
    """The model's recipes, one line each, the one it selects marked."""
    if not spec.recipes:
        return []
    lines = ["recipes (--set recipe=NAME; --show-config shows the result):"]
    for name, found in spec.recipes.items():
        mark = " [this model's]" if name == spec.recipe else ""
        if isinstance(found, str):  # a function of (info, device): its docstring says what
            what = f"{_summary(found)} (for the data and the device: {found})"
        else:
            what = ", ".join(f"{k}={v!r}" for k, v in found.items()) or "sets nothing"
        lines.append(f"  {name}{mark}: {what}")
    return lines


def _summary(target: str) -> str:
    from gm.specs import resolve

    try:
        doc = resolve(target).__doc__ or ""
    except Exception:  # noqa: BLE001 - a broken plugin must not break the listing
        return "?"
    return " ".join(doc.strip().split(".")[0].split())


def print_model(spec: Any) -> None:
    """``gm list-models NAME``: what the model is, the data it takes and all its options."""
    console = _console()
    console.print(f"[bold]{spec.name}[/bold]  {spec.summary}")
    console.print(f"plugin: {spec.plugin}   trainer: {spec.trainer or '-'}")
    kinds = ", ".join(spec.modalities) if spec.modalities else "any"
    console.print(f"data: {kinds} ({', '.join(datasets_for(spec))})", overflow="fold")
    for line in recipe_lines(spec):
        console.print(line, overflow="fold", markup=False)
    console.print(fields_table(schema.model_fields(spec), "config (gm train --set key=value)"))
    for attr, verb in (("SampleOptions", "gm sample"), ("EvaluateOptions", "gm evaluate")):
        fields = schema.model_fields(spec, attr)
        if fields:
            console.print(fields_table(fields, f"{verb} options (--key value)"))
    console.print(DATA_DEPENDENT, style="dim")
