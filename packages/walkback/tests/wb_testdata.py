"""A tiny image dataset made here, so the image paths are tested without gm-datasets."""

from __future__ import annotations

import numpy as np
import torch

from gm.data import DataInfo, Dataset


def bars(rng: np.random.Generator, n: int) -> np.ndarray:
    """8x8 uint8 images of one bright horizontal or vertical bar on a dark background."""
    out = np.zeros((n, 1, 8, 8), dtype=np.uint8)
    pos = rng.integers(1, 7, n)
    vertical = rng.random(n) < 0.5
    for i in range(n):
        if vertical[i]:
            out[i, 0, :, pos[i]] = 230
        else:
            out[i, 0, pos[i], :] = 230
    return out


def training_steps(trainer, batches, n: int) -> list[dict]:
    """``n`` training steps as the engine runs them: ``trainer.step`` is the number of updates
    already done when each step starts (it drives walkback's n draws and Tmax refresh)."""
    out = []
    for i in range(n):
        trainer.step = i
        out.append(trainer.training_step(next(batches)))
    return out


def tiny_images(n: int = 256, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    splits = {
        "train": torch.from_numpy(bars(rng, n)),
        "test": torch.from_numpy(bars(rng, max(n // 4, 16))),
    }
    return Dataset(DataInfo("wb-tiny-images", "image", (1, 8, 8)), splits)
