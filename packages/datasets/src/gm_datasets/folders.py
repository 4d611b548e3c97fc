"""``images:DIR``: any folder of images, decoded once into uint8 (N, C, H, W).

Layouts: ``DIR/train/``, ``DIR/test/`` (and ``DIR/valid/``; also ``training``, ``testing``,
``validation``, ``val``) become the splits; otherwise the whole folder is ``train`` and a
seeded ``test_fraction`` is held out. Below a split (or the folder), one subfolder per
class gives labels (class names sorted, as ``imagefolder`` does); images lying beside
class folders mean no labels. Files Pillow cannot open by their extension (notes.txt,
Thumbs.db) are skipped with one warning; hidden files and folders are ignored; an image
file that does not decode is an error naming it (its row would silently go missing).

Decoding: every header is read first (sizes, colour modes) so the output shape is known,
then the images are decoded in chunks of :data:`CHUNK` by a thread pool straight into one
preallocated array per split: memory is that array plus one chunk, whatever the folder's
size, and a progress bar counts the images.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gm.errors import GMError
from gm_datasets import cache
from gm_datasets.common import DataWarning, LabelledDataset, make_dataset, provenance
from gm_datasets.decode import _threads, open_image, to_array
from gm_datasets.progress import Progress
from gm_datasets.sources import SPLIT_WORDS

VERSION = 2  # of the decoding (2: own folder walk, identity-keyed cache)
CHUNK = 256
# sources.SPLIT_WORDS names splits once; a folder named dev/ or extra/ is not a split here
SPLIT_DIRS = {
    k: v for k, v in SPLIT_WORDS.items() if v in ("train", "test", "valid") and k != "dev"
}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def image_extensions() -> set[str]:
    from PIL import Image

    Image.init()
    return {e.lower() for e in Image.registered_extensions()}


def _walk(folder: Path) -> list[Path]:
    """Every non-hidden file below ``folder``, in sorted path order."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return out


def scan(root: Path) -> tuple[dict[str, tuple[Path, list[Path]]], list[Path]]:
    """({split: (its folder, its image files)}, skipped non-image files) of ``root``."""
    exts = image_extensions()
    files = _walk(root)
    images = [f for f in files if f.suffix.lower() in exts]
    skipped = [f for f in files if f.suffix.lower() not in exts]
    if not images:
        raise GMError(
            f"found no images in {root} (looked for {', '.join(sorted(exts)[:6])}, ...); "
            f"point images:DIR at the folder that holds them."
        )
    top = {f.relative_to(root).parts[0] for f in images}
    named = {d: SPLIT_DIRS[d.lower()] for d in top if d.lower() in SPLIT_DIRS}
    if not named:
        return {"train": (root, images)}, skipped
    if len(set(named.values())) < len(named):
        same = sorted(d for d in named if list(named.values()).count(named[d]) > 1)
        raise GMError(
            f"{root} has {' and '.join(d + '/' for d in same)} folders, which both mean the "
            f"{named[same[0]]} split; merge them or rename one."
        )
    others = sorted(top - set(named))
    if others:
        what = (
            f"the image {others[0]}"
            if (root / others[0]).is_file()
            else f"a folder {others[0]}/ of images"
        )
        raise GMError(
            f"{root} has {'/, '.join(sorted(named))}/ split folders but also {what} beside them; "
            f"move it into one of the split folders (or out of {root})."
        )
    if "train" not in named.values():
        raise GMError(
            f"{root} has {'/, '.join(sorted(named))}/ but no train/ folder; "
            f"put the training images in {root / 'train'}."
        )
    splits = {
        split: (root / d, [f for f in images if f.relative_to(root).parts[0] == d])
        for d, split in named.items()
    }
    return dict(
        sorted(splits.items(), key=lambda kv: ("train", "valid", "test").index(kv[0]))
    ), skipped


def class_labels(
    splits: dict[str, tuple[Path, list[Path]]],
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Labels from one subfolder per class below each split's folder; none when any image
    lies outside a class folder."""
    names: dict[str, list[Any]] = {  # a top folder name, or None for a file at the top
        s: [
            f.relative_to(base).parts[0] if len(f.relative_to(base).parts) > 1 else None for f in fs
        ]
        for s, (base, fs) in splits.items()
    }
    if any(n is None for ns in names.values() for n in ns):
        return {}, []
    classes = sorted({n for ns in names.values() for n in ns})
    if len(classes) < 2:  # one folder is a container, not a class
        return {}, []
    index = {c: i for i, c in enumerate(classes)}
    return {s: np.array([index[n] for n in ns], dtype=np.int64) for s, ns in names.items()}, classes


def _header(p: Path) -> tuple[tuple[int, int], str]:
    from PIL import Image

    try:
        with Image.open(p) as img:
            return img.size, img.mode
    except (OSError, SyntaxError, ValueError) as err:
        raise GMError(
            f"{p} is not a readable image ({type(err).__name__}: {err}); remove or replace it."
        ) from None


def decode_folder(
    root: Path,
    splits: dict[str, tuple[Path, list[Path]]],
    size: int | None,
    channels: str,
    fit: str,
) -> tuple[dict[str, np.ndarray], dict]:
    from PIL import Image, ImageOps

    paths = [f for _, fs in splits.values() for f in fs]
    with ThreadPoolExecutor(_threads()) as pool:
        heads: list = []
        for i in range(0, len(paths), 4 * CHUNK):
            heads.extend(pool.map(_header, paths[i : i + 4 * CHUNK]))
        sizes = {s for s, _ in heads}
        if size is None and len(sizes) > 1:
            a, b = sorted(sizes)[:2]
            raise GMError(
                f"the images in {root} have different sizes ({a[0]}x{a[1]}, {b[0]}x{b[1]}, ...); "
                f"choose one with --data-option size=N (they are then resized and cropped)."
            )
        if channels == "auto":
            channels = "grey" if all(m in GREY_MODES for _, m in heads) else "rgb"
        mode = "L" if channels == "grey" else "RGB"
        w, h = (size, size) if size is not None else next(iter(sizes))

        def transform(img):
            if size is None:
                return img
            if fit == "crop":
                return ImageOps.fit(img, (size, size), Image.BILINEAR)
            return img.resize((size, size), Image.BILINEAR)

        def one(p: Path) -> np.ndarray:
            return to_array(open_image({"path": str(p)}, str(p)), mode, transform, shape, str(p))

        shape = (1 if mode == "L" else 3, h, w)
        arrays: dict[str, np.ndarray] = {}
        for split, (_, files) in splits.items():
            out = np.empty((len(files), *shape), dtype=np.uint8)
            with Progress(f"decoding {root.name}/ {split}", len(files)) as bar:
                for i in range(0, len(files), CHUNK):
                    for k, a in enumerate(pool.map(one, files[i : i + CHUNK])):
                        out[i + k] = a
                    bar.advance(min(CHUNK, len(files) - i))
            arrays[split] = out
    labels, classes = class_labels(splits)
    arrays.update({f"{s}.labels": y for s, y in labels.items()})
    return arrays, {"folder": str(root), "classes": classes, "n_files": len(paths)}


def image_folder(
    path: str,
    data_dir: str | None = None,
    size: int | None = None,
    channels: Literal["auto", "grey", "rgb"] = "auto",
    fit: Literal["crop", "stretch"] = "crop",
    test_fraction: float = 0.1,
    split_seed: int = 0,
) -> LabelledDataset:
    """Any folder of images (``images:DIR``) as uint8 (N, C, H, W).

    ``size``: resize every image to size x size (``fit=crop`` keeps the aspect ratio and
    centre-crops, ``fit=stretch`` does not); without it all images must share one size.
    ``channels``: grey, rgb, or auto (grey when every image is). Splits and labels: see
    the module docstring; without a test/ folder a seeded ``test_fraction`` of train is
    held out as ``test``.
    """
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise GMError(f"images:{path} is not a folder of images.")
    if size is not None and size < 1:
        raise GMError(f"size must be a positive number of pixels, got {size}.")
    if not 0 <= test_fraction < 1:
        raise GMError(f"test_fraction must be in [0, 1), got {test_fraction}.")
    splits, skipped = scan(root)
    if skipped:
        shown = ", ".join(str(f.relative_to(root)) for f in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        warnings.warn(
            f"images:{path}: skipped {len(skipped)} file(s) that are not images ({shown}{more}).",
            DataWarning,
            stacklevel=2,
        )
    prep = {"size": size, "channels": channels, "fit": fit if size is not None else None}
    files = [f for _, fs in splits.values() for f in fs]
    arrays, meta = cache.cached(
        "images",
        VERSION,
        prep,
        lambda: decode_folder(root, splits, size, channels, fit),
        source=cache.identity(files, root),
    )
    arrays = dict(arrays)
    if "test" not in arrays and test_fraction > 0:
        n = len(arrays["train"])
        k = max(1, int(round(n * test_fraction)))
        if n >= 2:
            perm = np.random.RandomState(split_seed).permutation(n)
            test, train = np.sort(perm[:k]), np.sort(perm[k:])
            for suffix in ("", ".labels"):
                if f"train{suffix}" in arrays:
                    whole = arrays[f"train{suffix}"]
                    arrays[f"train{suffix}"], arrays[f"test{suffix}"] = whole[train], whole[test]
    names = [s for s in ("train", "valid", "test") if s in arrays]
    classes = meta["source"].get("classes") or []
    return make_dataset(
        f"images:{path}",
        "image",
        {s: arrays[s] for s in names},
        labels={s: arrays[f"{s}.labels"] for s in names if f"{s}.labels" in arrays},
        meta={
            "source": str(root),
            "preprocessing": meta["preprocessing"],
            "provenance": {**provenance(meta), "found": "images:DIR", "skipped": len(skipped)},
            **({"classes": classes} if classes else {}),
        },
    )
