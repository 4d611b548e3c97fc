"""Version checks for saved runs: a run records the gm-core and plugin versions that wrote
it; loading it under versions that may read it differently prints one warning.

Compatible means the same release series (same major, or same major.minor before 1.0),
and gm-core inside the range the model's plugin declares (``gm-core>=0.1,<0.2``).
"""

from __future__ import annotations

import warnings
from importlib.metadata import PackageNotFoundError, requires
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

import gm
from gm.plugins import PluginWarning, _version


class VersionWarning(PluginWarning):
    """A run was saved by versions of gm that may read it differently."""


def _series(v: Version) -> tuple[int, ...]:
    return (v.major,) if v.major >= 1 else (0, v.minor)


def same_series(a: str, b: str) -> bool:
    """True when versions a and b promise the same saved format (unparseable: assume so)."""
    try:
        return _series(Version(a)) == _series(Version(b))
    except InvalidVersion:
        return True


def core_range(distribution: str) -> SpecifierSet | None:
    """The gm-core versions ``distribution`` declares it works with (None: undeclared)."""
    try:
        reqs = requires(distribution) or []
    except PackageNotFoundError:
        return None
    for line in reqs:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.name == "gm-core" and not req.marker and str(req.specifier):
            return req.specifier
    return None


def problems(record: dict[str, Any], *, core: str | None = None) -> list[str]:
    """What may be incompatible between a run record and the installed versions."""
    core = core or gm.__version__
    out = []
    saved_core = str(record.get("gm_core_version") or "")
    if saved_core and not same_series(saved_core, core):
        out.append(f"it was saved by gm-core {saved_core} and gm-core {core} is installed")
    plugin, saved_plugin = record.get("plugin") or "", str(record.get("plugin_version") or "")
    if plugin and plugin != "gm-core":
        installed = _version(plugin)
        if saved_plugin and installed != "unknown" and not same_series(saved_plugin, installed):
            out.append(
                f"it was saved by {plugin} {saved_plugin} and {plugin} {installed} is installed"
            )
        allowed = core_range(plugin)
        if allowed is not None and saved_core:
            try:
                if Version(saved_core) not in allowed:
                    out.append(
                        f"{plugin} works with gm-core{allowed}, the run was saved by {saved_core}"
                    )
            except InvalidVersion:
                pass
    return out


def check_record(record: dict[str, Any], where: str = "this run") -> None:
    """Warn once, in one sentence, when the installed versions may misread the run."""
    found = problems(record)
    if found:
        warnings.warn(
            f"{where} may not load as it was trained: {'; '.join(found)}. "
            "Install the versions named in its config.json if results look wrong.",
            VersionWarning,
            stacklevel=3,
        )
