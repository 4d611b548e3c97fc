"""Image datasets: ``mnist``, ``cifar10``, ``svhn``/``svhn-gray``, ``celeba`` from the Hub's
parquet files (``images:DIR``, any folder of the user's, is :mod:`gm_datasets.folders`).

All are decoded once into the cache (:mod:`gm_datasets.cache`) as uint8 (N, C, H, W) plus
int64 labels where the source has them; options that only select or split rows are applied
after the cache, so they never trigger a new decode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gm.errors import GMError
from gm_datasets import cache
from gm_datasets.common import LabelledDataset, make_dataset, provenance
from gm_datasets.decode import decode_files, decode_parquet
from gm_datasets.sources import PREP, SOURCES, by_split, celeba_prep

CELEBA_OFFICIAL = (162_770, 19_867, 19_962)  # list_eval_partition.txt: files 1.., in order


def hub_images(
    name: str,
    data_dir: str | None,
    source_dir: str | None,
    prep: dict[str, Any],
    *,
    transform=None,
    label: str | None = "label",
    keep_paths: bool = False,
    splits: list[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Decoded arrays of a Hub image dataset, from the cache or decoded now from its parquet files."""
    source = SOURCES[name]
    mode, shape = prep["mode"], tuple(prep["shape"])

    def build(folder, files, where):
        parquet = [f for f in files if f.suffix == ".parquet"]
        if not parquet:  # a plain folder of image files (CelebA's img_align_celeba/*.jpg)
            x = decode_files(files, mode=mode, shape=shape, transform=transform)
            arrays = {"train": x, "train.paths": np.array([f.name for f in files], dtype=np.str_)}
            return arrays, {"found": where, "folder": str(folder), "files": f"{len(files)} images"}
        files = parquet
        groups = by_split(name, folder, files)
        wanted = splits or sorted(groups)
        missing = [s for s in wanted if s not in groups]
        if missing:
            raise GMError(
                f"{folder} has no {'/'.join(missing)} split of {name} "
                f"(found: {', '.join(sorted(groups))})."
            )
        arrays: dict[str, np.ndarray] = {}
        for split in wanted:
            x, y, paths = decode_parquet(
                groups[split],
                mode=mode,
                shape=shape,
                transform=transform,
                label=label,
                keep_paths=keep_paths,
            )
            arrays[split] = x
            if y is not None:
                arrays[f"{split}.labels"] = y
            if keep_paths:
                arrays[f"{split}.paths"] = np.array(paths, dtype=np.str_)
        return arrays, {
            "repo": source.repo,
            "found": where,
            "folder": str(folder),
            "files": [str(f.relative_to(folder)) for f in files],
        }

    return cache.cached_source(
        name, build, data_dir=data_dir, source_dir=source_dir, preprocessing=prep
    )


def _info_meta(meta: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "source": meta["source"].get("repo") or meta["source"].get("folder"),
        "preprocessing": meta["preprocessing"],
        "provenance": provenance(meta),
        **extra,
    }


def from_arrays(
    name: str, arrays: dict[str, np.ndarray], meta: dict[str, Any], splits: list[str], **extra: Any
) -> LabelledDataset:
    labels = {s: arrays[f"{s}.labels"] for s in splits if f"{s}.labels" in arrays}
    return make_dataset(
        name, "image", {s: arrays[s] for s in splits}, labels=labels, meta=_info_meta(meta, **extra)
    )


def carve_valid(arrays: dict[str, np.ndarray], valid_size: int, name: str) -> list[str]:
    """Move the last ``valid_size`` training examples to a ``valid`` split (the usual 50k/10k);
    ``arrays`` is changed in place. Returns the split names."""
    if valid_size <= 0:
        return [s for s in ("train", "valid", "test") if s in arrays]
    n = len(arrays["train"])
    if valid_size >= n:
        raise GMError(
            f"valid_size {valid_size} must be less than the {n} training examples of {name}."
        )
    for suffix in ("", ".labels"):
        if f"train{suffix}" in arrays:
            whole = arrays[f"train{suffix}"]
            arrays[f"train{suffix}"], arrays[f"valid{suffix}"] = (
                whole[:-valid_size],
                whole[-valid_size:],
            )
    return [s for s in ("train", "valid", "test") if s in arrays]


def mnist(
    data_dir: str | None = None, source_dir: str | None = None, valid_size: int = 0
) -> LabelledDataset:
    """MNIST (``ylecun/mnist``) as uint8 (N, 1, 28, 28), 60,000 / 10,000; ``valid_size=10000``
    moves the last 10,000 training images to a ``valid`` split (50k/10k/10k)."""
    arrays, meta = hub_images("mnist", data_dir, source_dir, PREP["mnist"])
    arrays = dict(arrays)
    return from_arrays("mnist", arrays, meta, carve_valid(arrays, valid_size, "mnist"))


def cifar10(data_dir: str | None = None, source_dir: str | None = None) -> LabelledDataset:
    """CIFAR-10 (``uoft-cs/cifar10``, config ``plain_text``, column ``img``) as uint8 (N, 3, 32, 32)."""
    arrays, meta = hub_images("cifar10", data_dir, source_dir, PREP["cifar10"])
    return from_arrays("cifar10", arrays, meta, ["train", "test"])


def _svhn_arrays(data_dir, source_dir, extra: bool):
    splits = ["extra", "test", "train"] if extra else ["test", "train"]
    prep = {**PREP["svhn"], "splits": splits}
    arrays, meta = hub_images("svhn", data_dir, source_dir, prep, splits=splits)
    return arrays, meta, [s for s in ("train", "test", "extra") if s in splits]


def svhn(
    data_dir: str | None = None, source_dir: str | None = None, extra: bool = False
) -> LabelledDataset:
    """SVHN cropped digits (``ufldl-stanford/svhn``, config ``cropped_digits``) as uint8
    (N, 3, 32, 32): 73,257 train / 26,032 test, and with ``extra=true`` the 531,131 extra."""
    arrays, meta, splits = _svhn_arrays(data_dir, source_dir, extra)
    return from_arrays("svhn", arrays, meta, splits)


def rgb_to_grey(x: np.ndarray) -> np.ndarray:
    """uint8 (N, 3, H, W) -> (N, 1, H, W) with ITU-R 601-2 luma, bit-exact with Pillow's convert("L")."""
    r, g, b = (x[:, c].astype(np.uint32) for c in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)[:, None]


def svhn_gray(
    data_dir: str | None = None, source_dir: str | None = None, extra: bool = False
) -> LabelledDataset:
    """SVHN in grey-scale (N, 1, 32, 32), as the imputation paper uses it; derived from ``svhn``'s cache."""
    arrays, meta, splits = _svhn_arrays(data_dir, source_dir, extra)
    grey = {**arrays, **{s: rgb_to_grey(arrays[s]) for s in splits}}
    return from_arrays("svhn-gray", grey, meta, splits, grey="ITU-R 601-2 luma (Pillow 'L')")


class _CelebaResize:
    """VW preprocessing: resize to width ``size`` keeping the aspect ratio, then centre-crop."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, img):
        from PIL import Image

        w, h = img.size
        new_h = round(h * self.size / w)
        if new_h < self.size:
            raise GMError(
                f"a CelebA image of {w}x{h} is wider than tall; expected the aligned 178x218 crops."
            )
        img = img.resize((self.size, new_h), Image.BILINEAR)
        top = (new_h - self.size) // 2
        return img.crop((0, top, self.size, top + self.size))


def _celeba_number(path: str) -> int | None:
    stem = Path(path).stem
    return int(stem) if stem.isdigit() else None


def celeba_partition(
    arrays: dict[str, np.ndarray], seed: int = 0
) -> tuple[dict[str, np.ndarray], str]:
    """Official train/valid/test when the source has only ``train``: by file number
    (000001.jpg ...) when the rows carry file names, else by row order when all 202,599 rows
    are there (the source's file order), else a seeded 80/10/10 split (stated in meta)."""
    if "valid" in arrays or "test" in arrays:
        return {s: arrays[s] for s in ("train", "valid", "test") if s in arrays}, "source splits"
    x = arrays["train"]
    numbers = [_celeba_number(p) for p in arrays.get("train.paths", [])]
    a, b, _ = CELEBA_OFFICIAL
    if numbers and all(n is not None for n in numbers):
        nums = np.array(numbers)
        how = "official partition by file number"
        if (np.diff(nums) > 0).all():  # file order (the usual case): slices, no copy of 2.5 GB
            i, j = np.searchsorted(nums, [a + 1, a + b + 1])
            return {"train": x[:i], "valid": x[i:j], "test": x[j:]}, how
        parts = {"train": nums <= a, "valid": (nums > a) & (nums <= a + b), "test": nums > a + b}
        return {s: x[m] for s, m in parts.items()}, how
    if len(x) == sum(CELEBA_OFFICIAL):
        return {
            "train": x[:a],
            "valid": x[a : a + b],
            "test": x[a + b :],
        }, "official partition by row order"
    perm = np.random.RandomState(seed).permutation(len(x))
    k = max(1, len(x) // 10)
    return (
        {
            "train": x[np.sort(perm[2 * k :])],
            "valid": x[np.sort(perm[:k])],
            "test": x[np.sort(perm[k : 2 * k])],
        },
        f"seeded 80/10/10 split (RandomState({seed}))",
    )


def celeba(
    data_dir: str | None = None, source_dir: str | None = None, size: int = 64
) -> LabelledDataset:
    """CelebA aligned faces with the Variational Walkback preprocessing: 178x218 -> 64x78
    (bilinear) -> centre crop 64x64, uint8 (N, 3, 64, 64). Official train/valid/test
    (162,770 / 19,867 / 19,962) when the source has them or they can be recovered."""
    if size < 8:
        raise GMError(f"celeba size must be at least 8, got {size}.")
    arrays, meta = hub_images(
        "celeba",
        data_dir,
        source_dir,
        celeba_prep(size),
        transform=_CelebaResize(size),
        label=None,
        keep_paths=True,
    )
    splits, how = celeba_partition(arrays)
    return make_dataset("celeba", "image", splits, meta=_info_meta(meta, splits=how))
