"""Writing samples: text for text, images for pixel sequences, stroke plots for handwriting.

``.npy`` is always the raw array; ``.txt`` decodes tokens (through the alphabet for text);
``.png`` draws what a person would look at: the text itself, the images (sequential MNIST,
one image per training length of pixels), pen strokes, or the token ids as text otherwise.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from gm.data import DataInfo
from gm.errors import GMError


def decode(tokens: torch.Tensor, alphabet) -> list[str]:
    return ["".join(alphabet[int(t)] for t in row) for row in tokens.tolist()]


def image_shape(info: DataInfo, length: int) -> tuple[int, int] | None:
    """(H, W) when the token rows are images read pixel by pixel, else None."""
    meta = info.meta
    if meta.get("image_shape"):
        h, w = (int(v) for v in list(meta["image_shape"])[-2:])
        return h, w
    if meta.get("height") and meta.get("width"):
        return int(meta["height"]), int(meta["width"])
    side = math.isqrt(length)
    if side * side == length and any(k in info.name for k in ("mnist", "digits", "pixel")):
        return side, side
    return None


def text_picture(texts: list[str], columns: int = 100, max_lines: int = 80) -> Image.Image:
    font = ImageFont.load_default()
    box = font.getbbox("Mg")
    cw, lh = int(max(6, font.getbbox("M")[2])), int(box[3] - box[1]) + 4  # pixels
    lines: list[str] = []
    for i, text in enumerate(texts):
        lines.append(f"--- sample {i + 1} ---")
        for line in text.replace("\t", "    ").split("\n"):
            line = "".join(c if 32 <= ord(c) < 127 else "?" for c in line)
            lines.extend([line[j : j + columns] for j in range(0, max(len(line), 1), columns)])
        if len(lines) >= max_lines:
            break
    lines = lines[:max_lines]
    img = Image.new("RGB", (columns * cw + 16, len(lines) * lh + 16), "white")
    draw = ImageDraw.Draw(img)
    for k, line in enumerate(lines):
        draw.text(
            (8, 8 + k * lh),
            line,
            fill=(30, 90, 200) if line.startswith("--- ") else "black",
            font=font,
        )
    return img


def strokes_picture(strokes: torch.Tensor, panel: tuple[int, int] = (600, 120)) -> Image.Image:
    """Pen strokes (N, T, 3) of offsets (dx, dy, pen_lift): one panel per sample; the pen
    lifts after a point whose pen_lift is 1."""
    s = strokes.detach().float().cpu().numpy()
    w, h = panel
    img = Image.new("RGB", (w, h * len(s)), "white")
    draw = ImageDraw.Draw(img)
    for i, seq in enumerate(s):
        xy = np.cumsum(seq[:, :2], 0) * np.array([1.0, -1.0])  # y grows upwards in the data
        lo, hi = xy.min(0), xy.max(0)
        scale = min((w - 10) / max(hi[0] - lo[0], 1e-6), (h - 10) / max(hi[1] - lo[1], 1e-6))
        pts = (xy - lo) * scale + 5
        pts[:, 1] += i * h
        for t in range(1, len(pts)):
            if seq[t - 1, 2] < 0.5:
                draw.line([tuple(pts[t - 1]), tuple(pts[t])], fill="black", width=2)
        draw.line([(0, (i + 1) * h - 1), (w, (i + 1) * h - 1)], fill=(220, 220, 220))
    return img


def token_picture(tokens: torch.Tensor, vocab: int, scale: int = 4) -> Image.Image:
    """Rows = samples, columns = steps, grey level = token id."""
    arr = (tokens.detach().cpu().float() / max(vocab - 1, 1) * 255).round().numpy().astype(np.uint8)
    img = Image.fromarray(arr, "L")
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


def picture(samples: torch.Tensor, info: DataInfo, length: int) -> Image.Image:
    from gm import pictures

    if info.modality == "strokes" or (samples.dim() == 3 and samples.shape[-1] == 3):
        return strokes_picture(samples[:16])
    if info.modality == "sequence" and info.vocab_size:
        if info.meta.get("alphabet"):
            return text_picture(decode(samples[:16], info.meta["alphabet"]))
        shape = image_shape(info, length)
        if shape is not None:
            h, w = shape
            per = samples.shape[1] // (h * w)
            if per >= 1:
                imgs = samples[:16, : per * h * w].float() / max(info.vocab_size - 1, 1)
                imgs = imgs.reshape(-1, 1, h, w)
                return pictures.image_grid(imgs, nrow=per, scale=pictures.scale_for(w))
        return text_picture([" ".join(map(str, row)) for row in samples[:16].tolist()])
    values = samples.detach().float()
    values = values.reshape(values.shape[0], -1)
    lo, hi = values.min(), values.max()
    return token_picture((values - lo) / (hi - lo + 1e-12) * 255, 256)


def write(samples: torch.Tensor, path: Path, info: DataInfo, length: int) -> None:
    path = Path(path)
    if path.suffix == ".npy":
        np.save(path, samples.detach().cpu().numpy())
    elif path.suffix == ".txt":
        if not (info.modality == "sequence" and info.vocab_size):
            raise GMError(f"{info.modality} samples have no text form; write a .png or .npy file.")
        if info.meta.get("alphabet"):
            body = "".join(
                f"=== sample {i + 1} ===\n{t}\n"
                for i, t in enumerate(decode(samples, info.meta["alphabet"]))
            )
        else:
            body = "".join(" ".join(map(str, row)) + "\n" for row in samples.tolist())
        path.write_text(body)
    elif path.suffix == ".png":
        picture(samples, info, length).save(path)
    else:
        raise GMError(f"cannot write samples to {path.name}; use .txt, .png or .npy.")
