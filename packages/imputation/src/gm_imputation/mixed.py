"""Mixed-type tables: which columns a model sees, as what, and how its output comes back.

A table's modelled columns are held as ``(N, C)`` float *codes*, NaN = missing: a number
for a numeric column, the index into :attr:`Column.levels` for a category. A
:class:`Schema` maps codes to the model's ``(N, D)`` values and back:

- ``real`` and ``integer`` columns are one value each (integers are rounded on the way
  back, so they stay integers);
- ``category`` columns (text) are one-hot over
  the levels seen in the column, one value per level, and are imputed by a categorical
  observation model (:class:`gm_imputation.observation.Mixed`): a draw is always a level
  the column has.

:func:`infer` decides the kinds from a column's cells, and which columns are left out of
the model: an index (a blank header, or the integers 0..n-1 / 1..n in order) and a text
column whose value differs in nearly every row (a name or an identifier).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

MAX_LEVELS = 50  # a text column with more distinct values than this is an identifier...
UNIQUE_SHARE = 0.5  # ...and so is one whose values are distinct in more than half its rows
MIN_LEVEL_ROWS = 10  # (the share test needs this many observed rows to mean anything)


@dataclasses.dataclass
class Column:
    name: str
    kind: str  # "real" | "integer" | "category"
    levels: list[str] = dataclasses.field(default_factory=list)  # category: labels seen

    @property
    def width(self) -> int:
        return len(self.levels) if self.kind == "category" else 1


@dataclasses.dataclass
class Schema:
    columns: list[Column]

    @property
    def dim(self) -> int:
        return sum(c.width for c in self.columns)

    def groups(self) -> list[tuple[int, int]]:
        """(first model value, number of levels) of each category column."""
        out, at = [], 0
        for c in self.columns:
            if c.kind == "category":
                out.append((at, c.width))
            at += c.width
        return out

    def dim_column(self) -> np.ndarray:
        """The column of each model value, ``(D,)``."""
        return np.repeat(np.arange(len(self.columns)), [c.width for c in self.columns])

    def encode(self, codes: np.ndarray) -> np.ndarray:
        """``(N, C)`` codes -> ``(N, D)`` model values; a missing category is NaN in all
        of its one-hot values."""
        parts = []
        for j, col in enumerate(self.columns):
            v = codes[:, j]
            if col.kind != "category":
                parts.append(v[:, None])
                continue
            hot = np.zeros((len(v), col.width))
            seen = ~np.isnan(v)
            hot[np.flatnonzero(seen), v[seen].astype(int)] = 1.0
            hot[~seen] = np.nan
            parts.append(hot)
        return np.concatenate(parts, 1) if parts else np.empty((len(codes), 0))

    def decode(self, values: np.ndarray) -> np.ndarray:
        """``(N, D)`` model values (raw numbers; a category's level probabilities or a
        one-hot draw) -> ``(N, C)`` codes: the most probable level, integers rounded."""
        out, at = np.empty((len(values), len(self.columns))), 0
        for j, col in enumerate(self.columns):
            block = values[:, at : at + col.width]
            if col.kind == "category":
                out[:, j] = block.argmax(1)
            elif col.kind == "integer":
                out[:, j] = np.rint(block[:, 0])
            else:
                out[:, j] = block[:, 0]
            at += col.width
        return out

    def to_meta(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(c) for c in self.columns]

    @classmethod
    def from_meta(cls, meta: list[dict[str, Any]]) -> Schema:
        return cls([Column(**c) for c in meta])

    @classmethod
    def numeric(cls, values: np.ndarray, names: list[str] | None = None) -> Schema:
        """The schema of an all-numeric ``(N, C)`` array (columns of whole numbers, binary
        ones too, are integers)."""
        names = names or [f"column {j + 1}" for j in range(values.shape[1])]
        return cls([numeric_column(n, values[:, j]) for j, n in enumerate(names)])


def numeric_column(name: str, v: np.ndarray) -> Column:
    seen = v[~np.isnan(v)]
    whole = len(seen) > 0 and bool(np.all(seen == np.round(seen)))
    return Column(name, "integer" if whole else "real")


def text_levels(cells: list[str | None]) -> list[str] | None:
    """The sorted levels of a text column (None = missing), or None when it looks like an
    identifier (a different value in nearly every row) rather than a category."""
    seen = [c for c in cells if c is not None]
    levels = sorted(set(seen))
    if len(levels) > MAX_LEVELS:
        return None
    if len(seen) >= MIN_LEVEL_ROWS and len(levels) > UNIQUE_SHARE * len(seen):
        return None
    return levels


def is_index(name: str | None, v: np.ndarray | None) -> bool:
    """A row index: a blank header over a column, or the integers 0..n-1 or 1..n in order."""
    if name is not None and name.strip() == "":
        return True
    if v is None or len(v) < 3 or np.isnan(v).any():
        return False
    return bool(np.array_equal(v, v[0] + np.arange(len(v))) and v[0] in (0.0, 1.0))
