"""Shared fixtures: small datasets built directly as gm.data.Dataset objects and tiny runs.

The package's tests register nothing: data are made here, and runs that need a registered
dataset use core's built-in toys.
"""

from __future__ import annotations

import math

import pytest
import torch

from gm import checkpoint
from gm.build import resolve
from gm.config import override
from gm.data import DataInfo, Dataset
from gm.engine import seed_everything

torch.set_num_threads(1)


def correlated_vectors(n: int, dim: int = 8, seed: int = 0) -> torch.Tensor:
    """Values in [0, 1] driven by one latent: any value predicts the others well."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n, 1, generator=g)
    w = torch.linspace(-2.0, 2.0, dim)
    return torch.sigmoid(u * w + 0.05 * torch.randn(n, dim, generator=g))


def vector_dataset(n: int = 600, dim: int = 8) -> Dataset:
    info = DataInfo("correlated", "vector", (dim,))
    return Dataset(
        info, {"train": correlated_vectors(n, dim, 0), "test": correlated_vectors(n // 3, dim, 1)}
    )


def stripe_images(n: int, side: int = 6, seed: int = 0) -> torch.Tensor:
    """uint8 (n, 1, side, side) images: a bright row or a bright column, plus noise."""
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(n, 1, side, side, generator=g) * 0.2
    k = torch.randint(0, side, (n,), generator=g)
    rows = torch.rand(n, generator=g) < 0.5
    for i in range(n):
        if rows[i]:
            img[i, 0, k[i], :] = 0.9
        else:
            img[i, 0, :, k[i]] = 0.9
    return (img * 255).round().to(torch.uint8)


def image_dataset(n: int = 300, side: int = 6) -> Dataset:
    info = DataInfo("stripes", "image", (1, side, side))
    return Dataset(
        info, {"train": stripe_images(n, side, 0), "test": stripe_images(n // 3, side, 1)}
    )


def make_trainer(model: str, data: Dataset, seed: int = 0, **overrides):
    cls, cfg = resolve(model, data.info, overrides=overrides)
    seed_everything(seed)
    return cls(cfg, data.info, "cpu")


def train_steps(trainer, data: Dataset, steps: int, seed: int = 0) -> list[dict]:
    seed_everything(seed)
    batches = data.batches("train", trainer.config.batch_size, seed=seed)
    trainer.train(True)
    return [trainer.training_step(next(batches)) for _ in range(steps)]


def save_run(trainer, path, model: str, dataset: str = "made-in-test"):
    """A run folder for a trainer trained outside the engine (for gm impute / evaluate)."""
    path.mkdir(parents=True, exist_ok=True)
    checkpoint.write_json(
        path / checkpoint.CONFIG,
        checkpoint.run_record(model, dataset, trainer, seed=0, data_options={}),
    )
    checkpoint.save(path, trainer, 1)
    return path


@pytest.fixture(scope="session")
def vector_run(tmp_path_factory):
    """A small gpsi-add trained on correlated vectors whose columns span [-3, 5]."""
    raw = correlated_vectors(600, 4, 0) * 8 - 3
    raw[0], raw[1] = -3.0, 5.0  # every column's training range is exactly [-3, 5]
    info = DataInfo("correlated-raw", "vector", (4,))
    data = Dataset(info, {"train": raw, "test": correlated_vectors(60, 4, 1) * 8 - 3})
    tr = make_trainer("gpsi-add", data, hidden=32, z_dim=4, batch_size=50, mask="mcar:0.5")
    train_steps(tr, data, 60)
    return save_run(tr, tmp_path_factory.mktemp("runs") / "vector", "gpsi-add")


@pytest.fixture(scope="session")
def image_run(tmp_path_factory):
    data = image_dataset(120, 6)
    tr = make_trainer("gpsi-add", data, hidden=32, z_dim=4, batch_size=40, mask="mar:3")
    train_steps(tr, data, 30)
    return save_run(tr, tmp_path_factory.mktemp("runs") / "image", "gpsi-add")


def close(a: float, b: float, tol: float = 1e-5) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


__all__ = ["override"]
