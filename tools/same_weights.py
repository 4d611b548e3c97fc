"""Does a refactor keep the arithmetic? Train every registered model a few steps and hash it.

    OMP_NUM_THREADS=1 nice python tools/same_weights.py [--steps 3] [--only NAME ...] > OUT.txt

For each registered model: a short run (fixed seed, CPU, ``gm.train``) on a small dataset of
each modality it trains on (swiss-roll for vectors, digits for images, markov-chain for token sequences, seeded random pen
strokes), then one line ``MODEL@MODALITY sha256`` (one per modality it declares) of the saved weights (tensor names, dtypes, shapes and
bytes; not the file, whose metadata may change). Run it before and after a change: the lines
must be identical unless a model's default truly changed. A model that cannot train on these
data prints ``MODEL error: ...`` (also compared).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import warnings
from pathlib import Path


def weights_digest(run: Path) -> str:
    from safetensors import safe_open

    h = hashlib.sha256()
    with safe_open(str(run / "model.safetensors"), "pt") as f:
        for name in sorted(f.keys()):
            t = f.get_tensor(name).contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
            h.update(t.view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes())
    return h.hexdigest()


def data_for(modality: str):
    """A small dataset of ``modality``."""
    import torch

    if modality in ("vector", "image"):
        return "swiss-roll" if modality == "vector" else "digits"
    if modality == "sequence":
        return "markov-chain"
    g = torch.Generator().manual_seed(0)  # strokes: (N, L, 3) offsets and a pen-up bit
    xy = torch.randn(64, 60, 2, generator=g)
    pen = (torch.rand(64, 60, 1, generator=g) < 0.1).float()
    return torch.cat([xy, pen], dim=-1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    import torch

    from gm import plugins

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    names = sorted(plugins.registry("models"))
    for name in args.only or names:
        for modality in plugins.get("models", name).modalities or ("vector",):
            print(f"{name}@{modality} {one_run(name, modality, args.steps)}", flush=True)
    return 0


def one_run(name: str, modality: str, steps: int) -> str:
    import gm

    with tempfile.TemporaryDirectory() as tmp:
        try:
            run = gm.train(
                name,
                data_for(modality),
                steps=steps,
                out=Path(tmp) / "run",
                device="cpu",
                seed=0,
                progress=False,
                batch_size=8,
            )
            return weights_digest(Path(os.fspath(run)))
        except Exception as err:  # noqa: BLE001 - reported and compared, not hidden
            return f"error: {type(err).__name__}: {str(err).splitlines()[0][:160]}"


if __name__ == "__main__":
    sys.exit(main())
