"""``array:FILE``: the user's own table, ``.npy`` (2-D numeric) or ``.csv`` (rows = examples).

NaN marks a missing value (in a CSV: an empty field, ``nan``, ``NA``, ``N/A``, ``null`` or
``?``); the imputation plugin imputes them. A CSV whose first row is not numeric is read
as a header (``info.meta["columns"]``). Rows are split by a seeded permutation
(``test_fraction`` held out as ``test``). With ``scale=true`` (default) each column is
min-max scaled to [0, 1] using the *train* split's observed values only (test values may
fall outside); ``info.meta["column_min"]`` / ``["column_max"]`` give ``x * (max - min) + min``
back. A constant column maps to 0. Stored as float32 (N, D).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

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
    if path.suffix.lower() == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise GMError(f"{path} is not a readable .npy file ({err}).") from None
        if x.ndim != 2 or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise GMError(
                f"{path} holds a {x.dtype} array of shape {x.shape}; array:FILE needs a 2-D "
                f"numeric array, rows = examples (reshape it to (N, D))."
            )
        return x.astype(np.float64), None
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        return read_csv(path)
    raise GMError(f"array:{path}: use a .npy or .csv file.")


def array_file(
    path: str,
    data_dir: str | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    scale: bool = True,
) -> LabelledDataset:
    """A .npy/.csv table as float32 vectors (NaN = missing), train/test by a seeded permutation."""
    f = Path(path).expanduser()
    if not f.is_file():
        raise GMError(f"array:{path} is not a file.")
    if not 0 <= test_fraction < 1:
        raise GMError(f"test_fraction must be in [0, 1), got {test_fraction}.")
    x, header = read_array(f)
    n, d = x.shape
    if n == 0 or d == 0:
        raise GMError(f"{f} holds no values (shape {x.shape}).")
    if np.isinf(x).any():
        raise GMError(f"{f} holds infinite values; use nan for a missing value.")
    k = max(1, int(round(n * test_fraction))) if test_fraction > 0 and n >= 2 else 0
    perm = np.random.RandomState(split_seed).permutation(n)
    train, test = x[np.sort(perm[k:])], x[np.sort(perm[:k])]
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
    meta = {
        "file": str(f),
        "column_min": lo.tolist(),
        "column_max": (lo + span).tolist(),
        "scaled": scale,
        "missing_fraction": float(np.isnan(x).mean()),
        "split": f"RandomState({split_seed}).permutation; first {k} rows = test",
    }
    if header:
        meta["columns"] = header
    return make_dataset(f"array:{path}", "vector", splits, meta=meta)
