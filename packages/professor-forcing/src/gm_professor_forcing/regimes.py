"""``regime-switch``: a long-range token source whose entropy is known exactly.

K regimes, each with its own m-symbol alphabet (symbols k*m .. k*m+m-1) and a fixed random
emission law; a regime lasts D steps, D uniform on [d_min, d_max] (a semi-Markov chain:
predicting the switch means counting up to d_max steps), then a *different* regime starts,
uniform over the K-1 others; symbols are drawn i.i.d. from the current regime's law. Because
the alphabets are disjoint the symbols reveal the regime and every switch, so the block
sequence (regime, duration, symbols) is a function of the tokens and the entropy rate is

    h = H_emit + (log(K-1) + H(D)) / E[D]          (nats per token)

with H_emit the regimes' mean emission entropy. Every row starts at stationarity (regime
uniform, the age of its block from the stationary age law S(a)/E[D], S(a) = P(D >= a)), so a
window's mean NLL floor is H(X_1..X_L)/L, computed exactly below by a recursion over what an
observer can know (the run seen so far before the first switch, the exact age after it).

Rows of a split come in groups of ``stream_rows`` consecutive windows of one stream
(``meta["stream_rows"]``), so teacher-forced states at long horizons exist on real data.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gm.data import DataInfo, Dataset

TEST_SEED_OFFSET = 10_007


def _hb(p: np.ndarray) -> np.ndarray:
    """Binary entropy in nats."""
    p = np.clip(p, 1e-300, 1.0)
    q = np.clip(1 - p, 1e-300, 1.0)
    return -(p * np.log(p) + q * np.log(q))


def survival(d_min: int, d_max: int) -> np.ndarray:
    """S[a] = P(D >= a) for a = 0 .. d_max + 1 (D uniform on [d_min, d_max])."""
    a = np.arange(d_max + 2)
    return np.clip((d_max - np.maximum(a, d_min) + 1) / (d_max - d_min + 1), 0, 1)


def entropy_rate(regimes: int, emit_entropy: float, d_min: int, d_max: int) -> float:
    mean_d = (d_min + d_max) / 2
    return emit_entropy + (math.log(regimes - 1) + math.log(d_max - d_min + 1)) / mean_d


def window_entropy(regimes: int, emit_entropy: float, d_min: int, d_max: int, length: int):
    """(H(X_1..X_L)/L, per-step conditional entropies H(X_t | X_<t)) from a stationary start."""
    S = survival(d_min, d_max)
    mean_d = S[1:].sum()
    switch = math.log(regimes - 1)
    tail = np.zeros(max(length, d_max) + 3)  # tail[m] = sum_{j>=m} S[j]
    tail[: d_max + 2] = np.cumsum(S[::-1])[::-1]
    per = np.empty(length)
    per[0] = math.log(regimes) + emit_entropy
    unseen = tail[1] / mean_d  # P(no switch seen yet) after 1 token (= 1)
    seen = np.zeros(d_max + 2)  # seen[a]: switch seen, current block age a (tokens so far)
    for t in range(1, length):
        r = t  # tokens of the first run seen so far, if no switch yet
        s_unseen = tail[r + 1] / tail[r] if tail[r] > 0 else 0.0
        a = np.arange(d_max + 2)
        s_seen = np.divide(S[np.minimum(a + 1, d_max + 1)], S, out=np.zeros_like(S), where=S > 0)
        stop = lambda s: _hb(np.asarray(s)) + (1 - np.asarray(s)) * switch  # noqa: E731
        per[t] = emit_entropy + unseen * stop(s_unseen) + (seen * stop(s_seen)).sum()
        new = np.zeros_like(seen)
        new[1:] = (seen * s_seen)[:-1]
        new[1] += unseen * (1 - s_unseen) + (seen * (1 - s_seen)).sum()
        seen, unseen = new, unseen * s_unseen
    return float(per.mean()), per


def exact_nll(tokens, emit: np.ndarray, d_min: int, d_max: int) -> np.ndarray:
    """-log p(row) in nats under the source itself (stationary start), per row: what the
    Bayes-optimal predictor scores on these very rows."""
    x = np.asarray(tokens)
    regimes, symbols = emit.shape
    S = survival(d_min, d_max)
    tail = np.zeros(max(x.shape[1], d_max) + 3)
    tail[: d_max + 2] = np.cumsum(S[::-1])[::-1]
    reg, sym = x // symbols, x % symbols
    out = np.log(regimes) - np.log(emit[reg[:, 0], sym[:, 0]])
    seen = np.zeros(len(x), dtype=bool)
    count = np.ones(len(x), dtype=np.int64)  # run length (unseen) or block age (seen)
    for t in range(1, x.shape[1]):
        s_unseen = np.divide(
            tail[count + 1], tail[count], out=np.zeros(len(x)), where=tail[count] > 0
        )
        idx = np.minimum(count + 1, d_max + 1)
        s_seen = np.divide(
            S[idx],
            S[np.minimum(count, d_max + 1)],
            out=np.zeros(len(x)),
            where=S[np.minimum(count, d_max + 1)] > 0,
        )
        s = np.where(seen, s_seen, s_unseen)
        same = reg[:, t] == reg[:, t - 1]
        p = np.where(same, s, (1 - s) / (regimes - 1)) * emit[reg[:, t], sym[:, t]]
        out -= np.log(np.clip(p, 1e-300, None))
        seen |= ~same
        count = np.where(same, count + 1, 1)
    return out


def emissions(regimes: int, symbols: int, seed: int, concentration: float = 0.5) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.full(symbols, concentration), size=regimes)


def draw_streams(
    rng: np.random.Generator, count: int, steps: int, emit: np.ndarray, d_min: int, d_max: int
) -> np.ndarray:
    """``count`` stationary streams of ``steps`` tokens."""
    regimes, symbols = emit.shape
    S = survival(d_min, d_max)
    age_law = S[1 : d_max + 1] / S[1 : d_max + 1].sum()  # the age of the block at step 1
    out = np.empty((count, steps), dtype=np.int64)
    regime = rng.integers(regimes, size=count)
    age = rng.choice(np.arange(1, d_max + 1), size=count, p=age_law)
    # the total duration of the current block given its age: D | D >= age, uniform
    dur = np.maximum(age, d_min) + (
        rng.random(count) * (d_max - np.maximum(age, d_min) + 1)
    ).astype(np.int64)
    cdf = np.cumsum(emit, 1)
    for t in range(steps):
        u = rng.random(count)[:, None]
        sym = np.minimum((u > cdf[regime]).sum(1), symbols - 1)
        out[:, t] = regime * symbols + sym
        ended = age >= dur
        shift = rng.integers(1, regimes, size=count)
        regime = np.where(ended, (regime + shift) % regimes, regime)
        fresh = rng.integers(d_min, d_max + 1, size=count)
        dur = np.where(ended, fresh, dur)
        age = np.where(ended, 1, age + 1)
    return out


def run_lengths(tokens: torch.Tensor | np.ndarray, symbols: int) -> np.ndarray:
    """Durations of the complete regime runs in each row (the first and last runs of a row
    are cut by the window and left out)."""
    reg = np.asarray(tokens) // symbols
    out = []
    for row in reg:
        cuts = np.flatnonzero(np.diff(row) != 0) + 1
        out.append(np.diff(cuts))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def regime_switch(
    n: int = 2048,
    length: int = 256,
    regimes: int = 4,
    symbols: int = 4,
    d_min: int = 40,
    d_max: int = 88,
    stream_rows: int = 4,
    seed: int = 0,
) -> Dataset:
    """``n`` training windows of ``length`` tokens (n/4 test windows), in groups of
    ``stream_rows`` consecutive windows of one stationary stream."""
    if regimes < 2 or symbols < 1 or not 1 <= d_min <= d_max or length < 2 or stream_rows < 1:
        raise ValueError(
            "regime-switch needs regimes >= 2, symbols >= 1, 1 <= d_min <= d_max, length >= 2."
        )
    emit = emissions(regimes, symbols, seed)
    h_emit = float(np.mean(-(emit * np.log(np.clip(emit, 1e-300, None))).sum(1)))
    rate = entropy_rate(regimes, h_emit, d_min, d_max)
    floor, _ = window_entropy(regimes, h_emit, d_min, d_max, length)

    def split(count: int, rng_seed: int) -> torch.Tensor:
        streams = max(1, math.ceil(count / stream_rows))
        rows = draw_streams(
            np.random.default_rng(rng_seed), streams, stream_rows * length, emit, d_min, d_max
        )
        return torch.from_numpy(rows.reshape(streams * stream_rows, length)[:count])

    n = stream_rows * max(1, n // stream_rows)
    info = DataInfo(
        "regime-switch",
        "sequence",
        (length,),
        vocab_size=regimes * symbols,
        meta={
            "entropy_rate": rate,
            "window_nll_floor": floor,  # nats/token of a stationary-start window
            "true_nll": floor * length,  # nats per window
            "regimes": regimes,
            "symbols": symbols,
            "d_min": d_min,
            "d_max": d_max,
            "emission_entropy": h_emit,
            "stream_rows": stream_rows,
            "seed": seed,
        },
    )
    test = stream_rows * max(1, n // (4 * stream_rows))
    return Dataset(
        info, {"train": split(n, seed + 1), "test": split(test, seed + TEST_SEED_OFFSET)}
    )
