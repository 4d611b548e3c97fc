"""Pictures of samples and of chains over time (plain Pillow through gm.pictures)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from gm import pictures
from gm.data import DataInfo
from gm.errors import GMError


def as_images(x: torch.Tensor, info: DataInfo) -> torch.Tensor | None:
    """(N, C, H, W) for image data or square vectors; None for 2-D points."""
    if info.modality == "image":
        return x
    d = x.shape[-1]
    if d != 2 and math.isqrt(d) ** 2 == d:
        side = math.isqrt(d)
        return x.reshape(-1, 1, side, side)
    if d == 2:
        return None
    raise GMError(
        f"no picture for samples of shape {tuple(x.shape[1:])}; write a .npy file instead."
    )


def chain_strip(frames: torch.Tensor, info: DataInfo, every: int = 1, rows: int = 8) -> Image.Image:
    """The chain over time: frames (F, N, ...) as one row per chain (images) or one panel
    per frame (2-D points), left to right."""
    n_frames = frames.shape[0]
    flat = frames.reshape(n_frames * frames.shape[1], *frames.shape[2:])
    images = as_images(flat, info)
    if images is not None:
        images = images.reshape(n_frames, frames.shape[1], *images.shape[1:])
        rows = min(rows, images.shape[1])
        tiles = images[:, :rows].transpose(0, 1).reshape(rows * n_frames, *images.shape[2:])
        return pictures.image_grid(
            tiles,
            nrow=n_frames,
            scale=pictures.scale_for(images.shape[-1]),
            title=f"one chain a row, left to right: a frame every {every} steps, then the end",
        )
    pts = frames.float().cpu().numpy()
    finite = pts[np.isfinite(pts).all(-1)]
    lo, hi = np.percentile(finite, 1, axis=0), np.percentile(finite, 99, axis=0)
    span, mid = max(hi - lo) * 1.1 + 1e-6, (lo + hi) / 2
    bounds = (mid[0] - span / 2, mid[0] + span / 2, mid[1] - span / 2, mid[1] + span / 2)
    size = 220
    strip = Image.new("RGB", (size * n_frames, size + 18), "white")
    draw = ImageDraw.Draw(strip)
    for j in range(n_frames):
        strip.paste(pictures.scatter(frames[j], size=size, bounds=bounds), (j * size, 18))
        step = min(j * every, (n_frames - 1) * every) if j < n_frames - 1 else "end"
        draw.text((j * size + 4, 3), f"step {step}", fill=(0, 0, 0))
    return strip


def write(samples, path: Path, info: DataInfo, every: int = 1) -> None:
    """``.npy``: the raw array (frames (F, N, ...) for a chain); ``.png``: a picture."""
    if isinstance(samples, tuple):
        final, frames = samples
    else:
        final, frames = samples, None
    if path.suffix == ".npy":
        np.save(path, (frames if frames is not None else final).detach().float().cpu().numpy())
    elif path.suffix == ".png":
        if frames is not None:
            chain_strip(frames, info, every).save(path)
        else:
            pictures.auto(final.detach().float().cpu(), info).save(path)
    else:
        raise GMError(f"cannot write samples to {path.name}; use a .png or .npy file.")
