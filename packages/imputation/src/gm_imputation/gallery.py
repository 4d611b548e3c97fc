"""The gallery: a few training examples kept in the checkpoint, imputed for ``gm sample``'s
pictures (rows of truths, masked inputs and imputations), and the drawing of those pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gm import distributed
from gm.data import DataInfo
from gm.errors import GMError

SIZE = 16  # training examples kept


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Every rank's rows of ``x`` under torchrun (the same result on every rank), else x."""
    world = distributed.current()
    if not world.distributed:
        return x
    parts = [torch.empty_like(x) for _ in range(world.size)]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts)


class Gallery(nn.Module):
    """The first :data:`SIZE` rows of the first training batch, in dataset units."""

    rows: torch.Tensor  # the buffers registered below
    filled: torch.Tensor

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("rows", torch.zeros(SIZE, dim))
        self.register_buffer("filled", torch.zeros((), dtype=torch.bool))
        self._ready: bool | None = None  # host copy of `filled`, read once per process

    def fill(self, x: torch.Tensor) -> None:
        """Keep rows of a training batch ``(B, D)`` unless the gallery is filled already."""
        if self._ready is None:
            self._ready = bool(self.filled.item())
        if self._ready:
            return
        rows = gather_rows(x)[:SIZE]  # the same examples on every rank
        self.rows[: len(rows)] = rows
        self.filled.fill_(True)
        self._ready = True

    def examples(self, n: int) -> torch.Tensor:
        """``n`` gallery rows (cycled), in dataset units."""
        return self.rows[torch.arange(n, device=self.rows.device) % SIZE]


def write(samples: Any, path: Path, info: DataInfo, to_unit) -> None:
    """Write ``(completed, masked view, truth)`` (or plain samples) as ``.npy`` or ``.png``;
    ``to_unit`` maps a vector's dataset units to [0, 1] for the picture."""
    from gm import pictures

    filled, view, truth = samples if isinstance(samples, tuple) else (samples, None, None)
    path = Path(path)
    shape = tuple(info.shape)
    if path.suffix == ".npy":
        np.save(path, filled.detach().float().cpu().numpy())
    elif path.suffix == ".png" and info.modality == "image" and view is not None:
        # blocks of 8 examples: a row of truths, of masked inputs, of imputations
        per = min(8, len(filled))
        blocks = [
            torch.cat([t[i : i + per] for t in (truth, view, filled)])
            for i in range(0, min(len(filled) // per, 4) * per, per)  # up to 32 examples
        ]
        pictures.image_grid(
            torch.cat(blocks),
            nrow=per,
            scale=pictures.scale_for(shape[-1]),
            row_labels=["truth", "masked (grey)", "imputed"],
        ).save(path)
    elif path.suffix == ".png" and info.modality == "vector" and view is not None:
        # rows = examples, columns = features (unit scale): truth | masked | imputed
        panels = [
            torch.nan_to_num(to_unit(t.reshape(len(t), -1)), nan=0.5) for t in (truth, view, filled)
        ]
        gap = torch.ones(len(filled), 1, device=filled.device)
        table = torch.cat([panels[0], gap, panels[1], gap, panels[2]], 1)
        scale = max(2, min(16, 512 // table.shape[1]))
        pictures.image_grid(
            table[None, None],
            nrow=1,
            scale=scale,
            title="a row per example; columns: truth | masked (grey) | imputed",
        ).save(path)
    elif path.suffix == ".png":
        pictures.auto(filled, info).save(path)
    else:
        raise GMError(f"cannot write samples to {path.name}; use a .png or .npy file.")
