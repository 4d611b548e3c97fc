"""Reading and writing users' files for ``gm impute`` (numpy and Pillow only, no torch).

- ``.csv``/``.tsv``: one reader for training and imputing (:func:`read_csv`): comma,
  semicolon or tab separated (sniffed); missing values are empty cells or ``NaN``/``NA``/
  ``N/A``/``null``/``none``/``?``; a first row with text over a numeric column is a header.
  Columns are mixed-type (:mod:`gm_imputation.mixed`): numbers, and text columns as
  categories (imputed with a level seen in the column); an index column (blank header, or
  0..n-1 / 1..n in order) and a text column with a different value in nearly every row (a
  name) are left out of the model and pass through. Every row is kept, all-empty ones
  too, and the text of every observed cell is written back unchanged.
- ``.npy``: a numeric array with NaN for missing values (never unpickled).
- images: an image file plus a mask image of the same size, non-zero (white) where the
  values are missing.

Every malformed input is a :class:`GMError` that says what is wrong and how to fix it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gm.errors import GMError
from gm_imputation import mixed

NA_TOKENS = {"", "nan", "na", "n/a", "null", "none", "?"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
TABLE_SUFFIXES = {".csv", ".tsv", ".txt", ".npy"}


@dataclass
class Table:
    """A user's table: the modelled columns as codes (:mod:`gm_imputation.mixed`: numbers,
    or a category's level index) and, for a text file, every field as read (so observed
    cells are written back as their own text).

    ``columns`` are the indices (among all of the file's columns) of the modelled columns,
    in the order of ``values``' columns; every other column is passed through untouched.
    """

    values: (
        np.ndarray
    )  # (N, C) float64 codes of the modelled columns, NaN = missing (.npy: (N, *shape))
    header: list[str] | None = None  # every column's name
    cells: list[list[str]] | None = None  # every row's fields (all columns), text files only
    columns: list[int] = field(default_factory=list)
    numeric: list[bool] = field(default_factory=list)  # per file column: numbers or missing only
    delimiter: str = ","
    newline: str = "\n"
    schema: mixed.Schema | None = None  # the modelled columns' kinds (None: all numbers)
    left_out_columns: list[int] = field(default_factory=list)  # index / name columns...

    @property
    def left_out(self) -> list[str]:
        """...by name: left out of the model, passed through."""
        return [self.name_of(c) or f"column {c + 1}" for c in self.left_out_columns]

    def column_name(self, j: int) -> str:
        """The name of modelled column ``j`` for messages."""
        at = self.columns[j] if self.columns else j
        return f"{self.header[at]!r} (column {at + 1})" if self.header else f"column {at + 1}"

    @property
    def names(self) -> list[str] | None:
        """Header names of the modelled columns (None without a header)."""
        return [self.header[c] for c in self.columns] if self.header else None

    @property
    def passed_through(self) -> list[str]:
        """Names of the columns left as they are (text, or not modelled)."""
        chosen = set(self.columns)
        width = len(self.numeric)
        return [
            self.header[c] if self.header else f"column {c + 1}"
            for c in range(width)
            if c not in chosen
        ]

    def name_of(self, c: int) -> str:
        return self.header[c] if self.header else f"column {c + 1}"

    def select(self, columns: list[int], path: Path, schema: mixed.Schema | None = None) -> Table:
        """The same file with ``columns`` (file column indices) as the modelled ones, their
        kinds inferred, or as in ``schema`` (a run's: a level the run never saw is an
        error)."""
        if self.cells is None:
            return self
        n = len(self.cells)
        values, kinds = np.empty((n, len(columns))), []
        for j, c in enumerate(columns):
            cells = [row[c] for row in self.cells]
            given = schema.columns[j] if schema else None
            name = self.name_of(c)
            if self.numeric[c] and not (given and given.kind == "category"):
                values[:, j] = [_number(t) for t in cells]
                col = given or mixed.numeric_column(name, values[:, j])
                unseen = np.zeros(n, dtype=bool)
            elif given is not None and given.kind != "category":
                raise GMError(
                    f"{path}: column {name!r} holds text, not numbers; the run was trained "
                    "on numbers there (leave a cell empty for a missing value)."
                )
            else:
                labels = [None if _missing(t) else t.strip() for t in cells]
                levels = given.levels if given else mixed.text_levels(labels)
                col = mixed.Column(name, "category", list(levels or []))
                index = {str(lv): i for i, lv in enumerate(col.levels)}
                values[:, j] = [math.nan if t is None else index.get(t, math.nan) for t in labels]
                unseen = np.array([t is not None for t in labels]) & np.isnan(values[:, j])
            if unseen.any():
                i = int(np.flatnonzero(unseen)[0])
                raise GMError(
                    f"{path}: row {i + 1}, column {name!r} is {cells[i].strip()!r}, a value "
                    f"the run never saw there (it knows {', '.join(map(str, col.levels[:5]))}); "
                    "fix it or leave the cell empty."
                )
            kinds.append(col)
        return dataclasses.replace(
            self, values=values, columns=list(columns), schema=mixed.Schema(kinds)
        )

    def text(self, j: int, code: float) -> str:
        """The text of modelled column ``j``'s value ``code`` (a category's level)."""
        col = self.schema.columns[j] if self.schema else None
        if col is not None and col.kind == "category":
            return col.levels[int(code)]
        if col is not None and col.kind == "integer":
            return str(int(code))
        return f"{code:.8g}"


def _missing(cell: str) -> bool:
    return cell.strip().lower() in NA_TOKENS


def _number(cell: str) -> float | None:
    text = cell.strip()
    if text.lower() in NA_TOKENS:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


def _delimiter(path: Path, text: str) -> str:
    """Tab for ``.tsv``; else the one of ``,`` ``;`` tab that splits the first rows into the
    same number of fields (a delimiter that splits nothing loses to one that does), the most fields winning (ties: tab, then ``;``, so that decimal
    commas in ``1,5;2`` stay inside their fields, then ``,``)."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    head = text.splitlines()[:50]

    def score(d: str) -> tuple[bool, bool, int, int]:
        try:
            widths = {len(r) for r in csv.reader(head, delimiter=d) if r}
        except csv.Error:
            return (False, False, 0, 0)
        # one that splits at all first: a ragged file is then told which row is short
        most = max(widths, default=0)
        return (most > 1, len(widths) == 1, most, "\t;,".index(d) * -1)

    return max("\t;,", key=score)


def read_csv(path: Path) -> Table:
    """A ``,``/``;``/tab-separated text table (the delimiter sniffed, tabs for ``.tsv``).

    Every row is kept, including rows whose cells are all empty (pandas writes ``,,,`` for
    them) and blank lines between rows (an all-empty row); only blank lines at the end of
    the file are dropped. A first row is a header when it has text where the rest of its
    column is numbers. Columns that hold text are passed through untouched.
    """
    path = Path(path)
    try:
        with path.open(newline="") as f:
            text = f.read()
    except FileNotFoundError:
        raise GMError(f"{path} does not exist.") from None
    except IsADirectoryError:
        raise GMError(f"{path} is a folder; give a .csv, .tsv or .npy file.") from None
    except UnicodeDecodeError as err:
        raise GMError(f"{path} is not a readable text file ({err}); save it as UTF-8.") from None
    delimiter = _delimiter(path, text)
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as err:
        raise GMError(f"{path} is not a readable CSV file ({err}).") from None
    while rows and not rows[-1]:
        rows.pop()  # blank lines at the end
    if not rows:
        raise GMError(f"{path} is empty; give a table with one row per example.")
    width = max(len(r) for r in rows)
    rows = [r if r else [""] * width for r in rows]  # a blank line inside: an all-empty row
    for i, row in enumerate(rows):
        if len(row) != width:
            raise GMError(
                f"{path}: row {i + 1} has {len(row)} fields but another row has {width}; every "
                f"row needs the same number of {_NAMES.get(delimiter, repr(delimiter))}-"
                "separated fields (leave a cell empty for a missing value)."
            )
    cols = list(zip(*rows, strict=True))
    parsed = [[_number(c) is not None for c in col] for col in cols]
    header = None
    # text over a column of numbers (at least one real number, not only holes)
    if any(
        not ok[0] and all(ok[1:]) and any(c.strip().lower() not in NA_TOKENS for c in col[1:])
        for ok, col in zip(parsed, cols, strict=True)
    ):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
        parsed = [ok[1:] for ok in parsed]
    numeric = [all(ok) for ok in parsed]
    newline = "\r\n" if "\r\n" in text[:65536] else "\n"
    table = Table(np.empty((len(rows), 0)), header, rows, [], numeric, delimiter, newline)
    chosen, left_out = [], []
    for c in range(width):
        cells = [row[c] for row in rows]
        name = header[c] if header else None
        v = np.array([_number(t) for t in cells], dtype=float) if numeric[c] else None
        if mixed.is_index(name, v) or (
            not numeric[c]
            and mixed.text_levels([None if _missing(t) else t.strip() for t in cells]) is None
        ):
            left_out.append(c)
        else:
            chosen.append(c)
    if not chosen:
        raise GMError(
            f"{path} has no column to impute: every column is a row index or holds a "
            "different text in nearly every row (missing values are empty cells or NaN)."
        )
    return dataclasses.replace(table.select(chosen, path), left_out_columns=left_out)


_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}


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
    arr = arr[None] if arr.ndim == 1 else arr
    width = int(np.prod(arr.shape[1:]))
    return Table(arr, columns=list(range(width)), numeric=[True] * width)  # no schema: numbers


def read_table(path: Path) -> Table:
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        return read_csv(path)
    if suffix == ".npy":
        return read_npy(path)
    raise GMError(
        f"cannot read {Path(path).name}: give a .csv, .tsv or .npy file with empty cells or "
        "NaN for missing values, or an image with --mask."
    )


def match_columns(table: Table, schema: mixed.Schema, path: Path, run) -> Table:
    """``table`` with the run's columns (``schema``) as its modelled ones: by header name
    where the file has a header (any order; the file's other columns pass through), else
    by position among the columns it would model itself, which must be as many."""
    names = [c.name for c in schema.columns]
    if table.cells is None:  # .npy: numbers by position
        width = table.values.reshape(len(table.values), -1).shape[1]
        if width != len(names):
            raise GMError(
                f"{path} has {width} values per row but {run} was trained on {len(names)}."
            )
        return table
    if table.header and all(names):
        where = {name: c for c, name in enumerate(table.header)}
        absent = [n for n in names if n not in where]
        if absent:
            listed = ", ".join(repr(n) for n in absent[:3])
            raise GMError(
                f"{path} has no column {listed} that {run} was trained on; add "
                f"{'it' if len(absent) == 1 else 'them'} (empty cells are fine) or fix the header."
            )
        return table.select([where[n] for n in names], path, schema)
    columns, what = table.columns, "columns to impute"
    if not any(c.kind == "category" for c in schema.columns):  # numbers: text passes through
        columns, what = [c for c in columns if table.numeric[c]], "numeric values per row"
    if len(columns) != len(names):
        text = [table.name_of(c) for c in range(len(table.numeric)) if not table.numeric[c]]
        verb = "holds" if len(text) == 1 else "hold"
        note = f" ({', '.join(repr(t) for t in text[:3])} {verb} text)" if text else ""
        raise GMError(
            f"{path} has {len(columns)} {what}{note} but {run} was trained on "
            f"{len(names)}; give the same columns (with a header row, columns are matched "
            "by name)."
        )
    return table.select(columns, path, schema)


def check_missing(table: Table, path: Path, need_missing: bool = True) -> np.ndarray:
    """The (N, D) values after checking there is something to impute and no column is empty."""
    values = table.values.reshape(len(table.values), -1)
    nan = np.isnan(values)
    if need_missing and not nan.any():
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
            "fit on this file itself (gm impute FILE --out FILLED)."
        )
    return np.where(bad, np.clip(values, lo, hi), values)


def check_output(path: Path, table: Table) -> None:
    """A clear error, before any work, when ``path`` cannot take this table."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".csv", ".tsv", ".txt", ".npy"):
        raise GMError(f"cannot write {Path(path).name}: use a .csv, .tsv or .npy output.")
    if suffix == ".npy" and table.cells is not None and not all(table.numeric):
        text = [table.name_of(c) for c, ok in enumerate(table.numeric) if not ok]
        raise GMError(
            f"{Path(path).name}: a .npy output cannot hold the text columns "
            f"{', '.join(text[:3])}; write a .csv or .tsv instead."
        )
    if Path(path).is_dir():
        raise GMError(f"{path} is a folder; give a file name for the output.")


class TableWriter:
    """Completed rows written chunk by chunk to a temporary file beside ``path``, renamed
    over it by :meth:`close` (so a failure leaves no half-written output).

    ``samples`` = S: S = 1 writes the input's own layout; S > 1 writes, for a text file,
    S blocks of all rows with a leading ``imputation`` column, for .npy an (S, N, ...)
    array. Observed text cells keep their original text; text columns pass through.
    """

    def __init__(self, path: Path, table: Table, samples: int):
        self.path, self.table, self.samples = Path(path), table, samples
        self.path.parent.mkdir(parents=True, exist_ok=True)
        from gm.checkpoint import umask_mode

        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        os.close(fd)
        os.chmod(tmp, umask_mode())  # the filled file is readable as any file the user makes
        self.tmp = Path(tmp)
        n = len(table.values)
        self.missing = np.isnan(table.values.reshape(n, -1))
        if self.path.suffix.lower() == ".npy":
            shape = (samples, *table.values.shape) if samples > 1 else table.values.shape
            self.array: np.memmap | None = np.lib.format.open_memmap(
                self.tmp, "w+", np.float64, shape
            )
            self.file = None
            return
        self.array = None
        delimiter = "\t" if self.path.suffix.lower() == ".tsv" else table.delimiter
        if delimiter == "\t" and self.path.suffix.lower() == ".csv":
            delimiter = ","
        self.file = self.tmp.open("w", newline="")
        self.writer = csv.writer(self.file, delimiter=delimiter, lineterminator=table.newline)
        if table.header:
            self.writer.writerow((["imputation"] if samples > 1 else []) + table.header)
        if table.cells is None:  # a .npy input written as text: every value as numbers
            width = self.missing.shape[1]
            table.cells = [[repr(float(v)) for v in row] for row in table.values.reshape(n, -1)]
            table.columns, table.numeric = list(range(width)), [True] * width

    def write(self, k: int, start: int, rows: np.ndarray) -> None:
        """Rows ``start..`` of imputation ``k`` (0-based), ``(n, D)`` raw values."""
        if self.array is not None:
            shape = self.table.values.shape[1:]
            dest = self.array[k] if self.samples > 1 else self.array
            dest[start : start + len(rows)] = rows.reshape(len(rows), *shape)
            return
        cols, cells = self.table.columns, self.table.cells
        assert cells is not None  # text output: __init__ made the cells
        for i, filled in enumerate(rows, start):
            row = list(cells[i])
            for j, c in enumerate(cols):
                if self.missing[i, j]:
                    row[c] = self.table.text(j, filled[j])
            self.writer.writerow(([str(k + 1)] if self.samples > 1 else []) + row)

    def close(self) -> None:
        if self.array is not None:
            self.array.flush()
            del self.array
        elif self.file is not None:
            self.file.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self.file is not None:
            self.file.close()
        self.array = None
        self.tmp.unlink(missing_ok=True)


def write_table(path: Path, table: Table, completed: np.ndarray) -> None:
    """Write completed rows ``(S, N, D)`` at once (see :class:`TableWriter`)."""
    writer = TableWriter(path, table, len(completed))
    try:
        for k, rows in enumerate(completed):
            writer.write(k, 0, rows.reshape(len(rows), -1))
    except BaseException:
        writer.abort()
        raise
    writer.close()


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
