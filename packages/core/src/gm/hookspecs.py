"""The hooks a gm plugin can implement: the reader's entry point.

A plugin is a module with ``@gm.hookimpl`` functions, declared in its distribution as::

    [project.entry-points.gm]
    walkback = "gm_walkback.plugin"

Each hook returns an iterable of frozen records from :mod:`gm.specs`; the records name
their implementation lazily (``"module:attr"``), so a plugin module stays a few lines long
and never imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from gm.specs import (
    CapabilitySpec,
    CommandSpec,
    DatasetSpec,
    DiscriminatorSpec,
    FastPathSpec,
    LoggerSpec,
    ModelSpec,
    SequenceGeneratorSpec,
    TrainerSpec,
    TransitionOperatorSpec,
)

hookspec = pluggy.HookspecMarker("gm")

# The hooks below are parallel on purpose (one record type each, a docstring with an
# example); plugins.RECORDS reads each hook's record type from its return annotation.


@hookspec
def gm_models() -> Iterable[ModelSpec]:
    """Models (a registered trainer and its recipes) shown by ``gm list-models`` and
    trained by ``gm train NAME``.

    Example::

        @gm.hookimpl
        def gm_models():
            return [ModelSpec("walkback", trainer="walkback", summary="Variational Walkback",
                              capabilities=("sample", "evaluate", "inpaint"))]
    """


@hookspec
def gm_datasets() -> Iterable[DatasetSpec]:
    """Datasets, usable as ``--dataset NAME``.

    Example::

        @gm.hookimpl
        def gm_datasets():
            return [DatasetSpec("swiss-roll", "gm.builtins.toy:swiss_roll",
                                modality="vector", shape=(2,))]
    """


@hookspec
def gm_transition_operators() -> Iterable[TransitionOperatorSpec]:
    """Stochastic transition operators p_T(s'|s): ``nn.Module`` classes with
    ``build(config, info)``, chosen by a trainer's ``--set operator=NAME``.

    Example::

        @gm.hookimpl
        def gm_transition_operators():
            return [TransitionOperatorSpec("gaussian-mlp", "gm_walkback.operators:GaussianMLP")]
    """


@hookspec
def gm_sequence_generators() -> Iterable[SequenceGeneratorSpec]:
    """Generative sequence models with ``build(config, info)`` and teacher-forced and
    free-running passes, chosen by ``--set generator=NAME``.

    Example::

        @gm.hookimpl
        def gm_sequence_generators():
            return [SequenceGeneratorSpec("gru", "gm_professor_forcing.generators:TokenGRU")]
    """


@hookspec
def gm_discriminators() -> Iterable[DiscriminatorSpec]:
    """Discriminators over behaviour sequences, with ``build(config, info, features)``,
    chosen by ``--set discriminator=NAME``.

    Example::

        @gm.hookimpl
        def gm_discriminators():
            return [DiscriminatorSpec("bigru",
                                      "gm_professor_forcing.discriminators:BiGRUDiscriminator")]
    """


@hookspec
def gm_trainers() -> Iterable[TrainerSpec]:
    """Training algorithms (:class:`gm.trainer.Trainer` subclasses), named by the models'
    ``ModelSpec.trainer``.

    Example::

        @gm.hookimpl
        def gm_trainers():
            return [TrainerSpec("walkback", "gm_walkback.walkback:WalkbackTrainer")]
    """


@hookspec
def gm_commands() -> Iterable[CommandSpec]:
    """Extra CLI verbs, shown in the "Plugins" help panel.

    Example::

        @gm.hookimpl
        def gm_commands():
            return [CommandSpec("inpaint", "gm_walkback.commands:inpaint",
                                summary="Fill in the unknown part of images.")]
    """


@hookspec
def gm_loggers() -> Iterable[LoggerSpec]:
    """Experiment loggers for ``gm train --report-to NAME`` (TensorBoard is built in).

    Example::

        @gm.hookimpl
        def gm_loggers():
            return [LoggerSpec("wandb", "my_gm_wandb:WandbLogger", "Weights & Biases")]
    """


@hookspec
def gm_fast_paths() -> Iterable[FastPathSpec]:
    """A plugin's own fast paths and where ``"auto"`` turns each on (read by
    :func:`gm.fastpath.use`; core's paths are :data:`gm.fastpath.FASTER_ON`).

    Example::

        @gm.hookimpl
        def gm_fast_paths():
            return [FastPathSpec("fused_rnn", summary="hand-fused GRU loops", devices=("cpu",))]
    """


@hookspec
def gm_capabilities() -> Iterable[CapabilitySpec]:
    """What a plugin's verbs require of a model beyond core's ``sample`` and ``evaluate``
    (models declare it in ``ModelSpec.capabilities``; ``Run.require`` refuses the others).

    Example::

        @gm.hookimpl
        def gm_capabilities():
            return [CapabilitySpec("inpaint", summary="gm inpaint", lacks="cannot inpaint")]
    """
