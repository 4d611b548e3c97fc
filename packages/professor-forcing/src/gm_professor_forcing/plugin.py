"""gm hooks of gm-professor-forcing (torch-free: records name their code lazily)."""

import gm
from gm.specs import (
    DatasetSpec,
    DiscriminatorSpec,
    FastPathSpec,
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


# For model cards (gm push): each trainer's paper, and what docs/results/professor-forcing.md found.
_BIB = {
    "professor-forcing": """@inproceedings{lamb2016professor,
  title = {Professor Forcing: A New Algorithm for Training Recurrent Networks},
  author = {Lamb, Alex and Goyal, Anirudh and Zhang, Ying and Zhang, Saizheng and
            Courville, Aaron and Bengio, Yoshua},
  booktitle = {Advances in Neural Information Processing Systems 29 (NIPS 2016)},
  year = {2016}
}""",
    "teacher-forcing": """@article{williams1989learning,
  title = {A Learning Algorithm for Continually Running Fully Recurrent Neural Networks},
  author = {Williams, Ronald J. and Zipser, David},
  journal = {Neural Computation},
  volume = {1},
  number = {2},
  pages = {270--280},
  year = {1989}
}""",
    "scheduled-sampling": """@inproceedings{bengio2015scheduled,
  title = {Scheduled Sampling for Sequence Prediction with Recurrent Neural Networks},
  author = {Bengio, Samy and Vinyals, Oriol and Jaitly, Navdeep and Shazeer, Noam},
  booktitle = {Advances in Neural Information Processing Systems 28 (NIPS 2015)},
  year = {2015}
}""",
}
VERDICT = (
    "in a small CPU pilot (docs/results/professor-forcing.md), on a source where teacher "
    "forcing drifts, professor forcing did not reduce the drift past the training length "
    "(5 paired seeds); the thesis's sizes were not run."
)


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
def gm_fast_paths():
    """Where ``"auto"`` turns this plugin's fast paths on (docs/benchmarks.md measured them)."""
    return [
        FastPathSpec(
            "fused_rnn",
            summary="hand-fused GRU loops; cuDNN's nn.GRU is faster on CUDA",
            devices=("cpu",),
        ),
        FastPathSpec(
            "host_gates",
            summary="skip a closed gate's work by reading it on the host",
            devices=("cpu",),
        ),
    ]


@gm.hookimpl
def gm_trainers():
    return [TrainerSpec(n, f"{_P}.trainers:{c}", s) for n, (c, s) in _TRAINERS.items()]


@gm.hookimpl
def gm_models():
    # the thesis's recipes belong to the professor-forcing trainer: `gm train
    # professor-forcing --set recipe=pf-char-ptb` is `gm train pf-char-ptb`
    thesis = {name: r["defaults"] for name, r in RECIPES.items()}
    plain = [
        ModelSpec(
            n,
            summary=s,
            trainer=n,
            recipes=thesis if n == "professor-forcing" else {},
            modalities=_MODALITIES,
            capabilities=_CAN,
            citation=_BIB[n],
            verdict=VERDICT,
        )  # fmt: skip
        for n, (c, s) in _TRAINERS.items()
    ]
    recipes = [
        ModelSpec(
            name,
            summary=f"{r['summary']} ({r['data']}). Differs: {r['differs']}",
            trainer="professor-forcing",
            recipes=thesis,
            recipe=name,
            modalities=r["modalities"],
            capabilities=_CAN,
            citation=_BIB["professor-forcing"],
            verdict=VERDICT,
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
