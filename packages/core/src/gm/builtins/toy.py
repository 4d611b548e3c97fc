"""Synthetic datasets with known structure, generated with numpy from explicit seeds.

The 2-D sets follow the Variational Walkback toy experiments; ``markov-chain`` gives
token sequences whose true NLL is known exactly, so sequence models can be checked
against it (``info.meta["entropy_rate"]``, nats per token, and ``meta["true_nll"]`` for
a whole sequence).
"""

from __future__ import annotations

import numpy as np
import torch

from gm.data import DataInfo, Dataset

TEST_SEED_OFFSET = 10_007  # the test split is drawn from its own seed


def _vector_dataset(name: str, sampler, n: int, seed: int, meta: dict | None = None) -> Dataset:
    splits = {
        "train": torch.from_numpy(sampler(np.random.default_rng(seed), n).astype(np.float32)),
        "test": torch.from_numpy(
            sampler(np.random.default_rng(seed + TEST_SEED_OFFSET), max(n // 5, 1)).astype(
                np.float32
            )
        ),
    }
    return Dataset(
        DataInfo(name, "vector", (2,), meta={"n": n, "seed": seed, **(meta or {})}), splits
    )


def swiss_roll_points(rng: np.random.Generator, n: int, noise: float = 0.05) -> np.ndarray:
    t = 1.5 * np.pi * (1 + 2 * rng.random(n))
    x = np.stack([t * np.cos(t), t * np.sin(t)], 1) / 5.0  # scaled to about [-3, 3]
    return x + noise * rng.standard_normal((n, 2))


def circle_points(rng: np.random.Generator, n: int, noise: float = 0.05) -> np.ndarray:
    a = 2 * np.pi * rng.random(n)
    return np.stack([np.cos(a), np.sin(a)], 1) + noise * rng.standard_normal((n, 2))


MOG_STD = 0.05
MOG_CENTRES = np.array([(i, j) for i in (-1.0, 0.0, 1.0) for j in (-1.0, 0.0, 1.0)])


def mog_points(rng: np.random.Generator, n: int) -> np.ndarray:
    return MOG_CENTRES[rng.integers(0, 9, n)] + MOG_STD * rng.standard_normal((n, 2))


def mog_log_density(x: torch.Tensor) -> torch.Tensor:
    """Exact log-density of the 3x3 grid mixture at points x (N, 2)."""
    c = torch.as_tensor(MOG_CENTRES, dtype=x.dtype, device=x.device)
    d2 = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    log_comp = -d2 / (2 * MOG_STD**2) - np.log(2 * np.pi * MOG_STD**2)
    return torch.logsumexp(log_comp, 1) - np.log(9)


def swiss_roll(n: int = 10_000, seed: int = 0, noise: float = 0.05) -> Dataset:
    return _vector_dataset("swiss-roll", lambda r, k: swiss_roll_points(r, k, noise), n, seed)


def circle(n: int = 10_000, seed: int = 0, noise: float = 0.05) -> Dataset:
    return _vector_dataset("circle", lambda r, k: circle_points(r, k, noise), n, seed)


def mog_grid(n: int = 10_000, seed: int = 0) -> Dataset:
    return _vector_dataset("mog-grid", mog_points, n, seed, {"std": MOG_STD})


def markov_transitions(vocab: int, seed: int, concentration: float = 0.3) -> np.ndarray:
    """A fixed random transition matrix; a small Dirichlet concentration makes it peaked."""
    return np.random.default_rng(seed).dirichlet(np.full(vocab, concentration), size=vocab)


def markov_chain(n: int = 4096, length: int = 64, vocab: int = 8, seed: int = 0) -> Dataset:
    """Sequences of ``length`` tokens from an order-1 Markov chain started at its stationary law."""
    P = markov_transitions(vocab, seed)
    evals, evecs = np.linalg.eig(P.T)
    pi = np.abs(np.real(evecs[:, np.argmin(np.abs(evals - 1))]))
    pi /= pi.sum()
    ent = lambda p: float(-(p * np.log(np.clip(p, 1e-300, None))).sum())  # noqa: E731
    rate = float(sum(pi[i] * ent(P[i]) for i in range(vocab)))
    cdf = np.cumsum(P, 1)

    def draw(rng: np.random.Generator, count: int) -> np.ndarray:
        out = np.empty((count, length), dtype=np.int64)
        out[:, 0] = rng.choice(vocab, size=count, p=pi)
        for t in range(1, length):
            u = rng.random(count)[:, None]
            out[:, t] = np.minimum((u > cdf[out[:, t - 1]]).sum(1), vocab - 1)
        return out

    info = DataInfo(
        "markov-chain",
        "sequence",
        (length,),
        vocab_size=vocab,
        meta={
            "entropy_rate": rate,
            "true_nll": ent(pi) + (length - 1) * rate,
            "seed": seed,
            "transitions": P.tolist(),
            "stationary": pi.tolist(),
        },
    )
    splits = {
        "train": torch.from_numpy(draw(np.random.default_rng(seed + 1), n)),
        "test": torch.from_numpy(
            draw(np.random.default_rng(seed + TEST_SEED_OFFSET), max(n // 4, 1))
        ),
    }
    return Dataset(info, splits)
