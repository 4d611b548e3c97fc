"""``sequential-mnist``: images read pixel by pixel (row-major) as token sequences.

``source`` is ``mnist`` (784 tokens), ``mnist-5k`` (784 tokens, 5,000 real digits offline),
``digits`` (64 tokens, no download) or
``binarized-mnist`` (the fixed .amat binarisation). ``pixels=threshold`` (default) gives
binary tokens, vocab 2, pixel ``>= 128`` -> 1 (the binarised sequential MNIST of the RNN
literature); ``pixels=stochastic`` is the literature's fixed stochastic binarisation: each
pixel is 1 with probability grey / 255, drawn once per split from ``binarize_seed`` (the same
tokens on every load, vocab 2; the ~80-nat numbers of the RNN literature are on such data);
``pixels=grey`` keeps all 256 grey levels, vocab 256. ``permute=true`` applies
one fixed permutation ``RandomState(permutation_seed).permutation(L)`` to every sequence
(permuted sequential MNIST), recorded in ``info.meta["permutation"]``.
"""

from __future__ import annotations

import zlib
from typing import Literal

import numpy as np

from gm.errors import GMError
from gm_datasets.common import LabelledDataset, make_dataset


def sequential_mnist(
    data_dir: str | None = None,
    source_dir: str | None = None,
    source: Literal["mnist", "mnist-5k", "digits", "binarized-mnist"] = "mnist",
    pixels: Literal["threshold", "stochastic", "grey"] = "threshold",
    permute: bool = False,
    permutation_seed: int = 0,
    valid_size: int = 0,
    binarize_seed: int = 0,
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
        if pixels != "threshold":
            raise GMError(
                f"binarized-mnist has no grey levels to binarise; use pixels=threshold with it "
                f"(got pixels={pixels})."
            )
        from gm_datasets.binarized import binarized_mnist

        images = binarized_mnist(data_dir, source_dir, valid_size=valid_size)
    length = int(np.prod(images.info.shape))
    perm = np.random.RandomState(permutation_seed).permutation(length) if permute else None
    seqs = {}
    for split, x in images.splits.items():
        flat = x.reshape(len(x), length).numpy()
        if pixels == "threshold":
            tokens = (flat >= 128).astype(np.int64)
        elif pixels == "stochastic":  # one fixed draw per split (crc32: stable across runs)
            rng = np.random.default_rng([binarize_seed, zlib.crc32(split.encode())])
            tokens = (rng.random(flat.shape) < flat / 255.0).astype(np.int64)
        else:
            tokens = flat.astype(np.int64)
        seqs[split] = tokens[:, perm] if perm is not None else tokens
    meta = {
        "source": source,
        "pixels": pixels,
        "binarize_seed": binarize_seed if pixels == "stochastic" else None,
        "image_shape": list(images.info.shape),
        "permutation": perm.tolist() if perm is not None else None,
        "permutation_seed": permutation_seed if permute else None,
        **{k: images.info.meta[k] for k in ("provenance",) if k in images.info.meta},
    }
    return make_dataset(
        "sequential-mnist",
        "sequence",
        seqs,
        vocab_size=256 if pixels == "grey" else 2,
        labels={k: v.numpy() for k, v in images.labels.items()},
        meta=meta,
    )
