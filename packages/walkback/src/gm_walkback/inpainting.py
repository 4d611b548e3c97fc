"""Inpainting with a trained walkback model: clamp the known entries at every step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gm import distributed, masks, pictures, progress
from gm.engine import seed_everything
from gm.errors import GMError
from gm.run import Run
from gm_walkback import figures


def inpaint_run(
    run: Path,
    *,
    dataset: str | None,
    mask: str,
    out: Path,
    n: int = 16,
    split: str = "test",
    extra_steps: int = 0,
    seed: int = 0,
    device: str = "auto",
    data_dir: str | None = None,
) -> float:
    """Inpaint ``n`` examples of a split, write ``out``; returns the RMSE on unknown entries."""
    if n < 1:
        raise GMError("-n must be at least 1.")
    if out.suffix not in (".png", ".npy"):
        raise GMError(f"cannot write to {out.name}; use a .png or .npy file.")
    spec = masks.parse(mask)  # a bad spec stops before the run is loaded
    opened = Run.read(run)
    opened.require("inpaint")
    record, trainer = opened.record, Run.open(opened, distributed.choose_device(device)).trainer
    data = opened.dataset(dataset, data_dir)
    raw = data.raw(split)[:n]
    if tuple(raw.shape[1:]) != tuple(trainer.info.shape):
        raise GMError(
            f"dataset {data.info.name!r} has examples of shape {tuple(raw.shape[1:])}, "
            f"but the model was trained on shape {tuple(trainer.info.shape)}."
        )
    missing = spec.sample(
        len(raw),
        tuple(raw.shape[1:]),
        modality=trainer.info.modality,
        generator=torch.Generator().manual_seed(seed),  # the mask depends on the seed alone
        device=trainer.device,
    )
    known = ~missing  # gm.masks marks what is missing; the chain clamps what is known
    x = data.decode(raw.to(trainer.device)).float()
    seed_everything(seed)
    with torch.no_grad(), progress.timed(f"inpainting {len(x)} examples"):
        filled = trainer.inpaint(x, known, extra_steps)
    rmse = (filled - x)[missing].pow(2).mean().sqrt().item() if missing.any() else 0.0
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, filled.float().cpu().numpy())
        return rmse
    shown = torch.where(known, x, torch.full_like(x, 0.5))  # unknown entries grey
    rows = torch.cat([shown, filled, x]).float().cpu()
    tiles = figures.as_images(rows, trainer.info)
    if tiles is None:  # 2-D points: completions over the originals
        pictures.scatter(filled, reference=x).save(out)
    else:
        pictures.image_grid(
            tiles,
            nrow=len(x),
            scale=pictures.scale_for(tiles.shape[-1]),
            row_labels=["input (grey: unknown)", "inpainted", "original"],
            title=f"{record['gm_model']} inpainting {data.info.name} ({mask} unknown)",
        ).save(out)
    return rmse
