"""gm-datasets' plugin module: spec records only (no torch, no ``datasets`` at import)."""

import gm
from gm.specs import DatasetSpec

_A = "gm_datasets.availability:"


@gm.hookimpl
def gm_datasets():
    return [
        DatasetSpec(
            "digits",
            "gm_datasets.digits:load",
            "scikit-learn's bundled 8x8 handwritten digits, 1257 train / 540 test",
            modality="image",
            shape=(1, 8, 8),
            splits=("train", "test"),
            source="sklearn.datasets.load_digits (UCI optdigits), bundled",
            licence="CC BY 4.0",
            available=_A + "digits",
        ),
    ]
