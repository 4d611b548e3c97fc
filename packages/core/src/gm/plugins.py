"""The plugin manager and the registries built from it.

The manager is built once, on first use: core's built-in plugin first, then every
``gm`` entry point. Everything a plugin hands over is checked at this boundary: a plugin
that fails to import (even by ``sys.exit``), implements a misspelt hook, or shares its
entry-point name with another, a hook that raises, and a hook result that is not a record
of the hook's kind are each a warning naming the distribution, and gm goes on without
that part (``gm plugins`` lists the problems). A name registered by two distributions is
listed once with a warning; using it is an error naming both. ``GM_DISABLE_PLUGINS=a,b`` skips plugins, ``GM_LOAD_PLUGINS=a,b`` loads
only those (entry-point or distribution names; core's built-ins are always loaded).
"""

from __future__ import annotations

import difflib
import importlib
import os
import time
import typing
import warnings
from dataclasses import dataclass, replace
from functools import cache
from importlib.metadata import entry_points
from typing import Any

import pluggy

from gm import hookspecs
from gm.errors import GMError, GMWarning
from gm.specs import CAPABILITIES, CapabilitySpec, FastPathSpec, ModelSpec, Spec

BUILTIN = "gm-core"
SLOW_IMPORT_S = 2.0  # a plugin importing slower than this gets a warning

KINDS = {
    "models": "gm_models",
    "datasets": "gm_datasets",
    "transition_operators": "gm_transition_operators",
    "sequence_generators": "gm_sequence_generators",
    "discriminators": "gm_discriminators",
    "trainers": "gm_trainers",
    "commands": "gm_commands",
    "loggers": "gm_loggers",
    "fast_paths": "gm_fast_paths",
    "capabilities": "gm_capabilities",
}


# The record type of each kind, read from its hook's return annotation (one place).
RECORDS: dict[str, type[Spec] | type[ModelSpec]] = {
    kind: typing.get_args(typing.get_type_hints(getattr(hookspecs, hook))["return"])[0]
    for kind, hook in KINDS.items()
}


class PluginWarning(GMWarning):
    """A plugin could not be loaded; the rest of gm works without it."""


@dataclass(frozen=True)
class PluginInfo:
    name: str  # entry-point name
    distribution: str
    version: str
    module: str
    hooks: tuple[str, ...]
    problems: tuple[str, ...] = ()


_PROBLEMS: dict[str, list[str]] = {}  # plugin name -> what went wrong, as warned
_FAILED: dict[str, tuple[str, str]] = {}  # plugins left out: name -> (distribution, module)
_CONFLICTS: dict[tuple[str, str], tuple[str, str]] = {}  # (kind, name) -> both distributions


def _problem(name: str, message: str) -> None:
    dist = _DISTRIBUTIONS.get(name, _FAILED.get(name, (name, "")))[0]
    _PROBLEMS.setdefault(name, []).append(message)
    warnings.warn(
        f"gm plugin {name!r} from distribution {dist} {message}.", PluginWarning, stacklevel=3
    )


def _selected(env: str) -> set[str] | None:
    raw = os.environ.get(env, "").strip()
    return {s.strip() for s in raw.split(",") if s.strip()} if raw else None


@cache
def manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (built on first call)."""
    pm = pluggy.PluginManager("gm")
    pm.add_hookspecs(hookspecs)
    from gm.builtins import plugin as builtin

    pm.register(builtin, name=BUILTIN)
    _DISTRIBUTIONS[BUILTIN] = (BUILTIN, _version(BUILTIN))
    disabled = _selected("GM_DISABLE_PLUGINS") or set()
    only = _selected("GM_LOAD_PLUGINS")
    for ep in entry_points(group="gm"):
        dist = ep.dist.name if ep.dist else ep.name
        version = ep.dist.version if ep.dist else ""
        if {ep.name, dist} & disabled or (only is not None and not {ep.name, dist} & only):
            continue
        if pm.has_plugin(ep.name) or ep.name in _FAILED:
            other = _DISTRIBUTIONS.get(ep.name, _FAILED.get(ep.name, ("?", "")))[0]
            if other == dist:
                continue  # the same distribution seen twice on sys.path
            warnings.warn(
                f"gm plugin {ep.name!r} from distribution {dist} has the name of one from "
                f"{other}; ignoring it (uninstall one of them).",
                PluginWarning,
                stacklevel=2,
            )
            continue
        module_name = ep.value.partition(":")[0]
        began = time.perf_counter()
        try:
            module = importlib.import_module(module_name)
            took = time.perf_counter() - began
            if took > SLOW_IMPORT_S:  # every gm command, --help too, waits for it
                _DISTRIBUTIONS[ep.name] = (dist, version)
                _problem(
                    ep.name,
                    f"took {took:.1f} s to import, which every gm command waits for; "
                    "ask its authors to import heavy modules lazily",
                )
        except (Exception, SystemExit) as err:  # noqa: BLE001 - a plugin must not break gm
            _FAILED[ep.name] = (dist, module_name)
            what = (
                f"exited (sys.exit({err.code!r}))"
                if isinstance(err, SystemExit)
                else (f"failed ({type(err).__name__}: {err})")
            )
            _problem(ep.name, f"{what} while importing; continuing without it")
            continue
        _DISTRIBUTIONS[ep.name] = (dist, version)
        try:
            pm.register(module, name=ep.name)
        except (pluggy.PluginValidationError, ValueError) as err:
            _FAILED[ep.name] = (dist, module_name)
            _problem(ep.name, f"is invalid ({err}); continuing without it")
    while True:  # a misspelt hook leaves out that plugin, not gm
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as err:
            name = pm.get_name(err.plugin) or "?"
            pm.unregister(err.plugin)
            module_name = getattr(err.plugin, "__name__", str(err.plugin))
            _FAILED[name] = (_DISTRIBUTIONS.get(name, (name, ""))[0], module_name)
            _problem(
                name,
                f"implements an unknown hook ({err}); fix its spelling. Continuing without it",
            )
    return pm


_DISTRIBUTIONS: dict[str, tuple[str, str]] = {}


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def plugins() -> list[PluginInfo]:
    """What is loaded, and what was left out: one record per plugin with its distribution,
    hooks and problems."""
    pm = manager()
    for kind in KINDS:  # calling the hooks finds the problems they have
        registry(kind)
    out = []
    for name, module in pm.list_name_plugin():
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(module) or []))
        dist, ver = _DISTRIBUTIONS.get(name, (name, ""))
        out.append(
            PluginInfo(
                name,
                dist,
                ver,
                getattr(module, "__name__", str(module)),
                hooks,
                tuple(_PROBLEMS.get(name, ())),
            )
        )
    for name, (dist, module_name) in _FAILED.items():
        ver = _DISTRIBUTIONS.get(name, (dist, ""))[1]
        out.append(PluginInfo(name, dist, ver, module_name, (), tuple(_PROBLEMS.get(name, ()))))
    return out


def _is_record(item: Any, cls: type[Spec] | type[ModelSpec]) -> bool:
    return (
        isinstance(item, cls)
        and isinstance(item.name, str)
        and item.name.strip() == item.name != ""
        and isinstance(item.summary, str)
        and (_is_model(item) if isinstance(item, ModelSpec) else _is_lazy(item))
        and (not isinstance(item, FastPathSpec) or _is_names(item.devices))
        and (not isinstance(item, CapabilitySpec) or isinstance(item.lacks, str))
    )


# Records with nothing to import (data only); a model names a registered trainer.
_UNLOADED = (FastPathSpec, CapabilitySpec)


def _is_lazy(item: Spec) -> bool:
    return isinstance(item, _UNLOADED) or (isinstance(item.target, str) and ":" in item.target)


def _is_names(items: Any) -> bool:
    return isinstance(items, tuple) and all(isinstance(i, str) for i in items)


def _is_model(item: ModelSpec) -> bool:
    return (
        isinstance(item.trainer, str)
        and item.trainer != ""
        and isinstance(item.recipes, dict)
        and all(isinstance(v, (dict, str)) for v in item.recipes.values())
        and isinstance(item.recipe, str)
        and (item.recipe == "" or item.recipe in item.recipes)
        and _is_names(item.capabilities)
        and set(item.capabilities) <= set(capabilities())
    )


def capabilities() -> tuple[str, ...]:
    """Every capability a model may declare: core's :data:`~gm.specs.CAPABILITIES` and the
    ones plugins register (``gm_capabilities``)."""
    return CAPABILITIES + tuple(registry("capabilities"))


@cache
def registry(kind: str) -> dict[str, Any]:
    """All records of one kind (``"models"``, ``"datasets"``, ...), by name."""
    pm = manager()
    hook_name = KINDS[kind]
    hook = getattr(pm.hook, hook_name)
    record = RECORDS[kind]
    found: dict[str, Any] = {}
    # Call each implementation alone so every record is attributed to its distribution.
    for impl in reversed(hook.get_hookimpls()):
        name = impl.plugin_name
        dist = _DISTRIBUTIONS.get(name, (name, ""))[0]
        try:
            result = impl.function()
            items = [] if result is None else list(result)
        except (Exception, SystemExit) as err:  # noqa: BLE001 - a plugin must not break gm
            _problem(
                name,
                f"has a {hook_name} hook that failed ({type(err).__name__}: {err}); "
                "ignoring what it registers",
            )
            continue
        for item in items:
            if not _is_record(item, record):
                _problem(
                    name,
                    f"has a {hook_name} hook that returned {_short(item)}, not a "
                    f"{record.__name__}; ignoring that entry",
                )
                continue
            if item.name in found:
                first = found[item.name].plugin
                _CONFLICTS[(kind, item.name)] = (first, dist)
                warnings.warn(
                    f"{_one(kind)} {item.name!r} is registered by both "
                    f"{first} and {dist}; uninstall one, or set GM_DISABLE_PLUGINS to skip one.",
                    PluginWarning,
                    stacklevel=2,
                )
                continue
            found[item.name] = replace(item, plugin=dist)
    return dict(sorted(found.items()))


def _one(kind: str) -> str:
    """One record of ``kind`` in words: ``"transition operator"``, ``"capability"``."""
    return (kind[:-3] + "y" if kind.endswith("ies") else kind[:-1]).replace("_", " ")


def _short(item: Any) -> str:
    try:
        text = repr(item)
    except Exception:  # noqa: BLE001 - a hostile __repr__
        text = f"a {type(item).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def get(kind: str, name: str) -> Any:
    """One record by name, or a :class:`GMError` suggesting close names and plugins."""
    entries = registry(kind)
    what = _one(kind)
    if (kind, name) in _CONFLICTS:
        a, b = _CONFLICTS[(kind, name)]
        raise GMError(
            f"{what} {name!r} is registered by both {a} and {b}; uninstall one, or set "
            f"GM_DISABLE_PLUGINS={b} to skip one."
        )
    if name in entries:
        return entries[name]
    hint = ""
    close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
    if close:
        hint = " Did you mean " + " or ".join(repr(c) for c in close) + "?"
    elif entries:
        hint = f" Known: {', '.join(entries)}."
    raise GMError(f"unknown {what} {name!r}.{hint}")


COMPONENTS = ("transition_operators", "sequence_generators", "discriminators")


def component(kind: str, name: str) -> Any:
    """The registered component class ``name`` of ``kind`` (one of :data:`COMPONENTS`).

    Trainers build their parts only through this, so a plugin's operator, generator or
    discriminator is chosen by ``--set operator=NAME`` (``generator=``, ``discriminator=``)
    without a line of the trainer changing. Each class has ``build(config, info, ...)``
    (the contracts are in :mod:`gm.testing`)."""
    if kind not in COMPONENTS:
        raise ValueError(f"kind must be one of {COMPONENTS}, not {kind!r}")
    spec = get(kind, name)
    cls = load(spec)
    if not callable(getattr(cls, "build", None)):
        raise GMError(
            f"{_one(kind)} {name!r} from {spec.plugin} has no "
            "build(config, info, ...) classmethod; it cannot be used (fix or uninstall it)."
        )
    return cls


def load(spec: Spec | ModelSpec) -> Any:
    """The object a record names, or one line saying which distribution is broken."""
    try:
        return spec.load()
    except (Exception, SystemExit) as err:  # noqa: BLE001 - a plugin must not break gm
        if isinstance(err, GMError):
            raise
        raise GMError(
            f"{spec.name!r} from {spec.plugin or 'a plugin'} cannot be loaded "
            f"({getattr(spec, 'target', spec.name)}: {type(err).__name__}: {err}); "
            f"reinstall {spec.plugin or 'it'}."
        ) from None


def reset() -> None:
    """Forget the manager and registries (tests, or after installing a plugin in-process)."""
    manager.cache_clear()
    registry.cache_clear()
    for table in (_DISTRIBUTIONS, _PROBLEMS, _FAILED, _CONFLICTS):
        table.clear()
