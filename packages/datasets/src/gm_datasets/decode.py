"""Decoding source files into fixed-shape uint8 arrays, through Hugging Face ``datasets``.

Parquet files (the Hub's format) are read with ``datasets``' ``parquet`` builder in
streaming mode, so no second Arrow copy is written (image folders:
:mod:`gm_datasets.folders`); image bytes are decoded with Pillow in a thread pool
(Pillow releases the GIL).
Every failure names the file it came from.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from gm.errors import GMError
from gm_datasets.progress import Progress

IMAGE_COLUMNS = ("image", "img")
BATCH = 512


def _threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def parquet_rows(path: Path) -> tuple[int, list[str]]:
    """(number of rows, column names) from the footer; a clear error for a broken file."""
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(path)
        return f.metadata.num_rows, list(f.schema_arrow.names)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several kinds for a bad file
        raise GMError(
            f"{path} is not a readable parquet file ({err}); it may be truncated: "
            f"delete it and download it again."
        ) from None


def image_column(path: Path, columns: Sequence[str]) -> str:
    for c in IMAGE_COLUMNS:
        if c in columns:
            return c
    raise GMError(
        f"{path} has no image column (looked for {', '.join(IMAGE_COLUMNS)}; "
        f"it has {', '.join(columns)})."
    )


def open_image(item: dict[str, Any] | None, where: str):
    """A PIL image from a ``datasets`` Image struct ``{"bytes", "path"}``."""
    from PIL import Image, UnidentifiedImageError

    if item is None:
        raise GMError(f"{where} has no image (a null entry).")
    try:
        if item.get("bytes"):
            img = Image.open(io.BytesIO(item["bytes"]))
        elif item.get("path"):
            img = Image.open(item["path"])
        else:
            raise GMError(f"{where} has an empty image entry.")
        img.load()
        return img
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise GMError(f"{where} is not a readable image ({type(err).__name__}: {err}).") from None


def to_array(
    img, mode: str, transform: Callable | None, shape: tuple[int, int, int], where: str
) -> np.ndarray:
    """PIL image -> uint8 (C, H, W) in ``mode`` ("L" or "RGB"), after ``transform``."""
    if img.mode != mode:
        img = img.convert(mode)
    if transform is not None:
        img = transform(img)
    a = np.asarray(img, dtype=np.uint8)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    if a.shape != shape:
        raise GMError(
            f"{where} decodes to an image of shape {a.shape[1:]} (H, W), expected "
            f"{shape[1:]}; is it the right dataset?"
        )
    return a


def decode_one(item, where: str, mode: str, transform, shape: tuple[int, int, int]) -> np.ndarray:
    return to_array(open_image(item, where), mode, transform, shape, where)


def decode_parquet(
    files: Sequence[Path],
    *,
    mode: str,
    shape: tuple[int, int, int],
    transform: Callable | None = None,
    label: str | None = "label",
    keep_paths: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Images (N, C, H, W) uint8, labels (N,) int64 or None, and the images' source paths."""
    import datasets

    sizes = [parquet_rows(f) for f in files]
    out = np.empty((sum(n for n, _ in sizes), *shape), dtype=np.uint8)
    has_label = label is not None and all(label in cols for _, cols in sizes)
    labels = np.empty(len(out), dtype=np.int64) if has_label else None
    paths: list[str] = []
    i = 0
    what = f"decoding {files[0].parent.name or files[0].name}/{files[0].stem.split('-')[0]}"
    with ThreadPoolExecutor(_threads()) as pool, Progress(what, len(out)) as bar:
        for f, (n, cols) in zip(files, sizes, strict=True):
            col = image_column(f, cols)
            start = i
            try:
                ds = datasets.load_dataset(
                    "parquet", data_files=[str(f)], split="train", streaming=True
                )
                ds = ds.cast_column(col, datasets.Image(decode=False))
                for batch in ds.iter(batch_size=BATCH):
                    items = batch[col]
                    row0 = i - start
                    wheres = [f"{f} row {row0 + k}" for k in range(len(items))]
                    arrays = pool.map(
                        decode_one, items, wheres, repeat(mode), repeat(transform), repeat(shape)
                    )
                    for a in arrays:
                        out[i] = a
                        i += 1
                    bar.advance(len(items))
                    if labels is not None:
                        labels[i - len(items) : i] = batch[label]
                    if keep_paths:
                        paths.extend((it or {}).get("path") or "" for it in items)
            except GMError:
                raise
            except Exception as err:  # noqa: BLE001 - pyarrow/datasets errors inside a file
                raise GMError(
                    f"could not read {f} ({type(err).__name__}: {err}); it may be "
                    f"corrupt: delete it and download it again."
                ) from None
            if i - start != n:
                raise GMError(
                    f"{f} declares {n} rows but {i - start} were read; it may be corrupt."
                )
    return out, labels, paths


def decode_files(
    files: Sequence[Path],
    *,
    mode: str,
    shape: tuple[int, int, int],
    transform: Callable | None = None,
) -> np.ndarray:
    """Image files -> uint8 (N, C, H, W), decoded in a thread pool; errors name the file."""
    out = np.empty((len(files), *shape), dtype=np.uint8)
    with ThreadPoolExecutor(_threads()) as pool:
        items = ({"path": str(f)} for f in files)
        wheres = (str(f) for f in files)
        for i, a in enumerate(
            pool.map(decode_one, items, wheres, repeat(mode), repeat(transform), repeat(shape))
        ):
            out[i] = a
    return out
