"""Config dataclasses: the one source of truth for a run.

A model's config is a flat dataclass of plain values. ``--config file.toml`` and
``--set key=value`` override it, ``config.json`` records it, and loading rebuilds it.
Unknown keys, ill-typed values and values outside a field's declared range (``BOUNDS``,
merged along the class hierarchy, so a subclass that redefines a field keeps its bound)
are :class:`GMError` s naming the field, the value and what is valid. A float must be
finite everywhere.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from gm.errors import GMError

C = TypeVar("C")

# A fast path's switch: "auto" turns it on where bench/ measured it faster (gm.fastpath).
Switch = Literal["auto", "on", "off"]


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed values of a number: ``lo <= v <= hi`` (``lo < v`` with ``open_lo``)."""

    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False

    def __contains__(self, v: Any) -> bool:
        if self.lo is not None and (v <= self.lo if self.open_lo else v < self.lo):
            return False
        return self.hi is None or v <= self.hi

    def __str__(self) -> str:
        lo = f"{'greater than' if self.open_lo else 'at least'} {self.lo}"
        if self.hi is None:
            return lo
        return f"at most {self.hi}" if self.lo is None else f"{lo} and at most {self.hi}"


def bounds(cls: type) -> dict[str, Range]:
    """Every declared range of a config class, subclasses' declarations winning."""
    out: dict[str, Range] = {}
    for klass in reversed(cls.__mro__):
        out.update(vars(klass).get("BOUNDS", {}))
    return out


@dataclasses.dataclass
class TrainConfig:
    """Settings every model shares; model configs subclass it and add their own."""

    steps: int = 10_000
    batch_size: int = 128  # global: split evenly across torchrun processes
    lr: float = 1e-3
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA
    compile: Switch = "off"  # torch.compile the trainer's modules for training
    fused_optimizer: Switch = "auto"  # one fused kernel per optimiser step (Trainer.adam)
    log_every: int = 50
    checkpoint_every: int = 1000
    sample_every: int = 0  # write a sample picture every N steps (0: only at the end)
    recipe: str = ""  # a named set of defaults the model registers ('': none; gm list-models MODEL)

    BOUNDS: ClassVar[dict[str, Range]] = {
        "steps": Range(1, 10**12),  # more is a typo (1e30), not a plan
        "batch_size": Range(1),
        "lr": Range(0),  # 0 freezes the weights (tests and probes use it)
        "log_every": Range(1),
        "checkpoint_every": Range(1),
        "sample_every": Range(0),
    }


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is tuple:
        return "a comma-separated list of " + _type_name(typing.get_args(tp)[0])
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(tp, "None" if tp is type(None) else getattr(tp, "__name__", str(tp)))


def coerce(value: Any, tp: Any) -> Any:
    """Convert ``value`` (a CLI string or a TOML/JSON value) to ``tp``; ValueError if it can't."""
    origin = typing.get_origin(tp)
    if tp == Switch and (isinstance(value, bool) or str(value).lower() in ("true", "false")):
        return "on" if value is True or str(value).lower() == "true" else "off"  # older runs
    if origin is Literal:
        for choice in typing.get_args(tp):
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        raise ValueError
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and value in (None, "none", "None", "null"):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg)
            except ValueError:
                pass
        raise ValueError
    if origin is tuple:
        (inner, *_rest) = typing.get_args(tp)
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(
            coerce(v.strip() if isinstance(v, str) else v, inner) for v in items if v != ""
        )
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
    if tp is float:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError
        return value
    return value


def check_values(
    cls: type,
    values: Mapping[str, Any],
    *,
    source: str = "--set",
    what: str = "config key",
    listed: str = "gm list-models MODEL",
) -> dict[str, Any]:
    """``values`` converted to the types of the dataclass ``cls``'s fields, each checked
    (a known key, its type, finite, in its declared range) without building a config, so a
    bad value is refused before any data is loaded or any model built."""
    hints = _hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    limits = bounds(cls)
    changes = {}
    for key, raw in values.items():
        if key not in fields:
            raise GMError(f"unknown {what} {key!r} in {source}.{closest(key, fields, listed)}")
        try:
            value = changes[key] = coerce(raw, hints[key])
        except (ValueError, TypeError, OverflowError):
            raise GMError(
                f"{what} {key!r} expects {_type_name(hints[key])}, got {_show(raw)} (in {source})."
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise GMError(f"{what} {key!r} must be a finite number, got {value} (in {source}).")
        if key in limits and isinstance(value, (int, float)) and value not in limits[key]:
            raise GMError(f"{what} {key!r} must be {limits[key]}, got {_show(raw)} (in {source}).")
    return changes


def closest(key: str, valid: Any, listed: str) -> str:
    """The close names of a mistyped key, or that none is close and which command lists
    them all with their types (never a list of forty keys in one line)."""
    close = difflib.get_close_matches(key, sorted(valid), n=3, cutoff=0.6)
    if close:
        return f" Did you mean {' or '.join(map(repr, close))}?"
    if not valid:
        return " There are none."
    return f" No valid key is close; {listed} lists all {len(valid)}."


def override(
    config: C, values: Mapping[str, Any], *, source: str = "--set", what: str = "config key"
) -> C:
    """A copy of ``config`` with ``values`` applied, each checked against the field's type."""
    changes = check_values(type(config), values, source=source, what=what)
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def _show(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_assignments(items: list[str], *, source: str = "--set") -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise GMError(f"{source} expects key=value, got {item!r}.")
        out[key.strip()] = value.strip()
    return out


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([dhms])")
_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: Any, *, source: str = "--max-time") -> float:
    """Seconds from ``90`` (seconds), ``"90s"``, ``"10m"``, ``"1h30m"`` or ``"1.5h"``; a
    :class:`GMError` for anything else or a duration that is not positive."""
    text = str(value).strip().lower().replace(" ", "")
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise GMError(
                f"{source} expects a duration such as 90s, 10m or 1h30m, got {_show(value)}."
            ) from None
        seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise GMError(f"{source} must be a positive duration such as 10m, got {_show(value)}.")
    return seconds


def read_toml(path: str | Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    path = Path(path)
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise GMError(f"config file {path} does not exist.") from None
    except UnicodeDecodeError as err:
        raise GMError(f"config file {path} is not UTF-8 text ({err.reason}).") from None
    except OSError as err:
        raise GMError(f"config file {path} cannot be read ({err.strerror or err}).") from None
    except tomllib.TOMLDecodeError as err:
        raise GMError(f"config file {path} is not valid TOML: {err}.") from None


def to_dict(config: Any) -> dict[str, Any]:
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }


def from_dict(cls: type[C], values: Mapping[str, Any], *, source: str) -> C:
    return override(cls(), values, source=source)


def dumps(config: Any) -> str:
    return json.dumps(to_dict(config), indent=2)
