"""Training curves from ``metrics.jsonl``: ``gm plot RUN... --metric loss --out curves.png``.

Plain Pillow (as :mod:`gm.pictures`), so plotting needs no plotting stack: axes with
round-number ticks, a title, axis labels and a legend naming each run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from gm.errors import GMError

# Colour-blind-safe (Okabe-Ito) line colours, in order.
COLOURS = [
    (0, 114, 178),
    (213, 94, 0),
    (0, 158, 115),
    (204, 121, 167),
    (230, 159, 0),
    (86, 180, 233),
    (0, 0, 0),
]


def font(size: int = 14) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def read_rows(run: str | Path) -> list[dict[str, Any]]:
    from gm import hub

    path = hub.resolve(run) / "metrics.jsonl"
    if not path.exists():
        raise GMError(f"{run} has no metrics.jsonl yet; it is written at the first training step.")
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round-number ticks covering [lo, hi]: steps of 1, 2 or 5 times a power of ten."""
    if not hi > lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    out, v = [], first
    while v <= hi + step * 1e-9:
        out.append(round(v, 12))
        v += step
    if out[-1] < hi:
        out.append(round(out[-1] + step, 12))
    return out


def _label(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.2e}"


def curves(
    series: list[tuple[str, list[dict[str, Any]]]],
    metric: str,
    *,
    x: str = "step",
    size: tuple[int, int] = (900, 540),
    title: str | None = None,
) -> Image.Image:
    """One line per (label, rows) of ``metric`` against ``x`` (``step`` or ``time``)."""
    lines = []
    for label, rows in series:
        pts = [
            (r[x], r[metric]) for r in rows if x in r and isinstance(r.get(metric), (int, float))
        ]
        pts = [(a, b) for a, b in pts if math.isfinite(a) and math.isfinite(b)]
        if pts:
            lines.append((label, pts))
    if not lines:
        known = sorted({k for _, rows in series for r in rows for k in r} - {"step"})
        raise GMError(
            f"no run has metric {metric!r}; the rows have: {', '.join(known) or 'nothing'}."
        )
    W, H = size
    left, right, top, bottom = 90, 30, 50, 60
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    small, big = font(13), font(17)
    xs = [a for _, p in lines for a, _ in p]
    ys = [b for _, p in lines for _, b in p]
    xt, yt = ticks(min(xs), max(xs)), ticks(min(ys), max(ys))
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def px(a: float, b: float) -> tuple[float, float]:
        u = left + (a - x0) / ((x1 - x0) or 1) * (W - left - right)
        v = H - bottom - (b - y0) / ((y1 - y0) or 1) * (H - top - bottom)
        return u, v

    for t in xt:  # grid and tick labels
        u, _ = px(t, y0)
        draw.line([(u, top), (u, H - bottom)], fill=(232, 232, 232))
        draw.text((u, H - bottom + 6), _label(t), fill="black", font=small, anchor="ma")
    for t in yt:
        _, v = px(x0, t)
        draw.line([(left, v), (W - right, v)], fill=(232, 232, 232))
        draw.text((left - 8, v), _label(t), fill="black", font=small, anchor="rm")
    draw.rectangle([left, top, W - right, H - bottom], outline="black")
    for i, (_, pts) in enumerate(lines):
        colour = COLOURS[i % len(COLOURS)]
        xy = [px(a, b) for a, b in pts]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for u, v in xy if len(xy) < 60 else xy[-1:]:
            draw.ellipse([u - 2.5, v - 2.5, u + 2.5, v + 2.5], fill=colour)
    xlabel = {"step": "training step", "time": "wall time (s)"}.get(x, x)
    draw.text(((left + W - right) / 2, H - 22), xlabel, fill="black", font=small, anchor="ma")
    draw.text((14, top - 22), metric, fill="black", font=small)
    draw.text((W / 2, 12), title or f"{metric} by {xlabel}", fill="black", font=big, anchor="ma")
    # legend, top right inside the axes
    width = max(draw.textlength(label, font=small) for label, _ in lines) + 34
    lx, ly = W - right - width - 8, top + 8
    draw.rectangle(
        [lx, ly, lx + width, ly + 20 * len(lines) + 6], fill="white", outline=(160, 160, 160)
    )
    for i, (label, _) in enumerate(lines):
        colour = COLOURS[i % len(COLOURS)]
        yy = ly + 13 + 20 * i
        draw.line([(lx + 6, yy), (lx + 24, yy)], fill=colour, width=3)
        draw.text((lx + 30, yy), label, fill="black", font=small, anchor="lm")
    return img


def plot_runs(
    runs: list[str], metric: str = "loss", *, x: str = "step", labels: list[str] | None = None
) -> Image.Image:
    series = [(labels[i] if labels else str(r), read_rows(r)) for i, r in enumerate(runs)]
    return curves(series, metric, x=x)
