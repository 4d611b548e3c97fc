"""The oscillator and shared-regimes sources against their stated laws."""

import itertools
import statistics

import numpy as np
import pytest

from gm.data import load_dataset
from gm_professor_forcing import regimes as R
from gm_professor_forcing import sources as S


def test_oscillator_cycles_follow_the_stated_law():
    """Periods uniform on p_min..p_max; log(half range / m(P)) ~ N(log median, sd^2) with
    lag-one correlation rho between consecutive cycles (nearly noise-free, so the grid's
    law is exact)."""
    data = load_dataset(
        "oscillator",
        options={
            "n": 512,
            "length": 64,
            "sigma": 1e-4,
            "p_min": 6,
            "p_max": 11,
            "rho": 0.8,
            "amp_median": 1.5,
        },
    )
    m = data.info.meta
    x = data.raw("train").numpy().reshape(-1, 64 * m["stream_rows"])
    periods, ranges = S.cycles(x, 0.05)
    assert periods.min() == 6 and periods.max() == 11
    freq = np.bincount(periods, minlength=12)[6:] / len(periods)
    se = np.sqrt(freq * (1 - freq) / len(periods))
    assert np.all(np.abs(freq - 1 / 6) < 4 * se + 1e-3)
    scale = np.array([S.grid_range(int(p), m["skew"]) for p in periods])
    z = (np.log(ranges / scale) - np.log(m["amp_median"])) / m["amp_sd"]
    assert z.mean() == pytest.approx(0.0, abs=0.15)  # correlated cycles: a wider error
    assert z.std() == pytest.approx(1.0, abs=0.1)
    # consecutive complete cycles of one row: lag-one correlation rho
    per_row = [S.cycles(row[None], 0.05) for row in x]
    pairs = [
        (np.log(r / [S.grid_range(int(q), m["skew"]) for q in p])) for p, r in per_row if len(p) > 1
    ]
    a = np.concatenate([v[:-1] for v in pairs])
    b = np.concatenate([v[1:] for v in pairs])
    assert np.corrcoef(a, b)[0, 1] == pytest.approx(m["rho"], abs=0.05)


def test_oscillator_rows_start_at_stationarity_and_carry_noise():
    data = load_dataset("oscillator", options={"n": 1024, "length": 32, "seed": 2})
    x = data.raw("train").numpy()[:, :, 0]
    sigma = data.info.meta["sigma"]  # the floor's bound: the noise's differential entropy,
    normal = statistics.NormalDist(0, sigma)  # here by quadrature of -p log p
    grid = np.linspace(-8 * sigma, 8 * sigma, 2001)
    dens = np.array([normal.pdf(float(v)) for v in grid])
    entropy = -(dens * np.log(dens)).sum() * (grid[1] - grid[0])
    assert data.info.meta["noise_entropy"] == pytest.approx(entropy, abs=1e-3)
    # stationary: the first step's law equals a middle step's
    assert abs(x[:, 0].mean() - x[:, 16].mean()) < 0.06
    assert abs(x[:, 0].std() - x[:, 16].std()) < 0.06
    # the noise: second differences of a smooth wave are small beside sigma's share
    assert np.diff(x, 2).std() > 2 * data.info.meta["sigma"]


def test_forward_nll_is_the_regime_switch_exact_nll_on_disjoint_alphabets():
    emit = R.emissions(3, 2, seed=5)
    rng = np.random.default_rng(0)
    tokens = R.draw_streams(rng, 64, 50, emit, 4, 9)
    wide = np.zeros((3, 6))  # regime k emits only symbols 2k, 2k+1: the disjoint source
    for k in range(3):
        wide[k, 2 * k : 2 * k + 2] = emit[k]
    np.testing.assert_allclose(
        S.forward_nll(tokens, wide, 4, 9), R.exact_nll(tokens, emit, 4, 9), rtol=1e-10
    )


def test_switch_matrices():
    ring = S.switch_matrix(4, "ring")
    expected = np.array([[0, 0.5, 0, 0.5], [0.5, 0, 0.5, 0], [0, 0.5, 0, 0.5], [0.5, 0, 0.5, 0]])
    np.testing.assert_array_equal(ring, expected)
    uniform = S.switch_matrix(3, "uniform")
    np.testing.assert_allclose(uniform, (np.ones((3, 3)) - np.eye(3)) / 2)


def test_forward_nll_is_a_normalised_law_on_a_shared_alphabet():
    emit = np.array([[0.7, 0.3], [0.2, 0.8]])
    rows = np.array(list(itertools.product([0, 1], repeat=8)))
    p = np.exp(-S.forward_nll(rows, emit, 1, 3))
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    # and a hidden regime is not a Markov chain of order 1: the source remembers more
    p2 = p.reshape(-1, 2)  # last token free
    assert not np.allclose(p2[:, 0] / p2.sum(1), p2[0, 0] / p2[0].sum())


def test_ring_switches_are_a_normalised_law_and_the_drawn_streams_follow_them():
    emit = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.1, 0.7], [1 / 3, 1 / 3, 1 / 3]])
    ring = S.switch_matrix(4, "ring")
    rows = np.array(list(itertools.product([0, 1, 2], repeat=6)))
    p = np.exp(-S.forward_nll(rows, emit, 1, 2, ring))
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    # Monte Carlo: the drawn rows' frequencies are those probabilities
    drawn = S.draw_regime_streams(np.random.default_rng(0), 40_000, 6, emit, 1, 2, ring)
    index = (drawn * 3 ** np.arange(5, -1, -1)).sum(1)
    freq = np.bincount(index, minlength=len(rows)) / len(drawn)
    assert np.abs(freq - p).max() < 5 * np.sqrt(p.max() / len(drawn))
    chi2 = len(drawn) * ((freq - p) ** 2 / p).sum()  # ~ chi-square with 728 dof
    dof = len(rows) - 1
    assert chi2 < dof + 5 * np.sqrt(2 * dof)


@pytest.mark.parametrize("switch", ["uniform", "ring"])
def test_shared_regimes_floor_is_the_source_score_of_the_test_rows(switch):
    data = load_dataset(
        "shared-regimes", options={"n": 256, "length": 32, "seed": 1, "switch": switch}
    )
    m = data.info.meta
    emit = R.emissions(m["regimes"], m["symbols"], m["seed"], m["concentration"])
    x = data.raw("test").numpy()
    assert x.max() < m["symbols"]
    moves = S.switch_matrix(m["regimes"], switch)
    scores = S.forward_nll(x, emit, m["d_min"], m["d_max"], moves)
    assert scores.mean() == pytest.approx(m["true_nll"])
    assert m["true_nll_se"] == pytest.approx(scores.std() / np.sqrt(len(scores)))
    # the source beats any order-0 model: per token it is below the unigram entropy
    freq = np.bincount(x.ravel(), minlength=m["symbols"]) / x.size
    unigram = -(freq[freq > 0] * np.log(freq[freq > 0])).sum()
    assert m["true_nll"] / 32 < unigram - 0.05
