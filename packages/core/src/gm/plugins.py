"""The plugin manager and the registries built from it.

The manager is built once, on first use: core's built-in plugin first, then every
``gm`` entry point. A plugin that fails to import is a warning naming its distribution;
everything else keeps working. A name registered twice is an error naming both
distributions. ``GM_DISABLE_PLUGINS=a,b`` skips plugins, ``GM_LOAD_PLUGINS=a,b`` loads
only those (entry-point or distribution names; core's built-ins are always loaded).
"""

from __future__ import annotations

import difflib
import importlib
import os
import warnings
from dataclasses import dataclass, replace
from functools import cache
from importlib.metadata import entry_points
from typing import Any

import pluggy

from gm import hookspecs
from gm.errors import GMError
from gm.specs import Spec

BUILTIN = "gm-core"

# Where each name lives, so an unknown name can say which distribution to install.
KNOWN_ELSEWHERE = {
    **dict.fromkeys(["walkback", "diffusion"], "gm-walkback"),
    **dict.fromkeys(
        ["professor-forcing", "teacher-forcing", "scheduled-sampling"], "gm-professor-forcing"
    ),
    **dict.fromkeys(
        [
            "gpsi-add",
            "gpsi-jump",
            "lstm-add",
            "lstm-jump",
            "draw-gps",
            "vae-imputer",
            "template-matching",
        ],
        "gm-imputation",
    ),
    **dict.fromkeys(
        [
            "mnist",
            "binarized-mnist",
            "cifar10",
            "svhn",
            "svhn-gray",
            "celeba",
            "tfd",
            "ptb-char",
            "sequential-mnist",
            "iam-ondb",
            "digits",
        ],
        "gm-datasets",
    ),
}

KINDS = {
    "models": "gm_models",
    "datasets": "gm_datasets",
    "transition_operators": "gm_transition_operators",
    "sequence_generators": "gm_sequence_generators",
    "discriminators": "gm_discriminators",
    "trainers": "gm_trainers",
    "commands": "gm_commands",
    "loggers": "gm_loggers",
}


class PluginWarning(UserWarning):
    """A plugin could not be loaded; the rest of gm works without it."""


@dataclass(frozen=True)
class PluginInfo:
    name: str  # entry-point name
    distribution: str
    version: str
    module: str
    hooks: tuple[str, ...]


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
        if {ep.name, dist} & disabled or (only is not None and not {ep.name, dist} & only):
            continue
        if pm.has_plugin(ep.name):
            raise GMError(
                f"two installed distributions declare the gm plugin {ep.name!r} "
                f"({_DISTRIBUTIONS[ep.name][0]} and {dist}); uninstall one of them."
            )
        try:
            module = importlib.import_module(ep.value.partition(":")[0])
        except Exception as err:  # noqa: BLE001 - any failure in a plugin must not break gm
            warnings.warn(
                f"gm plugin {ep.name!r} from distribution {dist} failed to import "
                f"({type(err).__name__}: {err}); continuing without it.",
                PluginWarning,
                stacklevel=2,
            )
            continue
        _DISTRIBUTIONS[ep.name] = (dist, ep.dist.version if ep.dist else "")
        try:
            pm.register(module, name=ep.name)
        except pluggy.PluginValidationError as err:
            warnings.warn(
                f"gm plugin {ep.name!r} from distribution {dist} is invalid ({err}); "
                "continuing without it.",
                PluginWarning,
                stacklevel=2,
            )
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as err:
        name = pm.get_name(err.plugin) or "?"
        dist = _DISTRIBUTIONS.get(name, (name, ""))[0]
        raise GMError(
            f"gm plugin from {dist} implements an unknown hook ({err}); fix its "
            f"spelling, or skip it with GM_DISABLE_PLUGINS={dist}."
        ) from None
    return pm


_DISTRIBUTIONS: dict[str, tuple[str, str]] = {}


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def plugins() -> list[PluginInfo]:
    """What is loaded: one record per plugin with its distribution and hooks."""
    pm = manager()
    out = []
    for name, module in pm.list_name_plugin():
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(module) or []))
        dist, ver = _DISTRIBUTIONS.get(name, (name, ""))
        out.append(PluginInfo(name, dist, ver, getattr(module, "__name__", str(module)), hooks))
    return out


@cache
def registry(kind: str) -> dict[str, Any]:
    """All records of one kind (``"models"``, ``"datasets"``, ...), by name."""
    pm = manager()
    hook = getattr(pm.hook, KINDS[kind])
    found: dict[str, Spec] = {}
    # Call each implementation alone so every record is attributed to its distribution.
    for impl in reversed(hook.get_hookimpls()):
        dist = _DISTRIBUTIONS.get(impl.plugin_name, (impl.plugin_name, ""))[0]
        for spec in impl.function() or ():
            if spec.name in found:
                raise GMError(
                    f"{kind[:-1].replace('_', ' ')} {spec.name!r} is registered by both "
                    f"{found[spec.name].plugin} and {dist}; uninstall one, or set "
                    f"GM_DISABLE_PLUGINS to skip one."
                )
            found[spec.name] = replace(spec, plugin=dist)
    return dict(sorted(found.items()))


def get(kind: str, name: str) -> Any:
    """One record by name, or a :class:`GMError` suggesting close names and plugins."""
    entries = registry(kind)
    if name in entries:
        return entries[name]
    what = kind[:-1].replace("_", " ")
    hint = ""
    close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
    if name in KNOWN_ELSEWHERE:
        hint = f" It is provided by {KNOWN_ELSEWHERE[name]}: pip install {KNOWN_ELSEWHERE[name]}."
    elif close:
        hint = " Did you mean " + " or ".join(repr(c) for c in close) + "?"
    elif entries:
        hint = f" Known: {', '.join(entries)}."
    raise GMError(f"unknown {what} {name!r}.{hint}")


def reset() -> None:
    """Forget the manager and registries (tests, or after installing a plugin in-process)."""
    manager.cache_clear()
    registry.cache_clear()
    _DISTRIBUTIONS.clear()
