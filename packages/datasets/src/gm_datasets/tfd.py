"""``tfd``: the Toronto Face Database, from a user-supplied ``TFD_48x48.mat``.

The file (not public) holds ``images`` (N, 48, 48) uint8, ``labs_ex`` (expression 1..7,
-1 when unlabelled), ``labs_id`` and ``folds`` (N, 5): in fold ``k`` a row is 0 unlabelled,
1 train, 2 valid, 3 test. Splits for ``fold`` (default 0): ``train`` = the fold's train rows
plus, with ``unlabelled=true`` (default, as generative models use TFD), every unlabelled
row; ``valid`` and ``test`` = the fold's. uint8 (N, 1, 48, 48); labels are ``labs_ex``.
Read directly each time (a second or so), not cached.
"""

from __future__ import annotations

import numpy as np

from gm.errors import GMError
from gm_datasets.common import LabelledDataset, make_dataset
from gm_datasets.sources import locate


def read_mat(path) -> dict[str, np.ndarray]:
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except NotImplementedError:
        raise GMError(f"{path} is a MATLAB v7.3 (HDF5) file; save it as a v7 .mat file.") from None
    except Exception as err:  # noqa: BLE001 - scipy raises ValueError, OSError, ...
        raise GMError(
            f"{path} is not a readable .mat file ({type(err).__name__}: {err})."
        ) from None
    missing = [k for k in ("images", "folds") if k not in mat]
    if missing:
        raise GMError(f"{path} has no {' or '.join(missing)} variable; is it TFD_48x48.mat?")
    return mat


def tfd(
    data_dir: str | None = None,
    source_dir: str | None = None,
    fold: int = 0,
    unlabelled: bool = True,
) -> LabelledDataset:
    """Toronto Face Database 48x48, uint8 (N, 1, 48, 48); train / valid / test of ``fold``."""
    folder, files, _ = locate("tfd", data_dir, source_dir)
    path = files[0]
    mat = read_mat(path)
    images, folds = np.asarray(mat["images"]), np.asarray(mat["folds"])
    if images.ndim == 3 and images.shape[:2] == (48, 48) and images.shape[2] != 48:
        images = images.transpose(2, 0, 1)  # stored column-major as (48, 48, N)
    if images.ndim != 3 or images.shape[1:] != (48, 48) or len(folds) != len(images):
        raise GMError(
            f"{path}: images of shape {images.shape} and folds of shape {folds.shape} "
            f"do not look like TFD_48x48 (N, 48, 48) / (N, 5)."
        )
    if not 0 <= fold < folds.shape[1]:
        raise GMError(f"fold must be between 0 and {folds.shape[1] - 1}, got {fold}.")
    images = np.clip(images, 0, 255).astype(np.uint8)[:, None]
    labels = np.asarray(mat.get("labs_ex", np.full(len(images), -1))).reshape(-1).astype(np.int64)
    col = folds[:, fold]
    masks = {
        "train": (col == 1) | ((col == 0) if unlabelled else False),
        "valid": col == 2,
        "test": col == 3,
    }
    splits = {s: images[m] for s, m in masks.items() if m.any()}
    return make_dataset(
        "tfd",
        "image",
        splits,
        labels={s: labels[masks[s]] for s in splits},
        meta={
            "source": str(path),
            "fold": fold,
            "unlabelled_in_train": unlabelled,
            "labels": "labs_ex (expression, -1 = unlabelled)",
        },
    )
