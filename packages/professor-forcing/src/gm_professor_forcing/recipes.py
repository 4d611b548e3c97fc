"""Named recipes for the thesis's Professor Forcing experiments (torch-free).

Each is a ``gm train NAME`` model: the professor-forcing trainer with the thesis's stated
settings as defaults, the data command it was meant for, and what still differs from the
thesis (settings it does not state, and parts not implemented here).
"""

from __future__ import annotations

COMMON_DIFFERS = (
    "D's logit saturates softly (10 tanh(l/10)) where the thesis clips to [-10, 10]; "
    "batch size, D's learning rate (here the authors' code: 1e-4, beta1 0.5), gradient "
    "clipping (here norm 1) and the number of updates are not stated in the thesis"
)

# Recipes are data: each spells out its source's settings in full, so they read alike.
RECIPES: dict[str, dict] = {
    "pf-char-ptb": {
        "summary": "thesis char-PTB: GRU 1x1024, Adam 1e-4, D 2048 units, hidden states and "
        "character embeddings to D, windows of 500",
        "data": "--dataset ptb-char --data-option seq_len=500",
        "modalities": ("sequence",),
        "defaults": {
            "hidden": 1024,
            "layers": 1,
            "lr": 1e-4,
            "d_hidden": 2048,
            "d_mlp": 2048,
            "behaviour": "embeddings",
            "gate_g": 0.75,
            "gate_d": 0.99,
            "weighting": "sequence",
        },
        "differs": "the embedding width (here 128) is not stated; '2048 units' read as each "
        "direction of D's GRU and each MLP layer; " + COMMON_DIFFERS,
    },
    "pf-sequential-mnist": {
        "summary": "thesis sequential MNIST: 784 binary pixel tokens, the char-PTB GRU 1x1024 "
        "and D, hidden states and outputs to D",
        "data": "--dataset sequential-mnist (or --data-option source=mnist-5k offline)",
        "modalities": ("sequence",),
        "defaults": {
            "hidden": 1024,
            "layers": 1,
            "lr": 1e-4,
            "d_hidden": 2048,
            "d_mlp": 2048,
            "behaviour": "both",
            "gate_g": 0.75,
            "gate_d": 0.99,
            "weighting": "sequence",
        },
        "differs": "the thesis's sequential-MNIST section is missing from our text of it, so "
        "sizes are the char-PTB ones and the binarisation (here pixel >= 128) is not "
        "the thesis's known one; " + COMMON_DIFFERS,
    },
    "pf-handwriting": {
        "summary": "thesis handwriting: train on 50-step windows, free-run 1000 steps, D on "
        "non-overlapping 50-step segments; Graves-style 3x400 mixture GRU",
        "data": "--dataset iam-ondb --data-option seq_len=50",
        "modalities": ("strokes",),
        "defaults": {
            "hidden": 400,
            "layers": 3,
            "output": "mixture",
            "components": 20,
            "free_steps": 1000,
            "segment": 50,
            "behaviour": "both",
            "gate_g": 0.75,
            "gate_d": 0.99,
            "weighting": "sequence",
        },
        "differs": "unconditional (the thesis's model is text-conditioned, Graves 2013 via "
        "Brebisson's code, whose hyperparameters are not restated); sampling bias 0.5 is "
        "not implemented (gm sample has temperature only); " + COMMON_DIFFERS,
    },
}
