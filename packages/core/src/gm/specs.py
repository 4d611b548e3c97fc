"""Typed, frozen records that plugins return from their hooks.

Every record names its implementation as a lazy ``"module:attr"`` target, which is
imported only when used: listing models or datasets never imports torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


def resolve(target: str) -> Any:
    """Import ``"package.module:attr"`` (attr may be dotted) and return the object."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"target {target!r} is not of the form 'module:attr'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Spec:
    """Common part of every record: a unique name, the lazy target, a one-line summary."""

    name: str
    target: str
    summary: str = ""
    plugin: str = ""  # filled in by the plugin manager: the distribution that provided it

    def load(self) -> Any:
        return resolve(self.target)


@dataclass(frozen=True)
class TransitionOperatorSpec(Spec):
    """An ``nn.Module`` class with ``build(config, info)`` and
    ``distribution(s, temperature, step) -> Distribution`` (``--set operator=NAME``)."""


@dataclass(frozen=True)
class SequenceGeneratorSpec(Spec):
    """An ``nn.Module`` class with ``build(config, info)`` and teacher-forced and
    free-running passes returning behaviour (``--set generator=NAME``)."""


@dataclass(frozen=True)
class DiscriminatorSpec(Spec):
    """An ``nn.Module`` class with ``build(config, info, features)`` mapping behaviour
    sequences to one logit each (``--set discriminator=NAME``)."""


@dataclass(frozen=True)
class TrainerSpec(Spec):
    """A :class:`gm.trainer.Trainer` subclass: an algorithm with its own optimisers and step,
    named by the models (:class:`ModelSpec`) that train with it."""


# What a model can do besides training, by core's own verbs; a plugin whose verb needs more
# declares it (:class:`CapabilitySpec`). Verbs refuse a model that does not declare theirs.
CAPABILITIES = ("sample", "evaluate")


@dataclass(frozen=True)
class CapabilitySpec(Spec):
    """A capability a plugin's verb requires (``inpaint``, ``impute``), which models list in
    ``ModelSpec.capabilities``. ``lacks`` ends the line refusing the verb for a model that
    does not declare it: ``model 'x' {lacks}``, e.g. ``"cannot inpaint"``. Nothing to load
    (``target`` stays empty)."""

    target: str = ""
    lacks: str = ""


@dataclass(frozen=True)
class FastPathSpec(Spec):
    """A plugin's fast path (a :data:`gm.fastpath.Switch` field of its configs): the
    devices ``"auto"`` turns it on for, where bench/ measured it faster. Core's own paths
    are :data:`gm.fastpath.FASTER_ON`. Nothing to load (``target`` stays empty)."""

    target: str = ""
    devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    """A model: a registered trainer, the data it trains on, what it can do, its recipes.

    ``trainer`` names a registered trainer (the ``gm_trainers`` hook), whose class trains
    the model. ``recipes`` are named sets of config defaults, selected by the config field
    ``recipe`` (``--set recipe=NAME``); ``recipe`` is the one this model selects unless told
    otherwise ('' : the trainer's data-dependent default, or none). ``gpsi-jump`` is the
    gpsi trainer with its recipe ``jump`` (``{"update": "jump"}``).

    A recipe is a dict of defaults, or -- where the paper's recipe depends on the data's
    shape and on the device, as walkback's appendix recipe does (a table's network per
    dataset; a CPU setup without CUDA) -- the ``"module:attr"`` of a torch-free function
    ``(info, device) -> dict`` of defaults. Either way it is one layer of :mod:`gm.build`'s
    resolution, under ``--config`` and ``--set``, so a value the user gives always wins,
    and ``--show-config`` shows its result. (A function rather than a dict per dataset
    and device, because the paper's tables choose by shape, not by a list of names.)
    ``capabilities`` declares which of :data:`CAPABILITIES` and the registered
    :class:`CapabilitySpec` names the model supports.
    """

    name: str
    summary: str = ""
    plugin: str = ""  # filled in by the plugin manager: the distribution that provided it
    trainer: str = ""
    recipes: dict[str, dict[str, Any] | str] = field(default_factory=dict)
    recipe: str = ""
    modalities: tuple[str, ...] = ()  # data modalities it trains on; () means any
    capabilities: tuple[str, ...] = ()
    # For model cards (gm push): the BibTeX of the paper the model implements, and one
    # line of what the plugin's own results page found (its weaknesses first).
    citation: str = ""
    verdict: str = ""

    def load(self) -> Any:
        """The trainer class, from the trainers registry."""
        from gm import plugins

        return plugins.load(plugins.get("trainers", self.trainer))

    def trainer_target(self) -> str:
        """The ``"module:attr"`` of the trainer class (read without importing it)."""
        from gm import plugins

        return plugins.get("trainers", self.trainer).target


@dataclass(frozen=True)
class DatasetSpec(Spec):
    """A dataset. ``target`` is a loader ``load(data_dir=None, **options) -> gm.data.Dataset``.

    ``available`` optionally names a cheap, torch-free check ``(data_dir) -> bool`` telling
    whether the data can be loaded offline right now.
    """

    modality: str = "vector"  # vector | image | sequence | strokes
    shape: tuple[int | None, ...] = ()
    splits: tuple[str, ...] = ("train", "test")
    source: str = ""
    licence: str = ""
    available: str = ""  # "module:attr" of the check; empty means always available
    # "module:attr" of a torch-free ``(data_dir) -> str | None``: what the cached copy a
    # load would read holds (source, example count, date), None when none is cached
    cached: str = ""


@dataclass(frozen=True)
class CommandSpec(Spec):
    """A CLI verb. ``target`` is a plain function (made a command) or a ``typer.Typer``
    (added as a group). Its module is imported when the CLI is built, so it must not
    import torch at module level."""


@dataclass(frozen=True)
class LoggerSpec(Spec):
    """An experiment logger for ``gm train --report-to NAME``. ``target`` is a class
    ``Logger(run: Path, record: dict)`` with ``log(step, row)`` and ``close()``."""
