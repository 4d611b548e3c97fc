"""``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download).

Pixels are counts 0..16 in the source; they are stored as uint8 ``round(v * 255 / 16)``
(so ``Dataset.decode`` gives v/16 up to rounding of 1/510) with shape (N, 1, 8, 8).
The split is fixed: ``numpy.random.RandomState(split_seed).permutation(1797)``, the first
``test_size`` indices are the test split and the rest the train split, which is exactly
``sklearn.model_selection.train_test_split(X, y, test_size=540, random_state=0)`` for the
defaults: 1,257 train / 540 test (the anchors in EVALUATION.md). Labels 0..9 ride along
in ``dataset.labels``. Nothing is cached: loading takes milliseconds.
"""

from __future__ import annotations

import numpy as np

from gm.errors import GMError
from gm_datasets.common import LabelledDataset, make_dataset

N_DIGITS = 1797


def split_indices(n: int, test_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices as sklearn's ``train_test_split(..., random_state=seed)`` draws them."""
    if not 0 < test_size < n:
        raise GMError(f"test_size must be between 1 and {n - 1}, got {test_size}.")
    perm = np.random.RandomState(seed).permutation(n)
    return perm[test_size:], perm[:test_size]


def to_uint8(counts: np.ndarray) -> np.ndarray:
    """0..16 counts -> 0..255 bytes, ``round(v * 255 / 16)``."""
    return np.rint(np.asarray(counts, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)


def load(data_dir: str | None = None, test_size: int = 540, split_seed: int = 0) -> LabelledDataset:
    """The 8x8 digits as uint8 images (N, 1, 8, 8); options ``test_size``, ``split_seed``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise GMError(
            "the digits dataset needs scikit-learn: pip install 'gm-datasets[sklearn]'."
        ) from None
    bunch = load_digits()
    images = to_uint8(bunch.data).reshape(-1, 1, 8, 8)
    train, test = split_indices(len(images), test_size, split_seed)
    return make_dataset(
        "digits",
        "image",
        {"train": images[train], "test": images[test]},
        labels={"train": bunch.target[train], "test": bunch.target[test]},
        meta={
            "source": "sklearn.datasets.load_digits",
            "scale": "round(v*255/16)",
            "split": f"RandomState({split_seed}).permutation; first {test_size} = test",
            "classes": 10,
        },
    )
