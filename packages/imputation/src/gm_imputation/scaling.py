"""Column scaling: the raw values a user's table holds <-> the [0, 1] "unit" values models see.

raw --(raw_lo, raw_hi: the ranges a dataset that scaled its columns records in its meta)-->
dataset units --(lo, hi: running min/max over the training batches, or [0, 1])--> unit.

Images arrive in [0, 1] and map through unchanged. The ranges are buffers, so they travel in
the checkpoint and a run can take a user's raw ``.csv`` and give back raw values.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from gm import distributed


def meta_ranges(meta: dict[str, Any], dim: int) -> tuple[list[float], list[float]] | None:
    """Raw per-column (min, max) recorded by a dataset that scaled its columns to [0, 1]."""
    for lo_key, hi_key in (("column_min", "column_max"), ("col_min", "col_max"), ("min", "max")):
        lo, hi = meta.get(lo_key), meta.get(hi_key)
        if (
            isinstance(lo, list | tuple)
            and isinstance(hi, list | tuple)
            and len(lo) == len(hi) == dim
        ):
            return [float(v) for v in lo], [float(v) for v in hi]
    scaling = meta.get("scaling")
    if isinstance(scaling, dict):
        return meta_ranges(scaling, dim)
    return None


class ColumnScaler(nn.Module):
    """Per-column min-max scaling to [0, 1] (``running``: widened by each training batch)."""

    lo: torch.Tensor  # the buffers registered below
    hi: torch.Tensor
    raw_lo: torch.Tensor
    raw_hi: torch.Tensor

    def __init__(self, dim: int, running: bool, raw: tuple[list[float], list[float]] | None):
        super().__init__()
        self.running = running
        # Running ranges start empty (lo = +inf, hi = -inf) and widen with each batch.
        self.register_buffer("lo", torch.full((dim,), math.inf) if running else torch.zeros(dim))
        self.register_buffer("hi", torch.full((dim,), -math.inf) if running else torch.ones(dim))
        self.register_buffer("raw_lo", torch.tensor(raw[0]) if raw else torch.zeros(dim))
        self.register_buffer("raw_hi", torch.tensor(raw[1]) if raw else torch.ones(dim))

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        """Widen the running column ranges by a training batch ``(B, D)`` (NaN-aware)."""
        if not self.running:
            return
        lo = torch.nan_to_num(x, nan=math.inf).amin(0)
        hi = torch.nan_to_num(x, nan=-math.inf).amax(0)
        if distributed.current().distributed:
            torch.distributed.all_reduce(lo, op=torch.distributed.ReduceOp.MIN)
            torch.distributed.all_reduce(hi, op=torch.distributed.ReduceOp.MAX)
        torch.minimum(self.lo, lo, out=self.lo)
        torch.maximum(self.hi, hi, out=self.hi)

    def span(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(low, width) of each column in dataset units; an unseen column maps as [0, 1]."""
        seen = torch.isfinite(self.lo) & torch.isfinite(self.hi)
        lo = torch.where(seen, self.lo, torch.zeros_like(self.lo))
        width = torch.where(seen & (self.hi > self.lo), self.hi - self.lo, torch.ones_like(self.lo))
        return lo, width

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        lo, width = self.span()
        return ((x - lo) / width).clamp(0, 1)

    def from_unit(self, u: torch.Tensor) -> torch.Tensor:
        lo, width = self.span()
        return lo + u * width

    def _raw_width(self) -> torch.Tensor:
        return torch.where(
            self.raw_hi > self.raw_lo, self.raw_hi - self.raw_lo, torch.ones_like(self.raw_lo)
        )

    def raw_to_unit(self, raw: torch.Tensor) -> torch.Tensor:
        return self.to_unit((raw - self.raw_lo) / self._raw_width())

    def unit_to_raw(self, u: torch.Tensor) -> torch.Tensor:
        return self.raw_lo + self.from_unit(u) * self._raw_width()

    def raw_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw values each column took in training (what the model can speak for)."""
        ends = torch.stack([torch.zeros_like(self.lo), torch.ones_like(self.lo)])
        lo, hi = self.unit_to_raw(ends)
        return lo, hi
