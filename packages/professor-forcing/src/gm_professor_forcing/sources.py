"""Two sources where a free-running model's errors can compound, each with its law stated
exactly (issue 23): ``oscillator`` (real-valued) and ``shared-regimes`` (tokens).

``oscillator``: a noisy nonlinear oscillator, one real value per step. It runs in cycles;
cycle k has an integer period P_k ~ Uniform{p_min .. p_max}, independent of everything else,
and an amplitude A_k whose logarithm is a stationary AR(1) over cycles,

    log A_k = mu + rho (log A_{k-1} - mu) + sqrt(1 - rho^2) s xi_k,   xi_k ~ N(0, 1)

(mu = log ``amp_median``, s = ``amp_sd``): every cycle's amplitude is log-normal
(log A ~ N(mu, s^2)) and consecutive cycles' log amplitudes correlate by rho. With rho near 1
the amplitude wanders slowly: a window of L steps shows little of its pull back to mu, which
a free-running model then has to have learnt to stay on the law far past L. Step j of the
cycle (j = 0 .. P_k - 1) emits

    x = A_k * w(2 pi (j + 1/2) / P_k) + sigma * e,   w(phi) = sin(phi + b sin phi),  e ~ N(0, 1)

(b = ``skew``: the rise is steeper than the fall; w's extremes are exactly +-1). The
stationary law: complete cycles' periods are i.i.d. uniform on p_min .. p_max and their log
amplitudes N(mu, s^2) with lag-one correlation rho; on the sampling grid a cycle's half
range (max - min) / 2 is A_k m(P_k) with m(P) = (max_j w - min_j w) / 2 (:func:`grid_range`),
known exactly. Rows start at stationarity (a renewal process: the first cycle's period is
size-biased, P(P_0 = p) proportional to p, and the row starts at a uniform step of it). The
NLL floor is not known in closed form; it is at least the noise's entropy
0.5 log(2 pi e sigma^2) per step (``meta["noise_entropy"]``).

``shared-regimes``: the regime-switch source (regimes.py: K regimes, durations uniform on
d_min .. d_max, then a different regime: uniform over the K - 1 others, or with
``switch="ring"`` a neighbour on a ring of K, k -> k +- 1 mod K with probability 1/2 each,
so the regime wanders slowly; the stationary regime law is uniform either way) with one
SHARED alphabet of m symbols: each regime has its own emission law over all m symbols, so the
regime is hidden and a model must infer it from the tokens so far; one unlikely token
moves that belief and misleads what follows. The exact NLL of a row under the source is the
forward algorithm over (regime, age of its block) (:func:`forward_nll`); the data's
``true_nll`` is its mean over the test rows (the source's own score of those very rows, a
Monte Carlo estimate of H(X_1..X_L) with ``meta["true_nll_se"]``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gm.data import DataInfo, Dataset
from gm_professor_forcing import regimes as R

TEST_SEED_OFFSET = R.TEST_SEED_OFFSET


# --- the oscillator ------------------------------------------------------------------------
def wave(phi: np.ndarray, skew: float) -> np.ndarray:
    return np.sin(phi + skew * np.sin(phi))


def grid_range(period: int, skew: float) -> float:
    """m(P): half the range of w on a cycle's P grid points (a cycle's half range / A)."""
    w = wave(2 * np.pi * (np.arange(period) + 0.5) / period, skew)
    return float((w.max() - w.min()) / 2)


def oscillator_streams(
    rng: np.random.Generator,
    count: int,
    steps: int,
    p_min: int,
    p_max: int,
    amp_median: float,
    amp_sd: float,
    rho: float,
    skew: float,
    sigma: float,
) -> np.ndarray:
    """``count`` stationary streams of ``steps`` values, float32 (count, steps)."""
    periods = np.arange(p_min, p_max + 1)
    out = np.empty((count, steps), dtype=np.float32)
    mu, innovation = math.log(amp_median), math.sqrt(1 - rho**2) * amp_sd
    for i in range(count):
        p0 = rng.choice(periods, p=periods / periods.sum())  # size-biased first cycle
        parts, total = [], 0
        start = int(rng.integers(p0))
        p = p0
        log_a = mu + amp_sd * rng.standard_normal()  # the stationary law
        while total < steps + start:
            parts.append(math.exp(log_a) * wave(2 * np.pi * (np.arange(p) + 0.5) / p, skew))
            total += p
            p = int(rng.integers(p_min, p_max + 1))
            log_a = mu + rho * (log_a - mu) + innovation * rng.standard_normal()
        clean = np.concatenate(parts)[start : start + steps]
        out[i] = clean + sigma * rng.standard_normal(steps)
    return out


def cycles(x: np.ndarray, hysteresis: float) -> tuple[np.ndarray, np.ndarray]:
    """(periods, half ranges) of the complete cycles in each row of x: a cycle runs from one
    upward zero crossing to the next, a crossing counting only once the signal has been
    below -``hysteresis`` since the last one (noise near zero makes no extra cycles)."""
    periods, ranges = [], []
    for row in np.asarray(x, dtype=np.float64).reshape(len(x), -1):
        armed, last = False, -1
        for t in range(1, len(row)):
            if row[t] < -hysteresis:
                armed = True
            elif armed and row[t - 1] <= 0 < row[t]:
                if last >= 0:
                    periods.append(t - last)
                    seg = row[last:t]
                    ranges.append((seg.max() - seg.min()) / 2)
                last, armed = t, False
    return np.asarray(periods, dtype=np.int64), np.asarray(ranges, dtype=np.float64)


def oscillator(
    n: int = 2048,
    length: int = 64,
    p_min: int = 10,
    p_max: int = 30,
    amp_median: float = 1.0,
    amp_sd: float = 0.4,
    rho: float = 0.95,
    skew: float = 0.6,
    sigma: float = 0.05,
    stream_rows: int = 4,
    seed: int = 0,
) -> Dataset:
    """``n`` training windows of ``length`` steps (n/4 test windows), in groups of
    ``stream_rows`` consecutive windows of one stationary stream."""
    if not (2 <= p_min <= p_max and amp_median > 0 and amp_sd >= 0 and -1 < rho < 1):
        raise ValueError(
            "oscillator needs 2 <= p_min <= p_max, amp_median > 0, amp_sd >= 0, -1 < rho < 1."
        )
    if not (sigma > 0 and length >= 2):
        raise ValueError("oscillator needs sigma > 0 and length >= 2.")

    def split(count: int, rng_seed: int) -> torch.Tensor:
        streams = max(1, math.ceil(count / stream_rows))
        rows = oscillator_streams(
            np.random.default_rng(rng_seed),
            streams,
            stream_rows * length,
            p_min,
            p_max,
            amp_median,
            amp_sd,
            rho,
            skew,
            sigma,
        )
        return torch.from_numpy(rows.reshape(streams * stream_rows, length, 1)[:count])

    n = stream_rows * max(1, n // stream_rows)
    test = stream_rows * max(1, n // (4 * stream_rows))
    info = DataInfo(
        "oscillator",
        "sequence",
        (length, 1),
        meta={
            "p_min": p_min,
            "p_max": p_max,
            "amp_median": amp_median,
            "amp_sd": amp_sd,
            "rho": rho,
            "skew": skew,
            "sigma": sigma,
            "noise_entropy": 0.5 * math.log(2 * math.pi * math.e * sigma**2),
            "stream_rows": stream_rows,
            "seed": seed,
        },
    )
    return Dataset(
        info, {"train": split(n, seed + 1), "test": split(test, seed + TEST_SEED_OFFSET)}
    )


# --- shared-regimes -----------------------------------------------------------------------
def switch_matrix(regimes: int, switch: str) -> np.ndarray:
    """P(next regime | the block of this one ended): zero diagonal, rows sum to 1."""
    if switch == "uniform":
        m = np.full((regimes, regimes), 1 / (regimes - 1))
        np.fill_diagonal(m, 0)
        return m
    if switch == "ring":
        m = np.zeros((regimes, regimes))
        for k in range(regimes):
            m[k, (k + 1) % regimes] += 0.5
            m[k, (k - 1) % regimes] += 0.5
        return m
    raise ValueError(f"switch must be uniform or ring, not {switch!r}.")


def draw_regime_streams(
    rng: np.random.Generator,
    count: int,
    steps: int,
    emit: np.ndarray,
    d_min: int,
    d_max: int,
    switch: np.ndarray,
) -> np.ndarray:
    """``count`` stationary streams of ``steps`` symbols (regimes.draw_streams's law with the
    switch matrix ``switch``; the emitted symbol only, not the regime)."""
    regimes, symbols = emit.shape
    S = R.survival(d_min, d_max)
    age_law = S[1 : d_max + 1] / S[1 : d_max + 1].sum()
    regime = rng.integers(regimes, size=count)
    age = rng.choice(np.arange(1, d_max + 1), size=count, p=age_law)
    low = np.maximum(age, d_min)
    dur = low + (rng.random(count) * (d_max - low + 1)).astype(np.int64)
    emit_cdf, switch_cdf = np.cumsum(emit, 1), np.cumsum(switch, 1)
    out = np.empty((count, steps), dtype=np.int64)
    for t in range(steps):
        u = rng.random(count)[:, None]
        out[:, t] = np.minimum((u > emit_cdf[regime]).sum(1), symbols - 1)
        ended = age >= dur
        v = rng.random(count)[:, None]
        nxt = np.minimum((v > switch_cdf[regime]).sum(1), regimes - 1)
        regime = np.where(ended, nxt, regime)
        dur = np.where(ended, rng.integers(d_min, d_max + 1, size=count), dur)
        age = np.where(ended, 1, age + 1)
    return out


def forward_nll(
    tokens, emit: np.ndarray, d_min: int, d_max: int, switch: np.ndarray | None = None
) -> np.ndarray:
    """-log p(row) in nats under the shared-alphabet source (stationary start), per row: the
    forward algorithm over (regime, age of the current block); ``switch`` the switch
    matrix (default: uniform over the other regimes)."""
    x = np.asarray(tokens)
    regimes = emit.shape[0]
    switch = switch_matrix(regimes, "uniform") if switch is None else switch
    S = R.survival(d_min, d_max)
    ages = np.arange(1, d_max + 1)
    stay = np.divide(S[ages + 1], S[ages], out=np.zeros(d_max), where=S[ages] > 0)
    start = S[1 : d_max + 1] / S[1 : d_max + 1].sum()  # the age law at a stationary start
    alpha = np.broadcast_to(start / regimes, (len(x), regimes, d_max)).copy()
    out = np.zeros(len(x))
    for t in range(x.shape[1]):
        if t:
            kept = np.zeros_like(alpha)
            kept[:, :, 1:] = alpha[:, :, :-1] * stay[:-1]
            ended = (alpha * (1 - stay)).sum(-1)  # (rows, regimes): blocks that end now
            kept[:, :, 0] = ended @ switch
            alpha = kept
        alpha = alpha * emit[:, x[:, t]].T[:, :, None]
        norm = alpha.sum((1, 2))
        out -= np.log(norm)
        alpha /= norm[:, None, None]
    return out


def shared_regimes(
    n: int = 2048,
    length: int = 64,
    regimes: int = 4,
    symbols: int = 6,
    d_min: int = 8,
    d_max: int = 24,
    concentration: float = 0.3,
    switch: str = "uniform",
    stream_rows: int = 4,
    seed: int = 0,
) -> Dataset:
    """``n`` training windows of ``length`` tokens over ``symbols`` shared symbols (n/4 test
    windows), in groups of ``stream_rows`` consecutive windows of one stationary stream."""
    if regimes < 2 or symbols < 2 or not 1 <= d_min <= d_max or length < 2 or stream_rows < 1:
        raise ValueError(
            "shared-regimes needs regimes >= 2, symbols >= 2, 1 <= d_min <= d_max, length >= 2."
        )
    emit = R.emissions(regimes, symbols, seed, concentration)
    moves = switch_matrix(regimes, switch)

    def split(count: int, rng_seed: int) -> torch.Tensor:
        streams = max(1, math.ceil(count / stream_rows))
        rng = np.random.default_rng(rng_seed)
        rows = draw_regime_streams(rng, streams, stream_rows * length, emit, d_min, d_max, moves)
        return torch.from_numpy(rows.reshape(streams * stream_rows, length)[:count])

    n = stream_rows * max(1, n // stream_rows)
    test = stream_rows * max(1, n // (4 * stream_rows))
    splits = {"train": split(n, seed + 1), "test": split(test, seed + TEST_SEED_OFFSET)}
    scores = forward_nll(splits["test"].numpy(), emit, d_min, d_max, moves)
    info = DataInfo(
        "shared-regimes",
        "sequence",
        (length,),
        vocab_size=symbols,
        meta={
            "true_nll": float(scores.mean()),  # nats per window: the source's own score
            "true_nll_se": float(scores.std() / math.sqrt(len(scores))),
            "regimes": regimes,
            "symbols": symbols,
            "d_min": d_min,
            "d_max": d_max,
            "concentration": concentration,
            "switch": switch,
            "stream_rows": stream_rows,
            "seed": seed,
        },
    )
    return Dataset(info, splits)
