"""gm hooks of gm-professor-forcing (torch-free: records name their code lazily)."""

import gm
from gm.specs import (
    DatasetSpec,
    DiscriminatorSpec,
    ModelSpec,
    SequenceGeneratorSpec,
    TrainerSpec,
)
from gm_professor_forcing.recipes import RECIPES

_P = "gm_professor_forcing"
_MODALITIES = ("sequence", "strokes")
_CAN = ("sample", "evaluate")
_TRAINERS = {
    "professor-forcing": (
        "ProfessorForcingTrainer",
        "Professor Forcing: NLL + a discriminator "
        "matching free-running to teacher-forced behaviour (Lamb et al. 2016)",
    ),
    "teacher-forcing": ("TeacherForcingTrainer", "the same GRU trained by maximum likelihood only"),
    "scheduled-sampling": (
        "ScheduledSamplingTrainer",
        "the same GRU fed its own samples with a decaying probability (Bengio et al. 2015)",
    ),
}


@gm.hookimpl
def gm_sequence_generators():
    """Read by the three trainers (``--set generator=NAME``); each class's ``build(config,
    info)`` makes it from a sequence config."""
    return [
        SequenceGeneratorSpec(
            "gru",
            f"{_P}.generators:GRUGenerator",
            "GRU: softmax readout over tokens; mixture, Bernoulli or Gaussian for real vectors",
        ),
        SequenceGeneratorSpec(
            "gru-continuous",
            f"{_P}.generators:ContinuousGRU",
            "GRU over real vectors: mixture density + pen bit, Bernoulli or Gaussian",
        ),
        SequenceGeneratorSpec(
            "transformer",
            f"{_P}.transformer:TransformerGenerator",
            "causal pre-LN Transformer over tokens, KV-cached free running",
        ),
    ]


@gm.hookimpl
def gm_discriminators():
    """Read by professor forcing (``--set discriminator=NAME``): ``build(config, info,
    features)``."""
    return [
        DiscriminatorSpec(
            "bigru",
            f"{_P}.discriminators:BiGRUDiscriminator",
            "bidirectional GRU, ReLU MLP shared over time, mean, clipped logit",
        )
    ]


@gm.hookimpl
def gm_trainers():
    return [TrainerSpec(n, f"{_P}.trainers:{c}", s) for n, (c, s) in _TRAINERS.items()]


@gm.hookimpl
def gm_models():
    plain = [
        ModelSpec(n, summary=s, trainer=n, modalities=_MODALITIES, capabilities=_CAN)
        for n, (c, s) in _TRAINERS.items()
    ]
    recipes = [
        ModelSpec(
            name,
            summary=f"{r['summary']} ({r['data']}). Differs: {r['differs']}",
            trainer="professor-forcing",
            defaults=r["defaults"],
            modalities=r["modalities"],
            capabilities=_CAN,
        )
        for name, r in RECIPES.items()
    ]
    return plain + recipes


@gm.hookimpl
def gm_datasets():
    return [
        DatasetSpec(
            "regime-switch",
            f"{_P}.regimes:regime_switch",
            "tokens from slowly switching regimes (durations uniform 40-88): long-range "
            "structure with an exactly known entropy rate and window NLL floor",
            modality="sequence",
            shape=(256,),
            source="synthetic (gm-professor-forcing)",
            licence="public domain",
        ),
        DatasetSpec(
            "oscillator",
            f"{_P}.sources:oscillator",
            "a noisy nonlinear oscillator: per cycle a period uniform on 10..30 steps, a "
            "slowly wandering log-normal amplitude (AR(1) over cycles): an exact stationary law",
            modality="sequence",
            shape=(64, 1),
            source="synthetic (gm-professor-forcing)",
            licence="public domain",
        ),
        DatasetSpec(
            "shared-regimes",
            f"{_P}.sources:shared_regimes",
            "regime-switch over one shared 6-symbol alphabet: the regime is hidden, a wrong "
            "token misleads what follows; exact forward-algorithm NLL of the rows",
            modality="sequence",
            shape=(64,),
            source="synthetic (gm-professor-forcing)",
            licence="public domain",
        ),
    ]
