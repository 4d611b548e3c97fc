"""Tiny files in the exact formats of each source, for tests and benchmarks (no download).

Each writer produces what a real download holds, at a small size: parquet files with the
Hub's schema (written by ``datasets`` itself, so the ``huggingface`` schema metadata and the
``{"bytes", "path"}`` image structs are the Hub's), ``.amat`` text, a MATLAB ``.mat`` for
TFD, PTB text files, IAM-OnDB stroke XML in a ``.tar.gz``.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def png_bytes(a: np.ndarray, format: str = "PNG") -> bytes:
    """uint8 (H, W) or (H, W, 3) -> encoded image bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=format)
    return buf.getvalue()


def write_image_parquet(
    path: Path,
    images: Sequence[np.ndarray],
    labels: Sequence[int] | np.ndarray | None = None,
    *,
    column: str = "image",
    format: str = "PNG",
    paths: Sequence[str | None] | None = None,
    extra: dict | None = None,
) -> Path:
    """A parquet file like the Hub's image datasets: an Image column (+ ClassLabel ``label``)."""
    import datasets

    feats = {column: datasets.Image()}
    data: dict[str, list[Any]] = {
        column: [
            {"bytes": png_bytes(a, format), "path": p}
            for a, p in zip(images, paths or [None] * len(images), strict=True)
        ]
    }
    if labels is not None:
        feats["label"] = datasets.ClassLabel(names=[str(i) for i in range(10)])
        data["label"] = [int(v) for v in labels]
    for k, v in (extra or {}).items():
        feats[k] = datasets.Value("int64")
        data[k] = list(v)
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(data, features=datasets.Features(feats)).to_parquet(str(path))
    return path


def random_images(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> list[np.ndarray]:
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


def write_mnist(folder: Path, n_train: int = 30, n_test: int = 10, seed: int = 0) -> Path:
    """``ylecun/mnist`` layout: mnist/{train,test}-00000-of-00001.parquet."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        write_image_parquet(
            folder / "mnist" / f"{split}-00000-of-00001.parquet",
            random_images(rng, n, (28, 28)),
            rng.integers(0, 10, n),
        )
    return folder


def write_cifar10(folder: Path, n_train: int = 20, n_test: int = 10, seed: int = 0) -> Path:
    """``uoft-cs/cifar10`` layout: plain_text/{train,test}-...parquet with column ``img``."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        write_image_parquet(
            folder / "plain_text" / f"{split}-00000-of-00001.parquet",
            random_images(rng, n, (32, 32, 3)),
            rng.integers(0, 10, n),
            column="img",
        )
    return folder


def write_svhn(folder: Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """``ufldl-stanford/svhn`` layout, both configs (gm must read only cropped_digits)."""
    rng = np.random.default_rng(seed)
    for split, n in (sizes or {"train": 20, "test": 8, "extra": 6}).items():
        write_image_parquet(
            folder / "cropped_digits" / f"{split}-00000-of-00001.parquet",
            random_images(rng, n, (32, 32, 3)),
            rng.integers(0, 10, n),
        )
    # the other config, with other shapes: must be ignored
    write_image_parquet(
        folder / "full_numbers" / "train-00000-of-00001.parquet",
        random_images(rng, 2, (50, 70, 3)),
        None,
    )
    return folder


def write_celeba(
    folder: Path,
    numbers: Sequence[int],
    *,
    splits: dict[str, Sequence[int]] | None = None,
    with_paths: bool = True,
    seed: int = 0,
) -> Path:
    """178x218 JPEG faces: ``nielsr/CelebA-faces`` (data/train-*.parquet, train only) or,
    with ``splits``, an official-split layout like ``flwrlabs/celeba``."""
    rng = np.random.default_rng(seed)
    groups = splits or {"train": list(numbers)}
    for split, nums in groups.items():
        write_image_parquet(
            folder / "data" / f"{split}-00000-of-00001.parquet",
            random_images(rng, len(nums), (218, 178, 3)),
            format="JPEG",
            paths=[f"{k:06d}.jpg" for k in nums] if with_paths else None,
        )
    return folder


def write_amat(folder: Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """binarized_mnist_{train,valid,test}.amat: 784 space-separated 0/1 per line."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (sizes or {"train": 12, "valid": 4, "test": 5}).items():
        bits = rng.integers(0, 2, (n, 784))
        (folder / f"binarized_mnist_{split}.amat").write_text(
            "".join(" ".join(map(str, row)) + "\n" for row in bits)
        )
    return folder


def write_tfd(path: Path, n: int = 40, seed: int = 0) -> Path:
    """TFD_48x48.mat: images (N, 48, 48) uint8, labs_ex, labs_id, folds (N, 5) in 0..3."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    folds = rng.integers(0, 4, (n, 5))
    labs_ex = np.where(folds[:, :1] == 0, -1, rng.integers(1, 8, (n, 1)))
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(
        path,
        {
            "images": rng.integers(0, 256, (n, 48, 48), dtype=np.uint8),
            "labs_ex": labs_ex,
            "labs_id": rng.integers(1, 100, (n, 1)),
            "folds": folds,
        },
    )
    return path


PTB_WORDS = [
    "the",
    "<unk>",
    "N",
    "$",
    "company",
    "said",
    "it's",
    "a",
    "&",
    "co.",
    "mr.",
    "#",
    "\\/",
    "1\\/2",
]


def ptb_sentences(rng: np.random.Generator, n: int) -> list[str]:
    return [" ".join(rng.choice(PTB_WORDS, rng.integers(1, 12))) for _ in range(n)]


def write_ptb_text(
    folder: Path, sizes: dict[str, int] | None = None, seed: int = 0
) -> dict[str, list[str]]:
    """ptb.{train,valid,test}.txt as distributed: ``" " + sentence + " \\n"`` per line."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (sizes or {"train": 40, "valid": 10, "test": 12}).items():
        out[split] = ptb_sentences(rng, n)
        (folder / f"ptb.{split}.txt").write_text("".join(f" {s} \n" for s in out[split]))
    return out


def write_ptb_parquet(
    folder: Path, sizes: dict[str, int] | None = None, seed: int = 0
) -> dict[str, list[str]]:
    """The Hub's parquet export: penn_treebank/{split}/0000.parquet with a ``sentence`` column."""
    import datasets

    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (sizes or {"train": 40, "validation": 10, "test": 12}).items():
        out[split] = ptb_sentences(rng, n)
        path = folder / "penn_treebank" / split / "0000.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_dict(
            {"sentence": out[split]},
            features=datasets.Features({"sentence": datasets.Value("string")}),
        ).to_parquet(str(path))
    return out


def stroke_xml(strokes: Sequence[np.ndarray]) -> bytes:
    """One IAM-OnDB lineStrokes file: <WhiteboardCaptureSession><StrokeSet><Stroke><Point x y time>."""
    parts = [
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<WhiteboardCaptureSession>\n'
        '  <WhiteboardDescription>\n    <SensorLocation corner="top_left"/>\n'
        '    <DiagonallyOppositeCoords x="6512" y="1376"/>\n  </WhiteboardDescription>\n  <StrokeSet>\n'
    ]
    t = 0.0
    for s in strokes:
        parts.append(
            f'    <Stroke colour="black" start_time="{t:.2f}" end_time="{t + 0.01 * len(s):.2f}">\n'
        )
        for x, y in s:
            parts.append(f'      <Point x="{int(x)}" y="{int(y)}" time="{t:.2f}"/>\n')
            t += 0.01
        parts.append("    </Stroke>\n")
    parts.append("  </StrokeSet>\n</WhiteboardCaptureSession>\n")
    return "".join(parts).encode("iso-8859-1")


def write_iam(
    folder: Path, forms: Sequence[str], lines_per_form: int = 2, seed: int = 0
) -> dict[str, list[np.ndarray]]:
    """lineStrokes-all.tar.gz with lineStrokes/a01/a01-000/a01-000u-01.xml style members."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[np.ndarray]] = {}
    with tarfile.open(folder / "lineStrokes-all.tar.gz", "w:gz") as tar:
        for form in forms:
            for k in range(1, lines_per_form + 1):
                line_id = f"{form}-{k:02d}"
                strokes = [
                    np.cumsum(rng.integers(-20, 21, (rng.integers(3, 40), 2)), 0) + 1000
                    for _ in range(rng.integers(2, 6))
                ]
                lines[line_id] = strokes
                data = stroke_xml(strokes)
                writer, doc = form.split("-")[0], form[:-1] if form[-1].isalpha() else form
                info = tarfile.TarInfo(f"lineStrokes/{writer}/{doc}/{line_id}.xml")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return lines
