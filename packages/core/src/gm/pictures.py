"""Pictures a person would rather look at than read: image grids, 2-D scatter plots, and
pair plots (the first dimensions against each other) for vectors of any other width.

Plain Pillow, so ``gm sample`` needs no plotting stack. A scatter shows the data in grey
under the samples, with a frame, the axis range and a legend; grids of small images are
upscaled and their rows can be labelled. Verbs that hold the data say so once with
:func:`context` (``with pictures.context(reference=x, title=...)``), so every picture a
trainer draws through :func:`auto` or :func:`scatter` inside gets it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from gm.data import DataInfo

_CONTEXT: ContextVar[dict[str, Any]] = ContextVar("gm_pictures", default={})  # noqa: B039 - never mutated
TILE = 96  # small images are upscaled (nearest neighbour) to about this many pixels a side


@contextlib.contextmanager
def context(*, reference: torch.Tensor | None = None, title: str | None = None) -> Iterator[None]:
    """Data to draw under vector samples and a title, for pictures drawn inside this block."""
    token = _CONTEXT.set({"reference": reference, "title": title})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def scale_for(side: int) -> int:
    """The nearest-neighbour upscale that draws a tile of ``side`` pixels at about
    :data:`TILE` pixels (28x28 digits at 3x, 8x8 at 12x, 96 and up as they are)."""
    return max(1, TILE // max(1, side))


def titled(img: Image.Image, text: str) -> Image.Image:
    """``img`` under a strip of text saying what it shows."""
    font = _font(14)
    width = int(ImageDraw.Draw(img).textlength(text, font=font)) + 16
    white = "white" if img.mode == "RGB" else 255
    out = Image.new(img.mode, (max(img.width, width), img.height + 24), white)
    out.paste(img, (0, 24))
    ImageDraw.Draw(out).text((8, 5), text, fill="black" if img.mode == "RGB" else 0, font=font)
    return out


def label_rows(img: Image.Image, labels: list[str], row_height: int, pad: int = 2) -> Image.Image:
    """``img`` with a text column on the left naming each row of tiles; fewer labels than
    rows repeat (a block of rows per group of examples)."""
    font = _font(max(10, min(16, row_height // 3)))
    probe = ImageDraw.Draw(img)
    width = int(max(probe.textlength(s, font=font) for s in labels)) + 12
    out = Image.new(
        img.mode, (img.width + width, img.height), "white" if img.mode == "RGB" else 255
    )
    out.paste(img, (width, 0))
    draw = ImageDraw.Draw(out)
    rows = max(1, round((img.height - pad) / (row_height + pad)))
    for i in range(rows):
        text = labels[i % len(labels)]
        y = pad + i * (row_height + pad) + row_height / 2
        draw.text(
            (width - 6, y), text, fill="black" if img.mode == "RGB" else 0, font=font, anchor="rm"
        )
    return out


def image_grid(
    images: torch.Tensor,
    nrow: int | None = None,
    pad: int = 2,
    scale: int = 1,
    row_labels: list[str] | None = None,
    title: str | None = None,
) -> Image.Image:
    """(N, C, H, W) values in [0, 1] -> one grid image (C = 1 or 3), ``nrow`` tiles a row,
    each row named by ``row_labels`` when given (repeating when there are more rows), under
    a ``title`` when given."""
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
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    if row_labels:
        img = label_rows(img, row_labels, h * scale, pad * scale)
    return titled(img, title) if title else img


def scatter(
    points: torch.Tensor,
    reference: torch.Tensor | None = None,
    size: int = 512,
    bounds: tuple[float, float, float, float] | None = None,
    *,
    title: str | None = None,
    labels: tuple[str, str] = ("samples", "data"),
    frame: bool | None = None,
) -> Image.Image:
    """2-D points (blue) over reference points (grey: the data, from the argument or the
    :func:`context`), a ``size`` square. ``frame`` (default: at 300 px and up) adds the
    axis range, a legend and the title."""
    ctx = _CONTEXT.get()
    if reference is None:
        reference = ctx.get("reference")
    if reference is not None and tuple(reference.shape[1:]) != (2,):
        reference = None  # not 2-D data: nothing to overlay
    title = title if title is not None else ctx.get("title")
    frame = size >= 300 if frame is None else frame
    p = points.detach().float().cpu().reshape(len(points), -1).numpy()
    ref = reference.detach().float().cpu().numpy() if reference is not None else None
    allp = np.concatenate([p, ref]) if ref is not None else p
    allp = allp[np.isfinite(allp).all(1)]
    if bounds is None:
        if len(allp) == 0:
            allp = np.zeros((1, 2))
        lo, hi = np.percentile(allp, 0.5, axis=0), np.percentile(allp, 99.5, axis=0)
        span = max(hi - lo) * 1.15 + 1e-6
        mid = (lo + hi) / 2
        bounds = (mid[0] - span / 2, mid[0] + span / 2, mid[1] - span / 2, mid[1] + span / 2)
    x0, x1, y0, y1 = bounds
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    m_left, m_top, m_right, m_bottom = (48, 30, 10, 26) if frame else (0, 0, 0, 0)
    w, h = size - m_left - m_right, size - m_top - m_bottom

    def px(q: np.ndarray) -> np.ndarray:
        return np.stack(
            [m_left + (q[:, 0] - x0) / (x1 - x0) * w, m_top + (1 - (q[:, 1] - y0) / (y1 - y0)) * h],
            1,
        )

    for pts, colour in ((ref, (190, 190, 190)), (p, (31, 90, 200))):
        if pts is None:
            continue
        for u, v in px(pts[np.isfinite(pts).all(1)]):
            if m_left <= u <= size - m_right and m_top <= v <= size - m_bottom:  # inside the axes
                draw.ellipse((u - 1.5, v - 1.5, u + 1.5, v + 1.5), fill=colour)
    if frame:
        font = _font(12)
        draw.rectangle([m_left, m_top, size - m_right, size - m_bottom], outline="black")
        draw.text((m_left, size - m_bottom + 4), f"{x0:.3g}", fill="black", font=font)
        draw.text(
            (size - m_right, size - m_bottom + 4), f"{x1:.3g}", fill="black", font=font, anchor="ra"
        )
        draw.text((m_left - 4, size - m_bottom), f"{y0:.3g}", fill="black", font=font, anchor="rs")
        draw.text((m_left - 4, m_top), f"{y1:.3g}", fill="black", font=font, anchor="rt")
        entries = [(labels[0], (31, 90, 200))] + (
            [(labels[1], (190, 190, 190))] if ref is not None else []
        )
        for i, (text, colour) in enumerate(entries):
            y = m_top + 10 + 16 * i
            draw.ellipse((size - m_right - 96, y - 3, size - m_right - 90, y + 3), fill=colour)
            draw.text((size - m_right - 84, y), text, fill="black", font=font, anchor="lm")
        heading = title or f"{len(p)} samples" + (
            f" over {len(ref)} data points" if ref is not None else ""
        )
        draw.text((size / 2, 8), heading, fill="black", font=_font(14), anchor="ma")
    return img


def histogram(
    values: torch.Tensor,
    reference: torch.Tensor | None = None,
    size: int = 160,
    bounds: tuple[float, float] | None = None,
    bins: int = 30,
) -> Image.Image:
    """One dimension's values as a histogram (blue) over the data's (grey outline), each
    scaled to its own peak, a ``size`` square without a frame."""
    v = values.detach().float().cpu().reshape(-1).numpy()
    ref = None if reference is None else reference.detach().float().cpu().reshape(-1).numpy()
    both = np.concatenate([v, ref]) if ref is not None else v
    both = both[np.isfinite(both)]
    if bounds is None:
        lo, hi = np.percentile(both, [0.5, 99.5]) if len(both) else (0.0, 1.0)
        pad = (hi - lo) * 0.05 + 1e-6
        bounds = (float(lo - pad), float(hi + pad))
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    for data, fill, outline in ((v, (31, 90, 200), None), (ref, None, (150, 150, 150))):
        if data is None:
            continue
        counts, _ = np.histogram(data[np.isfinite(data)], bins=bins, range=bounds)
        peak = max(int(counts.max()), 1)
        w = size / bins
        for i, c in enumerate(counts):
            top = size - 2 - (size - 8) * c / peak
            if fill is not None and c:
                draw.rectangle((i * w, top, (i + 1) * w - 1, size - 2), fill=fill)
            elif outline is not None and c:
                draw.line((i * w, top, (i + 1) * w, top), fill=outline, width=2)
    return img


def pair_plot(
    points: torch.Tensor, reference: torch.Tensor | None = None, dims: int = 4, cell: int = 160
) -> Image.Image:
    """Samples of any width drawn as a person would look at them: the first ``dims``
    dimensions against each other (scatters off the diagonal, histograms on it), the data
    (from the argument or the :func:`context`, when it has the samples' width) in grey."""
    p = points.detach().float().cpu().reshape(len(points), -1)
    if reference is None:
        reference = _CONTEXT.get().get("reference")
    if reference is not None and tuple(reference.shape[1:]) != tuple(p.shape[1:]):
        reference = None
    ref = (
        None if reference is None else reference.detach().float().cpu().reshape(len(reference), -1)
    )
    k = min(dims, p.shape[1])
    both = torch.cat([p, ref]) if ref is not None else p
    lims = []
    for d in range(k):
        col = both[:, d][torch.isfinite(both[:, d])].numpy()
        lo, hi = np.percentile(col, [0.5, 99.5]) if len(col) else (0.0, 1.0)
        pad = (hi - lo) * 0.05 + 1e-6
        lims.append((float(lo - pad), float(hi + pad)))
    gap, left, top = 4, 28, 30
    side = left + k * cell + (k - 1) * gap + gap
    img = Image.new("RGB", (side, top + k * cell + (k - 1) * gap + 24), "white")
    draw = ImageDraw.Draw(img)
    font = _font(12)
    for i in range(k):  # row: the y dimension
        for j in range(k):  # column: the x dimension
            if i == j:
                tile = histogram(p[:, i], None if ref is None else ref[:, i], cell, lims[i])
            else:
                tile = scatter(
                    p[:, [j, i]],
                    None if ref is None else ref[:, [j, i]],
                    size=cell,
                    bounds=(*lims[j], *lims[i]),
                    frame=False,
                )
            x, y = left + j * (cell + gap), top + i * (cell + gap)
            img.paste(tile, (x, y))
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), outline=(120, 120, 120))
        name = f"x{i + 1}"
        draw.text(
            (left - 6, top + i * (cell + gap) + cell / 2),
            name,
            fill="black",
            font=font,
            anchor="rm",
        )
        draw.text(
            (left + i * (cell + gap) + cell / 2, img.height - 20),
            name,
            fill="black",
            font=font,
            anchor="ma",
        )
    title = _CONTEXT.get().get("title") or f"{len(p)} samples"
    shown = f"{title}; dimensions 1-{k} of {p.shape[1]}" if k < p.shape[1] else title
    if ref is not None:
        shown += " (grey: data)"
    draw.text((side / 2, 8), shown, fill="black", font=_font(14), anchor="ma")
    return img


def reference_for(data: Any, n: int = 2000) -> torch.Tensor | None:
    """Up to ``n`` points of vector data (test split first) to draw under samples."""
    if data is None or data.info.modality != "vector" or len(data.info.shape) != 1:
        return None
    split = "test" if "test" in data.splits else next(iter(data.splits))
    return data.tensor(split, "cpu")[:n]


def auto(samples: torch.Tensor, info: DataInfo) -> Image.Image:
    """The natural picture of samples of this data: a grid for images (and for vectors of
    a square width from 16 up: flattened images), a scatter for 2-D vectors, a histogram
    for 1-D, and for vectors of any other width a pair plot of their first dimensions."""
    title = _CONTEXT.get().get("title")
    width = samples.shape[-1] if samples.ndim == 2 else 0
    if info.modality == "image":
        return image_grid(samples, scale=scale_for(samples.shape[-1]), title=title)
    if info.modality == "vector" and width == 2:
        return scatter(samples)
    side = math.isqrt(width)
    if info.modality == "vector" and side >= 4 and side * side == width:
        return image_grid(samples.reshape(-1, 1, side, side), scale=scale_for(side), title=title)
    if info.modality == "vector" and width >= 1:
        return pair_plot(samples)
    from gm.errors import GMError

    raise GMError(
        f"no picture for {info.modality} samples of shape {tuple(samples.shape[1:])}; "
        "write them to a .npy file instead."
    )
