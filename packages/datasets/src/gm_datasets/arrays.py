"""``array:FILE``: the user's own table, ``.npy`` or ``.csv`` (rows = examples).

Vectors (a 2-D array): NaN marks a missing value (in a CSV: an empty field, ``nan``,
``NA``, ``N/A``, ``null`` or ``?``); the imputation plugin imputes them. A CSV whose first
row is not numeric is read as a header (``info.meta["columns"]``). By default each column
is min-max scaled to [0, 1] using the *train* split's observed values only (test values
may fall outside; a constant column maps to 0); ``info.meta["affine"]`` records
``x * (max - min) + min``, so ``gm sample`` and ``gm evaluate`` speak in the file's units.
``scale=false`` keeps the raw values. Stored as float32 (N, D).

Images: ``shape=CxHxW`` (``28x28`` means ``1x28x28``; ``square`` infers 1xSxS or 3xSxS from
the row length) reshapes each row; a ``.npy`` of shape (N, H, W) or (N, C, H, W) is images
as it is. No per-column scaling: the value range is detected (``pixels=auto``) and stated:
0-1 values are kept (as uint8 when they are exact multiples of 1/255), 0-255 values are
divided by 255 for the model (integers stored as uint8) with ``affine`` scale 255 recorded.

Rows are split by a seeded permutation (``test_fraction`` held out as ``test``).
"""

from __future__ import annotations

import csv
import math
import re
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gm.errors import GMError
from gm_datasets.common import LabelledDataset, make_dataset

MISSING = {"", "nan", "na", "n/a", "null", "none", "?"}


def _number(field: str) -> float:
    f = field.strip()
    return math.nan if f.lower() in MISSING else float(f)


def read_csv(path: Path) -> tuple[np.ndarray, list[str] | None]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            sample = fh.read(65536)
            fh.seek(0)
            try:
                dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
            except csv.Error:
                dialect = csv.excel
            rows = [r for r in csv.reader(fh, dialect) if r and any(c.strip() for c in r)]
    except UnicodeDecodeError as err:
        raise GMError(f"{path} is not a UTF-8 CSV file ({err}).") from None
    if not rows:
        raise GMError(f"{path} has no rows.")
    header = None
    try:
        [_number(c) for c in rows[0]]
    except ValueError:
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    width = len(header) if header else len(rows[0]) if rows else 0
    out = np.empty((len(rows), width), dtype=np.float64)
    first = 2 if header else 1
    for i, row in enumerate(rows):
        if len(row) != width:
            raise GMError(
                f"{path} line {i + first} has {len(row)} values but line {first} has {width} "
                f"(a ragged CSV); every row must have the same number of columns."
            )
        try:
            out[i] = [_number(c) for c in row]
        except ValueError:
            bad = next(c for c in row if _is_bad(c))
            raise GMError(
                f"{path} line {i + first} has a non-numeric value {bad!r}; use numbers, and "
                f"an empty field or nan for a missing value."
            ) from None
    return out, header


def _is_bad(field: str) -> bool:
    try:
        _number(field)
        return False
    except ValueError:
        return True


def read_array(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """(N, ...) float64 values and the CSV header, if any."""
    if path.suffix.lower() == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise GMError(f"{path} is not a readable .npy file ({err}).") from None
        if x.ndim not in (2, 3, 4) or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise GMError(
                f"{path} holds a {x.dtype} array of shape {x.shape}; array:FILE needs a numeric "
                f"array, rows = examples: (N, D) vectors, or (N, H, W) / (N, C, H, W) images."
            )
        return x.astype(np.float64), None
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        return read_csv(path)
    raise GMError(f"array:{path}: use a .npy or .csv file.")


def image_shape(option: str | None, x: np.ndarray, f: Path) -> tuple[int, int, int] | None:
    """The (C, H, W) of one example, or None for vectors."""
    if option is None:
        if x.ndim == 2:
            return None
        return (1, *x.shape[1:]) if x.ndim == 3 else tuple(x.shape[1:])
    per_row = int(np.prod(x.shape[1:]))
    if option == "square":
        for c in (1, 3):
            side = math.isqrt(per_row // c)
            if per_row % c == 0 and side * side * c == per_row:
                return (c, side, side)
        raise GMError(
            f"{f} has {per_row} values a row, which is not S*S (grey) nor 3*S*S (RGB) for any "
            f"S; give the shape, e.g. --data-option shape=1x28x14."
        )
    m = re.fullmatch(r"\s*(?:(\d+)\s*x\s*)?(\d+)\s*x\s*(\d+)\s*", option.lower())
    if not m:
        raise GMError(f"shape must look like CxHxW (e.g. 1x28x28), HxW or square, got {option!r}.")
    shape = (int(m.group(1) or 1), int(m.group(2)), int(m.group(3)))
    if int(np.prod(shape)) != per_row:
        raise GMError(
            f"shape {'x'.join(map(str, shape))} needs {int(np.prod(shape))} values a row; "
            f"{f} has {per_row}."
        )
    return shape


def image_values(x: np.ndarray, pixels: str, f: Path) -> tuple[np.ndarray, dict | None, str]:
    """(stored array, affine to record or None, what was detected in words)."""
    if np.isnan(x).any():
        raise GMError(
            f"{f} has missing values (NaN); an image array must be complete "
            f"(leave out shape= to load the rows as vectors with missing values)."
        )
    lo, hi = float(x.min()), float(x.max())
    if pixels == "auto":
        if lo < 0 or hi > 255:
            raise GMError(
                f"{f} holds values from {lo:g} to {hi:g}; image arrays hold 0-255 or 0-1 "
                f"values (rescale the file, or leave out shape= to load the rows as vectors)."
            )
        pixels = "0-1" if hi <= 1 else "0-255"
    top = 1.0 if pixels == "0-1" else 255.0
    if lo < 0 or hi > top:
        raise GMError(f"{f} holds values from {lo:g} to {hi:g}, outside pixels={pixels}.")
    levels = x * (255.0 / top)
    if np.abs(levels - np.round(levels)).max() < 1e-4:  # 256 levels: exact as uint8
        stored, how = np.round(levels).astype(np.uint8), "stored as uint8"
    else:
        stored, how = (x / top).astype(np.float32), "stored as float32 / " + f"{top:g}"
    if pixels == "0-1":
        return stored, None, f"values 0-1 ({how}); models see them as they are"
    return (
        stored,
        {"scale": 255.0, "shift": 0.0},
        f"values 0-255 ({how}); models see x/255, gm sample (.npy) and gm evaluate give 0-255 back",
    )


def array_file(
    path: str,
    data_dir: str | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    scale: bool | None = None,
    shape: str | None = None,
    pixels: Literal["auto", "0-1", "0-255"] = "auto",
) -> LabelledDataset:
    """A .npy/.csv table as float32 vectors (NaN = missing), or as images with ``shape``;
    train/test by a seeded permutation."""
    f = Path(path).expanduser()
    if not f.is_file():
        raise GMError(f"array:{path} is not a file.")
    if not 0 <= test_fraction < 1:
        raise GMError(f"test_fraction must be in [0, 1), got {test_fraction}.")
    x, header = read_array(f)
    n = x.shape[0]
    if x.size == 0:
        raise GMError(f"{f} holds no values (shape {x.shape}).")
    if np.isinf(x).any():
        raise GMError(f"{f} holds infinite values; use nan for a missing value.")
    k = max(1, int(round(n * test_fraction))) if test_fraction > 0 and n >= 2 else 0
    perm = np.random.RandomState(split_seed).permutation(n)
    rows = {"train": np.sort(perm[k:]), "test": np.sort(perm[:k])}
    meta: dict[str, Any] = {
        "file": str(f),
        "split": f"RandomState({split_seed}).permutation; first {k} rows = test",
    }
    if header:
        meta["columns"] = header
    chw = image_shape(shape, x, f)
    if chw is not None:
        if chw[0] not in (1, 3):
            raise GMError(f"images need 1 (grey) or 3 (RGB) channels, got shape {chw}.")
        if scale:
            raise GMError(
                "image arrays are not scaled per column (it would distort the pictures); "
                "leave out scale=true, or leave out shape= to load the rows as vectors."
            )
        stored, aff, said = image_values(x.reshape(n, *chw), pixels, f)
        print(f"gm: array:{path}: {said}.", file=sys.stderr)
        meta.update({"pixels": said, **({"affine": aff} if aff else {})})
        splits = {s: stored[r] for s, r in rows.items() if len(r)}
        return make_dataset(f"array:{path}", "image", splits, meta=meta)
    scale = True if scale is None else scale
    d = x.shape[1]
    train, test = x[rows["train"]], x[rows["test"]]
    observed = ~np.isnan(train)
    empty = np.flatnonzero(~observed.any(0))
    if len(empty):
        names = [header[j] if header else str(j) for j in empty[:5]]
        raise GMError(
            f"{f}: column(s) {', '.join(names)} have no observed value in the train split; "
            f"drop them (a column with nothing observed cannot be scaled or learnt)."
        )
    if scale:
        lo, hi = np.nanmin(train, 0), np.nanmax(train, 0)
    else:
        lo, hi = np.zeros(d), np.ones(d)
    span = np.where(hi > lo, hi - lo, 1.0)
    splits = {"train": ((train - lo) / span).astype(np.float32)}
    if k:
        splits["test"] = ((test - lo) / span).astype(np.float32)
    meta.update(
        {
            "column_min": lo.tolist(),
            "column_max": (lo + span).tolist(),
            "scaled": scale,
            "missing_fraction": float(np.isnan(x).mean()),
        }
    )
    if scale:
        meta["affine"] = {"scale": span.tolist(), "shift": lo.tolist()}
    return make_dataset(f"array:{path}", "vector", splits, meta=meta)
