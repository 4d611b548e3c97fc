"""Reading and writing users' files for ``gm impute`` (numpy and Pillow only, no torch).

- ``.csv``: comma-separated numbers; missing values are empty cells or ``NaN``/``NA``/
  ``N/A``/``null``/``?``; a first row that is not numbers is a header. The text of every
  observed cell is written back unchanged.
- ``.npy``: a numeric array with NaN for missing values (never unpickled).
- images: an image file plus a mask image of the same size, non-zero (white) where the
  values are missing.

Every malformed input is a :class:`GMError` that says what is wrong and how to fix it.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gm.errors import GMError

NA_TOKENS = {"", "nan", "na", "n/a", "null", "none", "?"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass
class Table:
    """Rows of values (NaN = missing) and, for a CSV, its header and cell texts."""

    values: np.ndarray  # (N, D) float64, or (N, *shape) for .npy
    header: list[str] | None = None
    cells: list[list[str]] | None = None

    def column_name(self, j: int) -> str:
        return f"{self.header[j]!r} (column {j + 1})" if self.header else f"column {j + 1}"


def _number(cell: str) -> float | None:
    text = cell.strip()
    if text.lower() in NA_TOKENS:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


def read_csv(path: Path) -> Table:
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = [row for row in csv.reader(f) if row and any(c.strip() for c in row)]
    except FileNotFoundError:
        raise GMError(f"{path} does not exist.") from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise GMError(f"{path} is not a readable CSV file ({err}).") from None
    if not rows:
        raise GMError(f"{path} is empty; give a CSV with one row per example.")
    header = None
    if any(_number(c) is None for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
        if not rows:
            raise GMError(f"{path} has a header but no rows of values.")
    width = len(header) if header else len(rows[0])
    first = 2 if header else 1
    values = np.empty((len(rows), width))
    for i, row in enumerate(rows):
        if len(row) != width:
            raise GMError(
                f"{path}: row {i + first} has {len(row)} fields but the "
                f"{'header' if header else 'first row'} has {width}; every row needs "
                "the same number of comma-separated fields (leave a cell empty for a "
                "missing value)."
            )
        for j, cell in enumerate(row):
            v = _number(cell)
            if v is None:
                name = f"{header[j]!r}" if header else f"column {j + 1}"
                raise GMError(
                    f"{path}: row {i + first}, {name}: {cell.strip()!r} is not a "
                    "number; missing values are empty cells or NaN."
                )
            values[i, j] = v
    return Table(values, header, rows)


def read_npy(path: Path) -> Table:
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise GMError(f"{path} does not exist.") from None
    except ValueError as err:
        raise GMError(
            f"{path} is not a plain numeric .npy array ({err}); gm never unpickles files."
        ) from None
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise GMError(
            f"{path} holds {arr.dtype} values; give a numeric array with NaN for missing values."
        )
    if arr.ndim == 0 or arr.size == 0:
        raise GMError(f"{path} holds no values.")
    arr = arr.astype(np.float64)
    return Table(arr[None] if arr.ndim == 1 else arr)


def read_table(path: Path) -> Table:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return read_csv(path)
    if suffix == ".npy":
        return read_npy(path)
    raise GMError(
        f"cannot read {Path(path).name}: give a .csv or .npy file with NaN for missing "
        "values, or an image with --mask."
    )


def check_missing(table: Table, path: Path) -> np.ndarray:
    """The (N, D) values after checking there is something to impute and no column is empty."""
    values = table.values.reshape(len(table.values), -1)
    nan = np.isnan(values)
    if not nan.any():
        raise GMError(f"{path} has no missing values (no NaN or empty cell): nothing to impute.")
    if np.isinf(values).any():
        i, j = np.argwhere(np.isinf(values))[0]
        raise GMError(
            f"{path}: row {i + 1}, {table.column_name(j)} is infinite; use NaN or an "
            "empty cell for a missing value."
        )
    if len(values) > 1:
        empty = np.flatnonzero(nan.all(0))
        if len(empty):
            names = ", ".join(table.column_name(j) for j in empty[:3])
            raise GMError(
                f"{path}: {names} {'is' if len(empty) == 1 else 'are'} missing in every "
                "row, so the file gives no evidence for "
                f"{'it' if len(empty) == 1 else 'them'}; check the delimiter and the "
                "columns, or impute the rows one file per row."
            )
    return values


def check_range(
    values: np.ndarray, lo: np.ndarray, hi: np.ndarray, table: Table, path: Path, clip: bool
) -> np.ndarray:
    """Values outside the training range [lo, hi] of their column: an error (or clamped)."""
    tol = 1e-6 * np.maximum(hi - lo, 1e-12)
    with np.errstate(invalid="ignore"):
        bad = ~np.isnan(values) & ((values < lo - tol) | (values > hi + tol))
    if bad.any() and not clip:
        i, j = np.argwhere(bad)[0]
        raise GMError(
            f"{path}: row {i + 1}, {table.column_name(j)} is {values[i, j]:g}, outside "
            f"the range the model was trained on ({lo[j]:g} to {hi[j]:g}); "
            f"{int(bad.sum())} value(s) are. Pass --clip to clamp them to the range, or "
            "train on data that covers them."
        )
    return np.where(bad, np.clip(values, lo, hi), values)


def write_table(path: Path, table: Table, completed: np.ndarray) -> None:
    """Write completed rows ``(S, N, D)``: S = 1 in the input's own layout; S > 1 as
    ``(S, N, ...)`` for .npy or, for .csv, S blocks of rows with a leading ``imputation``
    column. Observed CSV cells keep their original text."""
    path = Path(path)
    s, n = completed.shape[:2]
    if path.suffix.lower() == ".npy":
        shape = table.values.shape
        out = completed.reshape(s, *shape)
        np.save(path, out[0] if s == 1 else out)
        return
    if path.suffix.lower() != ".csv":
        raise GMError(f"cannot write {path.name}: use a .csv or .npy output for table data.")
    flat = completed.reshape(s, n, -1)
    cells = table.cells or [[repr(float(v)) for v in row] for row in table.values.reshape(n, -1)]
    missing = np.isnan(table.values.reshape(n, -1))
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        if table.header:
            w.writerow((["imputation"] if s > 1 else []) + table.header)
        for k in range(s):
            for i in range(n):
                row = [
                    f"{flat[k, i, j]:.8g}" if missing[i, j] else cells[i][j]
                    for j in range(flat.shape[2])
                ]
                w.writerow(([str(k + 1)] if s > 1 else []) + row)


def read_image(
    path: Path, mask_path: Path, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(values (C, H, W) in [0, 1], missing (C, H, W) bool) from an image and its mask image."""
    from PIL import Image, UnidentifiedImageError

    c, h, w = shape
    mode = {1: "L", 3: "RGB"}.get(c)
    if mode is None:
        raise GMError(f"this run's images have {c} channels; image files work for 1 or 3.")
    loaded = []
    for p, m in ((path, mode), (mask_path, "L")):
        try:
            with Image.open(p) as im:
                loaded.append(np.asarray(im.convert(m), dtype=np.float64))
        except FileNotFoundError:
            raise GMError(f"{p} does not exist.") from None
        except (UnidentifiedImageError, OSError) as err:
            raise GMError(f"{p} is not an image Pillow can read ({err}).") from None
    img, mask = loaded
    for p, a in ((path, img), (mask_path, mask)):
        if a.shape[:2] != (h, w):
            raise GMError(
                f"{p} is {a.shape[1]}x{a.shape[0]} pixels but the model was trained "
                f"on {w}x{h} images; resize it first."
            )
    values = (img[None] if c == 1 else img.transpose(2, 0, 1)) / 255.0
    missing = np.broadcast_to(mask[None] > 127, (c, h, w)).copy()
    if not missing.any():
        raise GMError(
            f"the mask image {mask_path} has no white pixel: nothing to impute "
            "(white marks the pixels to fill in)."
        )
    return values, missing


def write_image(path: Path, completed: np.ndarray) -> None:
    """Completed images ``(S, C, H, W)`` in [0, 1]: one image, or S side by side."""
    from PIL import Image

    s, c, h, w = completed.shape
    strip = np.concatenate(list(completed), axis=2)  # (C, H, S*W)
    arr = np.rint(np.clip(strip, 0, 1) * 255).astype(np.uint8)
    img = Image.fromarray(arr[0] if c == 1 else arr.transpose(1, 2, 0), "L" if c == 1 else "RGB")
    img.save(path)
