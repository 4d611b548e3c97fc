"""``sequential-mnist``: images read pixel by pixel (row-major) as token sequences.

``source`` is ``mnist`` (784 tokens), ``mnist-5k`` (784 tokens, 5,000 real digits offline),
``digits`` (64 tokens, no download) or
``binarized-mnist`` (the fixed .amat binarisation). ``pixels=threshold`` (default) gives
binary tokens, vocab 2, pixel ``>= 128`` -> 1 (the binarised sequential MNIST of the RNN
literature); ``pixels=grey`` keeps all 256 grey levels, vocab 256. ``permute=true`` applies
one fixed permutation ``RandomState(permutation_seed).permutation(L)`` to every sequence
(permuted sequential MNIST), recorded in ``info.meta["permutation"]``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from gm.errors import GMError
from gm_datasets.common import LabelledDataset, make_dataset


def sequential_mnist(
    data_dir: str | None = None,
    source_dir: str | None = None,
    source: Literal["mnist", "mnist-5k", "digits", "binarized-mnist"] = "mnist",
    pixels: Literal["threshold", "grey"] = "threshold",
    permute: bool = False,
    permutation_seed: int = 0,
    valid_size: int = 0,
) -> LabelledDataset:
    if source == "digits":
        from gm_datasets.digits import load

        images = load()
    elif source == "mnist":
        from gm_datasets.images import mnist

        images = mnist(data_dir, source_dir, valid_size=valid_size)
    elif source == "mnist-5k":
        from gm_datasets.mnist5k import mnist_5k

        images = mnist_5k(data_dir, source_dir, valid_size=valid_size)
    else:
        if pixels == "grey":
            raise GMError("binarized-mnist has no grey levels; use pixels=threshold with it.")
        from gm_datasets.binarized import binarized_mnist

        images = binarized_mnist(data_dir, source_dir, valid_size=valid_size)
    length = int(np.prod(images.info.shape))
    perm = np.random.RandomState(permutation_seed).permutation(length) if permute else None
    seqs = {}
    for split, x in images.splits.items():
        flat = x.reshape(len(x), length).numpy()
        tokens = (flat >= 128).astype(np.int64) if pixels == "threshold" else flat.astype(np.int64)
        seqs[split] = tokens[:, perm] if perm is not None else tokens
    meta = {
        "source": source,
        "pixels": pixels,
        "image_shape": list(images.info.shape),
        "permutation": perm.tolist() if perm is not None else None,
        "permutation_seed": permutation_seed if permute else None,
    }
    return make_dataset(
        "sequential-mnist",
        "sequence",
        seqs,
        vocab_size=2 if pixels == "threshold" else 256,
        labels={k: v.numpy() for k, v in images.labels.items()},
        meta=meta,
    )
