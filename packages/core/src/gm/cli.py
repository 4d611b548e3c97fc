"""The ``gm`` command line (Typer).

Listing commands (``--help``, ``plugins``, ``list-models``, ``list-datasets``,
``list-components``) import
neither torch nor any plugin's implementation: the registries hold lazy targets only.
User mistakes print one line and exit 2; a fault (a stopped training, a full disk) exits
1; SIGINT and SIGTERM exit 130 and 143 from every verb, each with one line.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from gm import __version__, plugins
from gm.errors import GMError, Interrupted, TrainingStopped, raise_interrupted

EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


class SuggestingGroup(TyperGroup):
    """A group whose unknown subcommands get a one-line error with the closest names."""

    what = "command"

    def get_command(self, ctx: Any, name: str) -> Any:
        cmd = super().get_command(ctx, name)
        if cmd is None and name not in ("--help",):
            self.unknown(name)
        return cmd

    def unknown(self, name: str) -> None:
        close = difflib.get_close_matches(name, list(self.commands), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise GMError(f"unknown {self.what} {name!r}.{hint} See gm --help.")


class ConfigHelpCommand(TyperCommand):
    """``gm train MODEL --help``: the options, then the model's config keys from its source."""

    spec: Any = None

    def format_help(self, ctx: Any, formatter: Any) -> None:
        super().format_help(ctx, formatter)
        from gm import describe

        describe.print_config_help(self.spec)


class ModelGroup(SuggestingGroup):
    def unknown(self, name: str) -> None:
        plugins.get("models", name)  # raises with close names or the plugin to install


def _cell(v: Any, column: str) -> str:
    if isinstance(v, list):  # a shape's None or empty is any size; other lists may be empty
        empty = "any" if column == "shape" else "none"
        return ", ".join("any" if x is None else str(x) for x in v) if v else empty
    return str(v)


def _out(
    obj: Any, as_json: bool, columns: list[str], title: str, *, names: tuple[str, ...] = ()
) -> None:
    """A table that never cuts a value: identifier columns (``names``) are never wrapped,
    other text wraps at word boundaries, at the terminal's width (``COLUMNS`` or 80 in a
    pipe) or wider when the names need it. ``--json`` is the form for programs."""
    if as_json:
        print(json.dumps(obj, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    names = names or (columns[0],)
    cells = [[_cell(row[c], c) for c in columns] for row in obj]
    # the narrowest readable table: names whole, other columns as wide as their longest word
    need = [
        max(
            [len(c)]
            + [len(r[i]) if c in names else max(map(len, r[i].split() or [""])) for r in cells]
        )
        for i, c in enumerate(columns)
    ]
    longest = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    prose = [c not in names and n > 40 for c, n in zip(columns, longest, strict=True)]
    table = Table(title=title, expand=any(prose))  # prose columns take the width left over
    for c, width, wide in zip(columns, need, prose, strict=True):
        table.add_column(
            c, no_wrap=c in names, overflow="fold", min_width=width, ratio=1 if wide else None
        )
    for r in cells:
        table.add_row(*r)
    console = Console()
    plain = not console.is_terminal  # a pipe: no colour codes
    width = max(console.width, sum(need) + 3 * len(need) + 1)
    widest = max(width, Console(width=100_000).measure(table).maximum)
    while True:  # rich crops a table it cannot squeeze: widen until its right edge shows
        console = Console(width=width, no_color=True if plain else None, highlight=not plain)
        with console.capture() as captured:
            console.print(table)
        text = captured.get()
        top = next((ln for ln in text.splitlines() if "┏" in ln), "┓")
        if top.rstrip().endswith("┓") or width >= widest:
            break
        width += 1
    sys.stdout.write(text)


def _match(name: str, pattern: Optional[str]) -> bool:
    if not pattern:
        return True
    return fnmatch.fnmatch(name, pattern) if any(ch in pattern for ch in "*?[") else pattern in name


def cmd_plugins(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Installed gm plugins, their versions and the hooks they implement."""
    rows = [
        {
            "name": p.name,
            "distribution": p.distribution,
            "version": p.version,
            "module": p.module,
            "hooks": list(p.hooks),
            "problems": list(p.problems),
        }
        for p in plugins.plugins()
    ]
    _out(
        rows,
        as_json,
        ["name", "distribution", "version", "hooks", "problems"],
        "gm plugins",
        names=("name", "distribution", "version"),
    )


def cmd_list_models(
    pattern: Optional[str] = typer.Argument(None, help="Substring or glob."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Trainable models: name, plugin, the data each takes, summary. With a model's exact
    name: the data it takes and every config, sample and evaluate option."""
    entries = plugins.registry("models")
    if pattern in entries:
        from gm import describe, schema

        spec = entries[pattern]
        if not as_json:
            describe.print_model(spec)
            return
        print(
            json.dumps(
                {
                    "name": spec.name,
                    "plugin": spec.plugin,
                    "summary": spec.summary,
                    "modalities": list(spec.modalities),
                    "datasets": describe.datasets_for(spec),
                    "recipes": spec.recipes,
                    "recipe": spec.recipe,
                    **{
                        key: [vars(f) for f in schema.model_fields(spec, attr)]
                        for key, attr in (
                            ("config", "Config"),
                            ("sample_options", "SampleOptions"),
                            ("evaluate_options", "EvaluateOptions"),
                        )
                    },
                },
                indent=2,
            )
        )
        return
    rows = [
        {
            "name": s.name,
            "plugin": s.plugin,
            "trainer": s.trainer,
            "summary": s.summary,
            "modalities": list(s.modalities),
        }
        for s in entries.values()
        if _match(s.name, pattern)
    ]
    if as_json:
        _out(rows, True, [], "")
        return
    _one_line_each(rows, "gm list-models NAME: a model's data, config and options")


# What gm list-components lists: each registry of parts, as written on the command line.
LISTED = {
    "transition-operators": "transition_operators",
    "sequence-generators": "sequence_generators",
    "discriminators": "discriminators",
    "trainers": "trainers",
    "models": "models",
    "datasets": "datasets",
}


def cmd_list_components(
    kind: Optional[str] = typer.Argument(None, help=f"One of: {', '.join(LISTED)} (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Registered parts: transition operators, sequence generators, discriminators,
    trainers, models and datasets, each with its plugin and a one-line summary (choose one
    by --set operator=NAME, generator=NAME, discriminator=NAME)."""
    from gm import schema

    if kind is not None and kind.replace("_", "-") not in LISTED:
        raise GMError(
            f"unknown kind of component {kind!r}; choose one of {', '.join(LISTED)}."
            + _close_to(kind, list(LISTED))
        )
    kinds = [kind.replace("_", "-")] if kind else list(LISTED)
    rows = [
        {
            "kind": shown,
            "name": s.name,
            "plugin": s.plugin,
            # the record's summary, else the first sentence of the class's docstring
            "summary": _first_sentence(
                " ".join((s.summary or (s.target and schema.docstring(s.target))).split())
            ),
        }
        for shown in kinds
        for s in plugins.registry(LISTED[shown]).values()
    ]
    if as_json:
        _out(rows, True, [], "")
        return
    import shutil

    width = shutil.get_terminal_size((80, 24)).columns
    nw = max([len(r["name"]) for r in rows] + [4])
    pw = max([len(r["plugin"]) for r in rows] + [6])
    room = max(width - nw - pw - 6, 12)
    for shown in kinds:  # one line each, at the terminal's width (80 in a pipe)
        print(f"{shown}{HOW_CHOSEN.get(shown, '')}")
        for r in (r for r in rows if r["kind"] == shown):
            text = r["summary"] if len(r["summary"]) <= room else r["summary"][: room - 1] + "…"
            print(f"  {r['name']:<{nw}}  {r['plugin']:<{pw}}  {text}".rstrip())


HOW_CHOSEN = {
    "transition-operators": " (--set operator=NAME)",
    "sequence-generators": " (--set generator=NAME)",
    "discriminators": " (--set discriminator=NAME)",
    "models": " (gm train NAME)",
    "datasets": " (--dataset NAME)",
}


def _close_to(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def _first_sentence(text: str) -> str:
    """Up to the first ". " outside parentheses ("(Ho et al. 2020)" does not end one)."""
    depth = 0
    for i, c in enumerate(text):
        depth += (c == "(") - (c == ")")
        if c == "." and depth <= 0 and text[i + 1 : i + 2] == " ":
            return text[:i]
    return text.rstrip(".")


def _one_line_each(rows: list[dict[str, Any]], footer: str) -> None:
    """One line per model at the terminal's width (80 in a pipe): its name, the data it
    takes and the first sentence of its summary, cut with an ellipsis to fit."""
    import shutil

    width = shutil.get_terminal_size((80, 24)).columns
    kinds = [", ".join(r["modalities"]) or "any" for r in rows]
    nw = max([len("model")] + [len(r["name"]) for r in rows])
    kw = max([len("data")] + [len(k) for k in kinds])
    room = max(width - nw - kw - 4, 12)
    print(f"{'model':<{nw}}  {'data':<{kw}}  summary")
    for r, kind in zip(rows, kinds, strict=True):
        text = " ".join(r["summary"].split())
        first = _first_sentence(text)
        if len(first) > room:
            first = first[: room - 1].rstrip() + "…"
        print(f"{r['name']:<{nw}}  {kind:<{kw}}  {first}".rstrip())
    print(footer)


def _available(spec, data_dir: Optional[str]) -> bool:
    if not spec.available:
        return True
    from gm.specs import resolve

    try:
        return bool(resolve(spec.available)(data_dir))
    except Exception:  # noqa: BLE001 - a broken check means "not available", not a crash
        return False


def _cached(spec, data_dir: Optional[str]) -> Optional[str]:
    """What the cached copy of a dataset holds (None: none, or the plugin cannot say)."""
    if not getattr(spec, "cached", ""):
        return None
    from gm.specs import resolve

    try:
        text = resolve(spec.cached)(data_dir)
    except Exception:  # noqa: BLE001 - a broken description must not break the listing
        return None
    return str(text) if text else None


def cmd_list_datasets(
    pattern: Optional[str] = typer.Argument(None, help="Substring or glob."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    data_dir: Optional[str] = typer.Option(None, help="Local data folder."),
) -> None:
    """Datasets: name, modality, shape, splits, licence, whether usable offline now, and
    what each cached copy holds (source, examples, date)."""
    data_dir = data_dir or os.environ.get("GM_DATA_DIR")
    rows = [
        {
            "name": s.name,
            "plugin": s.plugin,
            "modality": s.modality,
            "shape": list(s.shape),
            "splits": list(s.splits),
            "source": s.source,
            "licence": s.licence,
            "offline": _available(s, data_dir),
            "summary": s.summary,
            "cached": _cached(s, data_dir),
        }
        for s in plugins.registry("datasets").values()
        if _match(s.name, pattern)
    ]
    _out(
        rows,
        as_json,
        ["name", "modality", "shape", "splits", "licence", "offline"],
        "gm datasets",
        names=("name", "modality", "shape", "offline"),
    )
    if not as_json:  # a cached copy says what it is: gm train would use exactly it
        for row in rows:
            if row["cached"]:
                typer.echo(f"{row['name']}: {row['cached']}")


RUN_HELP = "Run folder written by gm train, or a Hub model: hf://OWNER/NAME or OWNER/NAME."
THREADS_HELP = "CPU threads for torch (default: torch's choice; 1 is fastest for tiny models)."


def set_threads(threads: Optional[int]) -> None:
    if threads is None:
        return
    if threads < 1:
        raise GMError(f"--threads must be at least 1, got {threads}.")
    import torch

    torch.set_num_threads(threads)


def extra_options(args: list[str]) -> dict[str, str]:
    """``["--steps", "10", "--flag", "--k=v"]`` -> ``{"steps": "10", "flag": "true", "k": "v"}``."""
    out, i = {}, 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) < 3:
            raise GMError(f"unexpected argument {arg!r}; options look like --name value.")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
            else:
                value = "true"
        out[key.replace("-", "_")] = value
        i += 1
    return out


def _train_command(spec) -> Any:
    def train(
        ctx: typer.Context,
        dataset: Optional[str] = typer.Option(
            None, "--dataset", "-d", help="Dataset name, or images:DIR, text:FILE, array:FILE."
        ),
        steps: Optional[int] = typer.Option(None, help="Training steps (default: the model's)."),
        out: Optional[Path] = typer.Option(
            None, help="Run folder (default: runs/MODEL-DATASET-N)."
        ),
        set_: list[str] = typer.Option(
            [], "--set", help="Override a config value: key=value (repeatable)."
        ),
        config: Optional[Path] = typer.Option(None, "--config", help="TOML file of config values."),
        device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
        threads: Optional[int] = typer.Option(None, help=THREADS_HELP),
        seed: Optional[int] = typer.Option(None, help="Random seed (default 0)."),
        resume: Optional[Path] = typer.Option(
            None, help="Continue the run in this folder exactly."
        ),
        data_dir: Optional[str] = typer.Option(
            None, help="Folder of local dataset copies (or GM_DATA_DIR)."
        ),
        data_option: list[str] = typer.Option(
            [], "--data-option", help="Dataset option key=value (repeatable)."
        ),
        show_config: bool = typer.Option(
            False, "--show-config", help="Print the resolved config and exit."
        ),
        report_to: list[str] = typer.Option(
            [],
            "--report-to",
            help="Also send metrics to this logger: tensorboard, mlflow, or one a plugin adds "
            "(repeatable).",
        ),
        max_time: Optional[str] = typer.Option(
            None,
            "--max-time",
            help="Stop after this much training (90s, 10m, 1h30m) at a step boundary, saved.",
        ),
    ) -> None:
        from gm import config as configs

        # every argument is checked (gm.request.check) before anything is built, the keys
        # before torch is imported
        set_threads(threads)
        # Unknown --key value options are config overrides too: --mask X is --set mask=X.
        overrides: dict[str, Any] = {**extra_options(ctx.args), **configs.parse_assignments(set_)}
        if "steps" in overrides:  # --set steps=N is --steps N (which wins if both are given)
            given = overrides.pop("steps")
            steps = steps if steps is not None else given
        args: dict[str, Any] = {
            "steps": steps,
            "out": out,
            "device": device,
            "seed": seed,
            "resume": resume,
            "data_dir": data_dir,
            "data_options": configs.parse_assignments(data_option, source="--data-option"),
            "report_to": tuple(report_to),
            "max_time": max_time,
            "config_file": None if config is None else str(config),
        }
        if show_config:
            from gm import build
            from gm.request import TrainRequest, check

            request = check(TrainRequest(spec.name, dataset, overrides=overrides, **args))
            print(configs.dumps(build.show_config(request)))
            return
        from gm import api

        run = api.train(spec.name, dataset, _source="--set", **args, **overrides)
        from gm import distributed

        if int(os.environ.get("RANK", "0")) == 0 and not distributed.current().distributed:
            typer.echo(f"trained {spec.name}; run folder: {run}")

    train.__doc__ = f"{spec.summary or spec.name} [{spec.plugin}]"
    return train


def cmd_sample(
    ctx: typer.Context,
    run: str = typer.Argument(..., help=RUN_HELP),
    n: int = typer.Option(64, "-n", help="Number of samples."),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        "-o",
        help=".png picture or .npy array (token models: .txt); default: text models print "
        "on stdout, others write RUN/samples-seedS.png.",
    ),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    threads: Optional[int] = typer.Option(None, help=THREADS_HELP),
) -> None:
    """Generate from a trained model. Model options follow as --name value
    (walkback: --steps K --extra-steps M --chain-every k; sequences: --steps L --temperature t)."""
    import math

    from gm import config as configs
    from gm import distributed, hub
    from gm import progress as show
    from gm.data import to_data_units
    from gm.engine import seed_everything, write_atomically
    from gm.run import Run

    if n < 1:
        raise GMError("-n must be at least 1.")
    opened = Run.read(run)  # a wrong RUN is the first thing said, before --out
    as_text = out is None and _sample_form(opened) == "text"  # printed on stdout
    out = out or hub.default_out(run, f"samples-seed{seed}.png")
    set_threads(threads)
    if not as_text:
        _check_output(out)
    with show.enabled():
        trainer = Run.open(opened, distributed.choose_device(device)).trainer
    most = max(1, min(MAX_SAMPLES, MAX_VALUES // max(1, math.prod(trainer.info.shape))))
    if n > most:
        raise GMError(
            f"-n {n} is more than one call makes for this model (at most {most}); "
            "call gm sample several times with different --seed values."
        )
    options = configs.override(
        trainer.SampleOptions(),
        extra_options(ctx.args),
        source=f"gm sample ({trainer.name})",
        what="option",
    )
    opened.require("sample")
    seed_everything(seed)
    import torch

    with show.enabled(), show.timed(f"sampling {n} from {trainer.name}"), torch.no_grad():
        samples = trainer.sample(n, options)
    if as_text:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            trainer.write_samples(samples, Path(tmp) / "samples.txt", options)
            sys.stdout.write((Path(tmp) / "samples.txt").read_text())
        return
    if out.suffix == ".npy":  # numbers in the data's own units; pictures stay in the model's
        samples = to_data_units(samples, trainer.info)
    out.parent.mkdir(parents=True, exist_ok=True)
    from gm import pictures

    with pictures.context(reference=_reference(opened), title=f"{trainer.name}: {n} samples"):
        write_atomically(out, trainer, samples, options)
    typer.echo(f"wrote {out}")


def _sample_form(run) -> str:
    """The model's own form of its samples ("text" or "picture"; see Trainer.sample_form)."""
    from gm import build
    from gm.data import DataInfo

    cls = plugins.load(build.model_spec(run.model, str(run.record.get("plugin") or "")))
    return cls.sample_form(DataInfo.from_json(run.record["data"]))


def _reference(run) -> Any:
    """The run's 2-D data to draw under its samples (None when not 2-D or not at hand)."""
    from gm import pictures

    data = run.record["data"]
    if data["modality"] != "vector" or len(data["shape"]) != 1:
        return None
    try:
        return pictures.reference_for(run.dataset())
    except GMError:  # the data is not here (a Hub model, a moved file): samples alone
        return None


MAX_SAMPLES = 1_000_000  # per call of gm sample
MAX_VALUES = 2**28  # numbers per call (1 GiB of float32)


def _check_output(out: Path) -> None:
    """Refuse an output path that cannot be written before any work is done."""
    if out.is_dir():
        raise GMError(f"--out {out} is a folder; give a file name such as samples.png.")
    existing = next((p for p in out.parents if p.exists()), Path("."))
    if not existing.is_dir():
        raise GMError(f"--out {out} is inside {existing}, which is a file.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise GMError(f"--out {out} cannot be written: {existing} is not writable.")


def cmd_evaluate(
    ctx: typer.Context,
    run: str = typer.Argument(..., help=RUN_HELP),
    dataset: Optional[str] = typer.Option(
        None, "--dataset", "-d", help="Dataset (default: the run's)."
    ),
    split: str = typer.Option("test", help="Split to evaluate on."),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object of metric -> number."
    ),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    threads: Optional[int] = typer.Option(None, help=THREADS_HELP),
    data_dir: Optional[str] = typer.Option(
        None, help="Folder of local dataset copies (or GM_DATA_DIR)."
    ),
) -> None:
    """Measure a trained model on a dataset split (on the run's own dataset, also kept in
    RUN/evaluation.json for its model card). Model options follow as --name value."""
    from gm import config as configs
    from gm import distributed, hub
    from gm import progress as show
    from gm.data import in_data_units
    from gm.engine import seed_everything
    from gm.run import Run

    opened = Run.read(run)
    record = opened.record
    set_threads(threads)
    trainer = Run.open(opened, distributed.choose_device(device)).trainer
    options = configs.override(
        trainer.EvaluateOptions(),
        extra_options(ctx.args),
        source=f"gm evaluate ({trainer.name})",
        what="option",
    )
    data = opened.dataset(dataset, data_dir)
    if dataset is not None:
        _check_same_kind(data.info, trainer.info, dataset)
    opened.require("evaluate")
    seed_everything(seed)
    with show.enabled(), show.timed(f"evaluating {trainer.name} on {data.info.name} ({split})"):
        metrics = in_data_units(
            trainer.evaluate(data, split, options), data.info, trainer.DENSITY_METRICS
        )
    if dataset is None and hub.repo_id(run) is None:  # the run's own measure, for its card
        from gm.checkpoint import write_json

        found = {"dataset": data.info.name, "split": split, "seed": seed, "metrics": metrics}
        try:
            write_json(Path(run) / hub.EVALUATION, found)
        except OSError as err:  # a read-only run folder: the numbers are still printed
            import warnings

            from gm.errors import GMWarning

            warnings.warn(
                f"could not keep {hub.EVALUATION} in {run}: {err}", GMWarning, stacklevel=1
            )
    if as_json:
        print(json.dumps(metrics))
    else:
        notes = trainer.metric_notes(metrics)
        _out(
            [
                {"metric": k, "value": f"{v:.6g}", "measured by": notes.get(k, "")}
                for k, v in metrics.items()
            ],
            False,
            ["metric", "value", "measured by"] if notes else ["metric", "value"],
            f"{record['gm_model']} on {data.info.name} ({split})",
        )
        if trainer.EVALUATE_HINT:
            typer.echo(trainer.EVALUATE_HINT)
        if "data_log_jacobian" in metrics:
            typer.echo("log-densities are of the data as given: data_log_jacobian added.")


def _check_same_kind(data, trained, dataset: str) -> None:
    """The data a run is evaluated on must be of the kind it was trained on (sequences may
    differ in length)."""
    per_step = data.modality in ("sequence", "strokes")
    a, b = tuple(data.shape), tuple(trained.shape)
    if (
        data.modality != trained.modality
        or (a[1:] != b[1:] if per_step else a != b)
        or data.vocab_size != trained.vocab_size
    ):
        raise GMError(
            f"dataset {dataset!r} holds {data.modality} examples of shape {a}"
            f"{f' over {data.vocab_size} symbols' if data.vocab_size else ''}, but the run "
            f"was trained on {trained.modality} examples of shape {b}"
            f"{f' over {trained.vocab_size} symbols' if trained.vocab_size else ''}."
        )


def cmd_plot(
    runs: list[str] = typer.Argument(..., help="Run folders (or Hub models) to overlay."),
    metric: str = typer.Option("loss", "--metric", "-m", help="A column of metrics.jsonl."),
    x: str = typer.Option("step", "--x", help="step or time (wall seconds)."),
    out: Path = typer.Option(..., "--out", "-o", help="The .png to write."),
) -> None:
    """Training curves of one or more runs, overlaid (from their metrics.jsonl)."""
    from gm.plotting import plot_runs

    if out.suffix.lower() != ".png":
        raise GMError(f"gm plot writes a .png picture; got --out {out}.")
    if x not in ("step", "time"):
        raise GMError(f"--x is step or time, got {x!r}.")
    image = plot_runs(runs, metric, x=x)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
    typer.echo(f"wrote {out}")


def cmd_push(
    run: Path = typer.Argument(..., help="Run folder written by gm train."),
    repo: str = typer.Argument(..., help="Hub model repo: OWNER/NAME."),
    private: bool = typer.Option(False, "--private", help="Create the repo private."),
    license: Optional[str] = typer.Option(
        None,
        "--license",
        help="Licence of the weights for the card (e.g. mit, cc-by-4.0; default: the "
        "dataset's; needed for your own data).",
    ),
    dry_run: Optional[Path] = typer.Option(
        None, "--dry-run", help="Write the files to this folder and upload nothing."
    ),
) -> None:
    """Upload a run to the Hugging Face Hub: config.json, model.safetensors, metrics and
    a generated model card (then gm sample hf://OWNER/NAME works anywhere)."""
    from gm import hub

    if dry_run is not None:
        files = hub.prepare(run, repo, dry_run, license=license)
        typer.echo(f"would upload to {repo}: {', '.join(files)} (written to {dry_run})")
        return
    url, files = hub.push(run, repo, private=private, license=license)
    typer.echo(f"pushed {', '.join(files)} to {url}")


def build_app() -> typer.Typer:
    app = typer.Typer(
        cls=SuggestingGroup,
        no_args_is_help=True,
        add_completion=False,
        help="gm: iterative generative models (walkback, professor forcing, "
        "imputation policies) with one engine and CLI.",
    )
    app.command("plugins")(cmd_plugins)
    app.command("list-models")(cmd_list_models)
    app.command("list-datasets")(cmd_list_datasets)
    app.command("list-components")(cmd_list_components)
    train_app = typer.Typer(
        cls=ModelGroup, no_args_is_help=True, help="Train a model: gm train MODEL --dataset NAME."
    )
    for spec in plugins.registry("models").values():
        helper = type("ConfigHelp", (ConfigHelpCommand,), {"spec": spec})
        try:
            train_app.command(spec.name, cls=helper, context_settings=EXTRA)(_train_command(spec))
        except Exception as err:  # noqa: BLE001 - one odd model record must not break gm
            _skip(spec, err)
    app.add_typer(train_app, name="train")
    app.command("sample", context_settings=EXTRA)(cmd_sample)
    app.command("evaluate", context_settings=EXTRA)(cmd_evaluate)
    app.command("plot")(cmd_plot)
    app.command("push")(cmd_push)
    for spec in plugins.registry("commands").values():
        try:
            target = spec.load()
            if isinstance(target, typer.Typer):
                app.add_typer(target, name=spec.name, help=spec.summary, rich_help_panel="Plugins")
            elif _is_command(target):
                app.command(
                    spec.name,
                    help=spec.summary or None,
                    rich_help_panel="Plugins",
                    context_settings=EXTRA,
                )(target)
            else:
                raise TypeError(
                    f"{spec.target} is a {type(target).__name__}, not a typer.Typer or a "
                    "function whose parameters are all annotated"
                )
        except (Exception, SystemExit) as err:  # noqa: BLE001 - a broken verb must not break gm
            _skip(spec, err)

    def version(value: bool) -> None:
        if value:
            typer.echo(f"gm {__version__}")
            raise typer.Exit()

    @app.callback()
    def _root(
        _v: bool = typer.Option(
            False, "--version", callback=version, is_eager=True, help="Show the version and exit."
        ),
    ) -> None:
        pass

    return app


def _is_command(target: Any) -> bool:
    """A function typer can make a verb of: every parameter annotated or a typer option
    (a plugin naming some other callable, ``json:loads`` say, is refused)."""
    import inspect

    if not inspect.isfunction(target):
        return False
    params = inspect.signature(target).parameters.values()
    return all(
        p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and (
            p.annotation is not p.empty
            or isinstance(p.default, (typer.models.OptionInfo, typer.models.ArgumentInfo))
        )
        for p in params
    )


def _skip(spec, err: BaseException) -> None:
    import warnings

    warnings.warn(
        f"gm command {spec.name!r} from {spec.plugin} failed to load "
        f"({type(err).__name__}: {err}); continuing without it.",
        plugins.PluginWarning,
        stacklevel=2,
    )


def _fail(message: str, code: int) -> None:
    from gm import progress

    progress.settle()  # a status line not shown yet stays unshown: the error is the line
    print(f"gm: error: {message}", file=sys.stderr)
    sys.exit(code)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from gm.errors import GMWarning

    if issubclass(category, GMWarning):
        print(f"gm: warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = __import__("warnings").showwarning


def _main(argv: Optional[list[str]] = None) -> None:
    import signal
    import threading
    import warnings

    warnings.showwarning = _show_warning
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):  # the training loop installs its own
            signal.signal(sig, raise_interrupted)
    try:
        command = typer.main.get_command(build_app())
        from gm import progress

        with progress.enabled():  # every verb, plugins' too, shows its progress on stderr
            try:
                code = command.main(args=argv, prog_name="gm", standalone_mode=False)
            finally:
                progress.settle()
    except GMError as err:
        _fail(str(err), err.exit_code)
    except TrainingStopped as err:
        _fail(str(err), err.exit_code)
    except Interrupted as err:
        if os.environ.get("RANK", "0") == "0":  # every rank stops alike; one says so
            print(f"gm: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("gm: interrupted (SIGINT).", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as err:  # usage errors (typer vendors click's exceptions)
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        _fail(f"{message} (see gm --help)", getattr(err, "exit_code", 2))
    except OSError as err:  # the disk or the system, not the user: one line, exit 1
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        _fail(f"{where}{err.strerror or err}.", 1)
    except MemoryError:
        _fail("out of memory; use a smaller -n, batch or model.", 1)
    if isinstance(code, int) and code:  # typer returns, not raises, an exit code
        sys.exit(code)


def main(argv: Optional[list[str]] = None) -> None:
    """The ``gm`` command line. As the program (no ``argv``) it leaves through :func:`_exit`,
    so a signal at any moment until the process ends is 130/143 and one line."""
    if argv is not None:
        _main(argv)
        return
    try:
        try:
            _main(None)
            code = 0
        except SystemExit as err:
            code = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
        _exit(code)
    except Interrupted as err:  # landed after the verb's own handling, before _exit's
        _late_signal(err.signum, None)


def _late_signal(signum: int, frame: Any) -> None:
    """A signal once the command is over (in atexit, say): one line, exit 128 + signum."""
    import signal

    with contextlib.suppress(Exception):
        sys.stdout.flush()
    name = signal.Signals(signum).name
    os.write(2, f"gm: interrupted ({name}) while exiting; the command had finished.\n".encode())
    os._exit(128 + signum)


def _exit(code: int) -> None:
    """End the process: other threads joined, stdio flushed and atexit callbacks run with
    :func:`_late_signal` as the handler, then ``os._exit``. Python's own finalisation would
    restore the default handlers (death with no line) or drop a signal that lands in it
    (exit 0 after "Exception ignored in atexit callback")."""
    import atexit
    import signal
    import threading

    caught = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        for sig in caught:
            signal.signal(sig, _late_signal)
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    signal.pthread_sigmask(signal.SIG_BLOCK, caught)  # from here a signal waits ...
    pending = sorted(set(caught) & signal.sigpending())
    if pending:  # ... and is said
        _late_signal(pending[0], None)
    os._exit(code)


if __name__ == "__main__":
    main()
