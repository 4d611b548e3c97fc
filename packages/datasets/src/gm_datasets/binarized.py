"""``binarized-mnist`` in three modes; every reported number should state its mode.

- ``fixed`` (default): the Larochelle-Murray files ``binarized_mnist_{train,valid,test}.amat``
  (784 ``0``/``1`` per line, 50,000 / 10,000 / 10,000) read from a local folder: the fixed
  binarisation most likelihood papers report on.
- ``dynamic``: ``mnist``'s grey images stay in memory and every batch is a fresh draw
  ``Bernoulli(x / 255)`` (torch's global RNG, so seeded runs repeat), which is the usual
  "dynamically binarised MNIST".
- ``threshold``: ``mnist`` pixels ``>= 128`` (x/255 >= 0.5) become 1.

``source=mnist-5k`` takes the grey images of the dynamic and threshold modes from the
5,000 offline digits (``mnist-5k``) instead of ``mnist``.

Images are uint8 (N, 1, 28, 28) with values {0, 255} (decoded to {0, 1}).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from gm.errors import GMError
from gm_datasets import cache
from gm_datasets.common import LabelledDataset, make_dataset, provenance
from gm_datasets.sources import by_split

PIXELS = 784


def read_amat(path) -> np.ndarray:
    """Rows of 784 ``0``/``1`` values -> uint8 (N, 784) of 0/1; errors name the file and line."""
    raw = np.fromfile(path, dtype=np.uint8)
    lines = [ln for ln in bytes(raw).split(b"\n") if ln.strip()]
    digits = raw[(raw == ord("0")) | (raw == ord("1"))]
    stray = ~np.isin(raw, np.frombuffer(b"01 \t\r\n", dtype=np.uint8))
    if stray.any() or len(digits) != PIXELS * len(lines):
        for i, ln in enumerate(lines, 1):
            values = ln.split()
            if len(values) != PIXELS or any(v not in (b"0", b"1") for v in values):
                raise GMError(
                    f"{path} line {i} is not {PIXELS} values of 0 or 1 "
                    f"(it has {len(values)} values); is it a binarized_mnist .amat file?"
                )
        raise GMError(f"{path} holds characters other than 0, 1 and white space.")
    if not lines:
        raise GMError(f"{path} is empty.")
    return (digits - ord("0")).reshape(len(lines), PIXELS)


def amat_arrays(data_dir: str | None, source_dir: str | None) -> tuple[dict[str, np.ndarray], dict]:
    def build(folder, files, where):
        groups = by_split("binarized-mnist", folder, files)
        missing = [s for s in ("train", "valid", "test") if s not in groups]
        if missing:
            raise GMError(f"{folder} lacks binarized_mnist_{missing[0]}.amat.")
        arrays = {
            s: np.concatenate([read_amat(f) for f in groups[s]]).reshape(-1, 1, 28, 28)
            * np.uint8(255)
            for s in ("train", "valid", "test")
        }
        return arrays, {"found": where, "folder": str(folder), "files": [f.name for f in files]}

    return cache.cached_source("binarized-mnist", build, data_dir=data_dir, source_dir=source_dir)


class DynamicBinarized(LabelledDataset):
    """Grey uint8 images; each decode draws fresh binary pixels ~ Bernoulli(x / 255)."""

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bernoulli(x.float().div_(255))

    def to(self, device):
        return DynamicBinarized(
            self.info, {k: v.to(device) for k, v in self.splits.items()}, self.labels
        )


def binarized_mnist(
    data_dir: str | None = None,
    source_dir: str | None = None,
    mode: Literal["fixed", "dynamic", "threshold"] = "fixed",
    valid_size: int = 0,
    source: Literal["mnist", "mnist-5k"] = "mnist",
) -> LabelledDataset:
    """Binary MNIST: ``mode`` fixed (.amat files, 50k/10k/10k), dynamic or threshold (over
    ``source``, ``mnist`` or ``mnist-5k``; ``valid_size`` as for ``mnist``)."""
    if mode == "fixed" and source != "mnist":
        raise GMError(
            f"source={source} binarises grey images: use it with mode=dynamic or mode=threshold."
        )
    if mode == "fixed":
        if valid_size:
            raise GMError(
                "valid_size applies to the dynamic and threshold modes; the fixed "
                ".amat files come split 50,000 / 10,000 / 10,000."
            )
        arrays, meta = amat_arrays(data_dir, source_dir)
        return make_dataset(
            "binarized-mnist",
            "image",
            arrays,
            meta={
                "binarization": "fixed",
                "source": "binarized_mnist_*.amat (Larochelle & Murray)",
                "provenance": provenance(meta),
            },
        )
    if source == "mnist-5k":
        from gm_datasets.mnist5k import mnist_5k

        grey = mnist_5k(data_dir, source_dir, valid_size=valid_size)
    else:
        from gm_datasets.images import mnist

        grey = mnist(data_dir, source_dir, valid_size=valid_size)
    meta = {**grey.info.meta, "binarization": mode}
    if mode == "threshold":
        splits = {k: ((v >= 128).to(torch.uint8) * 255).numpy() for k, v in grey.splits.items()}
        return make_dataset(
            "binarized-mnist",
            "image",
            splits,
            meta={**meta, "threshold": "x >= 128"},
            labels={k: v.numpy() for k, v in grey.labels.items()},
        )
    data = make_dataset(
        "binarized-mnist",
        "image",
        {k: v.numpy() for k, v in grey.splits.items()},
        labels={k: v.numpy() for k, v in grey.labels.items()},
        meta=meta,
    )
    return DynamicBinarized(data.info, data.splits, data.labels)
