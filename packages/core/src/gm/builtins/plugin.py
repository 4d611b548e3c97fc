"""Core's built-in plugin: synthetic datasets and the Gaussian baseline (registered first)."""

import gm
from gm.specs import DatasetSpec, LoggerSpec, ModelSpec, TrainerSpec

_TOY = "generated with numpy from an explicit seed (options n, seed)"


@gm.hookimpl
def gm_datasets():
    return [
        DatasetSpec(
            "swiss-roll",
            "gm.builtins.toy:swiss_roll",
            "2-D swiss roll (Variational Walkback toy)",
            modality="vector",
            shape=(2,),
            source=_TOY,
            licence="public domain",
        ),
        DatasetSpec(
            "circle",
            "gm.builtins.toy:circle",
            "2-D noisy unit circle",
            modality="vector",
            shape=(2,),
            source=_TOY,
            licence="public domain",
        ),
        DatasetSpec(
            "mog-grid",
            "gm.builtins.toy:mog_grid",
            "2-D 3x3 grid of Gaussians, std 0.05",
            modality="vector",
            shape=(2,),
            source=_TOY,
            licence="public domain",
        ),
        DatasetSpec(
            "markov-chain",
            "gm.builtins.toy:markov_chain",
            "token sequences from a fixed random Markov chain with known entropy rate",
            modality="sequence",
            shape=(64,),
            source=_TOY,
            licence="public domain",
        ),
    ]


@gm.hookimpl
def gm_trainers():
    return [
        TrainerSpec(
            "gaussian",
            "gm.builtins.gaussian:GaussianTrainer",
            "maximum-likelihood full-covariance Gaussian",
        )
    ]


# Records read like every plugin's (the same fields in the same order): a deliberate parallel.
@gm.hookimpl
def gm_models():
    return [
        ModelSpec(
            "gaussian",
            summary="full-covariance Gaussian fit: the trivial baseline",
            trainer="gaussian",
            modalities=("vector", "image"),
            capabilities=("sample", "evaluate"),
        )
    ]


@gm.hookimpl
def gm_loggers():
    return [
        LoggerSpec(
            "tensorboard", "gm.loggers:TensorBoard", "TensorBoard scalars under RUN/tensorboard"
        ),
        LoggerSpec(
            "mlflow",
            "gm.loggers:MLflow",
            "MLflow params and metrics (MLFLOW_TRACKING_URI, else a file store in RUN/mlruns)",
        ),
    ]
