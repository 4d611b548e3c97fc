"""Masks of what is missing, written as small specs that compose with ``+``: the one
grammar of inpainting (walkback) and imputation.

=================  =============================================================
``mcar:P``         each value missing independently with probability P (images:
                   each pixel, all its channels together)
``mar:K``          one K x K square missing per image, its top-left corner uniform
                   over the positions that keep the square inside the image
                   (vectors: a block of K consecutive entries)
``bottom-half``    the lower half of every image (rows H//2 .. H-1; vectors: the
                   entries D//2 .. D-1)
``all``            every value missing (unconditional generation)
``nan``            nothing beyond the NaNs already in the data
``A+B``            missing where A *or* B says missing (``mcar:0.3+mar:3``)
=================  =============================================================

A mask is a boolean tensor, ``True`` = missing, of shape ``(N, *shape)`` (inpainting
clamps ``~mask``). Values that are NaN in the data are never known and never scored (see
:func:`split_known`): the spec says which of the remaining values a model must impute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gm.errors import GMError

GRAMMAR = "mcar:P, mar:K, bottom-half, all or nan, joined with '+' (e.g. mcar:0.3+mar:3)"


@dataclass(frozen=True)
class Term:
    kind: str  # mcar | mar | bottom-half | all | nan
    value: float = 0.0

    def __str__(self) -> str:
        if self.kind == "mcar":
            return f"mcar:{self.value:g}"
        if self.kind == "mar":
            return f"mar:{int(self.value)}"
        return self.kind


@dataclass(frozen=True)
class MaskSpec:
    """A parsed mask spec; :meth:`sample` draws masks for a batch."""

    terms: tuple[Term, ...]

    def __str__(self) -> str:
        return "+".join(str(t) for t in self.terms)

    def check(self, shape: tuple[int, ...], modality: str) -> None:
        """A clear error when this spec cannot apply to examples of ``shape``."""
        for t in self.terms:
            if t.kind != "mar":
                continue
            if modality == "image" and t.value > min(shape[-2:]):
                raise GMError(
                    f"mask mar:{int(t.value)} does not fit in {shape[-2]}x{shape[-1]} "
                    "images; use a smaller square."
                )
            if modality != "image" and t.value > math.prod(shape):
                raise GMError(
                    f"mask mar:{int(t.value)}: a block of {int(t.value)} entries does not fit "
                    f"in {math.prod(shape)}; use a smaller block."
                )

    def expected_rate(self, shape: tuple[int, ...], modality: str = "image") -> float:
        """The expected fraction of values this spec marks missing (terms independent)."""
        image = modality == "image"
        cells = shape[-2] * shape[-1] if image else math.prod(shape)
        rows = shape[-2] if image else cells
        keep = 1.0
        for t in self.terms:
            if t.kind == "mcar":
                keep *= 1 - t.value
            elif t.kind == "all":
                keep = 0.0
            elif t.kind == "mar":
                keep *= 1 - (t.value**2 if image else t.value) / cells
            elif t.kind == "bottom-half":
                keep *= 1 - (rows - rows // 2) / rows
        return 1 - keep

    def sample(
        self,
        n: int,
        shape: tuple[int, ...],
        *,
        modality: str = "vector",
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Boolean masks ``(n, *shape)``, True = missing.

        With ``generator`` the masks are drawn on the CPU from it (the same masks for every
        model given the same seed) and moved to ``device``; without it, from torch's global
        generator on ``device``.
        """
        self.check(shape, modality)
        where = "cpu" if generator is not None else device
        image = modality == "image"
        # Images: one decision per pixel, shared by the channels. Vectors: one per entry of
        # the flattened example, where mar:K is a block and bottom-half the entries D//2...
        plane = (n, *shape[-2:]) if image else (n, math.prod(shape))
        out = torch.zeros(plane, dtype=torch.bool, device=where)
        for t in self.terms:
            if t.kind == "mcar":
                out |= torch.rand(plane, generator=generator, device=where) < t.value
            elif t.kind == "all":
                out |= True
            elif t.kind == "mar" and image:
                out |= _squares(n, shape[-2], shape[-1], int(t.value), generator, where)
            elif t.kind == "mar":
                out |= _block(n, plane[1], int(t.value), generator, where)
            elif t.kind == "bottom-half":
                out[:, plane[1] // 2 :] = True
        if image:
            return out.unsqueeze(1).expand(n, *shape).contiguous().to(device)
        return out.view(n, *shape).to(device)


def _block(n: int, d: int, k: int, generator, device) -> torch.Tensor:
    """One block of k consecutive entries per row, its start uniform in [0, d-k]."""
    start = torch.randint(0, d - k + 1, (n, 1), generator=generator, device=device)
    cols = torch.arange(d, device=device).view(1, d)
    return (cols >= start) & (cols < start + k)


def _squares(n: int, h: int, w: int, k: int, generator, device) -> torch.Tensor:
    """One k x k square per image, corner uniform in [0, h-k] x [0, w-k]."""
    top = torch.randint(0, h - k + 1, (n, 1, 1), generator=generator, device=device)
    left = torch.randint(0, w - k + 1, (n, 1, 1), generator=generator, device=device)
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    return (rows >= top) & (rows < top + k) & (cols >= left) & (cols < left + k)


def parse(spec: str) -> MaskSpec:
    """``"mcar:0.3+mar:3"`` -> :class:`MaskSpec`; a :class:`GMError` naming the grammar otherwise."""
    if not isinstance(spec, str) or not spec.strip():
        raise GMError(f"empty mask spec; write {GRAMMAR}.")
    terms = []
    for raw in spec.strip().lower().split("+"):
        kind, colon, arg = raw.strip().partition(":")
        if kind == "mcar" and colon:
            try:
                p = float(arg)
            except ValueError:
                p = -1.0
            if not 0.0 <= p <= 1.0:
                raise GMError(f"mask term {raw!r}: the MCAR drop rate must be a number in [0, 1].")
            terms.append(Term("mcar", p))
        elif kind == "mar" and colon:
            if not arg.isdigit() or int(arg) < 1:
                raise GMError(f"mask term {raw!r}: the square side must be a positive integer.")
            terms.append(Term("mar", float(int(arg))))
        elif kind in ("bottom-half", "all", "nan") and not colon:
            terms.append(Term(kind))
        else:
            raise GMError(f"unknown mask term {raw.strip()!r} in {spec!r}; write {GRAMMAR}.")
    return MaskSpec(tuple(terms))


def split_known(
    x: torch.Tensor, missing: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x0, known, target)`` for data ``x`` (NaN = unobserved) and a spec mask.

    ``x0`` is x with NaNs replaced by 0; ``known`` (float) marks the values a model may
    read; ``target`` (float) the values it must impute and is scored on: observed in the
    data but hidden by the mask. A NaN of the data is in neither.
    """
    avail = ~torch.isnan(x)
    known = (avail & ~missing).to(x.dtype)
    target = (avail & missing).to(x.dtype)
    return torch.nan_to_num(x, nan=0.0), known, target
