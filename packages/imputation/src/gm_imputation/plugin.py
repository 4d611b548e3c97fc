"""Hook implementations: the models of gm-imputation and the ``gm impute`` verb."""

import gm
from gm.specs import CommandSpec, ModelSpec, TrainerSpec

_M = ("vector", "image")
_CAN = ("sample", "evaluate", "impute")
_GPSI = "gm_imputation.gpsi:GPSITrainer"
_LSTM = "gm_imputation.lstm:LSTMTrainer"
_DRAW = "gm_imputation.lstm:DrawGPSTrainer"
_VAE = "gm_imputation.vae:VAEImputerTrainer"
_TM = "gm_imputation.templates:TemplateMatchingTrainer"


@gm.hookimpl
def gm_trainers():
    return [
        TrainerSpec("gpsi", _GPSI, "guided policy search imputer with MLP policies"),
        TrainerSpec("lstm-gpsi", _LSTM, "guided policy search imputer with LSTM policies"),
        TrainerSpec("draw-gps", _DRAW, "DRAW-like generator with learned per-step prior"),
        TrainerSpec("vae-imputer", _VAE, "VAE trained on complete data, clamped iterations"),
        TrainerSpec("template-matching", _TM, "nearest training example on the known values"),
    ]


@gm.hookimpl
def gm_models():
    return [
        ModelSpec(
            "gpsi-add",
            summary="GPSI, additive guess updates (6 steps)",
            trainer="gpsi",
            defaults={"update": "add"},
            modalities=_M,
            capabilities=_CAN,
        ),
        ModelSpec(
            "gpsi-jump",
            summary="GPSI, jump guess updates (6 steps)",
            trainer="gpsi",
            defaults={"update": "jump"},
            modalities=_M,
            capabilities=_CAN,
        ),
        ModelSpec(
            "lstm-add",
            summary="LSTM policies, additive updates (16 steps)",
            trainer="lstm-gpsi",
            defaults={"update": "add"},
            modalities=_M,
            capabilities=_CAN,
        ),
        ModelSpec(
            "lstm-jump",
            summary="LSTM policies, jump updates (16 steps)",
            trainer="lstm-gpsi",
            defaults={"update": "jump"},
            modalities=_M,
            capabilities=_CAN,
        ),
        ModelSpec(
            "draw-gps",
            summary="unconditional generator, learned per-step prior (paper section 2.5)",
            trainer="draw-gps",
            modalities=_M,
            capabilities=_CAN,
        ),
        ModelSpec(
            "vae-imputer",
            summary="baseline: VAE, 15 clamped iterations (best step: oracular)",
            trainer="vae-imputer",
            modalities=_M,
            capabilities=_CAN,
        ),
        ModelSpec(
            "template-matching",
            summary="baseline: nearest training example (honest and oracle)",
            trainer="template-matching",
            modalities=_M,
            capabilities=_CAN,
        ),
    ]


@gm.hookimpl
def gm_commands():
    return [
        CommandSpec(
            "impute",
            "gm_imputation.commands:impute",
            "Fill in the missing values of your own data with a trained run.",
        )
    ]
