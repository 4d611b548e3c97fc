"""Pictures a person would rather look at than read: image grids and 2-D scatter plots.

Plain Pillow, so ``gm sample`` needs no plotting stack.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from gm.data import DataInfo


def image_grid(
    images: torch.Tensor, nrow: int | None = None, pad: int = 2, scale: int = 1
) -> Image.Image:
    """(N, C, H, W) values in [0, 1] -> one grid image (C = 1 or 3)."""
    x = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = torch.ones(c, ncol * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[
            :,
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + q * (w + pad) : pad + q * (w + pad) + w,
        ] = x[i]
    arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    img = Image.fromarray(arr[..., 0] if c == 1 else arr, "L" if c == 1 else "RGB")
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def scatter(
    points: torch.Tensor,
    reference: torch.Tensor | None = None,
    size: int = 512,
    bounds: tuple[float, float, float, float] | None = None,
) -> Image.Image:
    """2-D points (blue), optionally over reference points (light grey)."""
    p = points.detach().float().cpu().numpy()
    ref = reference.detach().float().cpu().numpy() if reference is not None else None
    allp = np.concatenate([p, ref]) if ref is not None else p
    allp = allp[np.isfinite(allp).all(1)]
    if bounds is None:
        lo, hi = np.percentile(allp, 0.5, axis=0), np.percentile(allp, 99.5, axis=0)
        span = max(hi - lo) * 1.15 + 1e-6
        mid = (lo + hi) / 2
        bounds = (mid[0] - span / 2, mid[0] + span / 2, mid[1] - span / 2, mid[1] + span / 2)
    x0, x1, y0, y1 = bounds
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)

    def px(q: np.ndarray) -> np.ndarray:
        return np.stack(
            [(q[:, 0] - x0) / (x1 - x0) * size, (1 - (q[:, 1] - y0) / (y1 - y0)) * size], 1
        )

    for pts, colour in ((ref, (200, 200, 200)), (p, (31, 90, 200))):
        if pts is None:
            continue
        for u, v in px(pts[np.isfinite(pts).all(1)]):
            draw.ellipse((u - 1.5, v - 1.5, u + 1.5, v + 1.5), fill=colour)
    return img


def auto(samples: torch.Tensor, info: DataInfo) -> Image.Image:
    """The natural picture of samples of this data: a grid for images, a scatter for 2-D."""
    if info.modality == "image":
        return image_grid(samples, scale=max(1, 64 // samples.shape[-1]))
    if info.modality == "vector" and samples.shape[-1] == 2:
        return scatter(samples)
    if info.modality == "vector" and int(math.isqrt(samples.shape[-1])) ** 2 == samples.shape[-1]:
        side = math.isqrt(samples.shape[-1])
        return image_grid(samples.reshape(-1, 1, side, side), scale=max(1, 64 // side))
    from gm.errors import GMError

    raise GMError(
        f"no picture for {info.modality} samples of shape {tuple(samples.shape[1:])}; "
        "write them to a .npy file instead."
    )
