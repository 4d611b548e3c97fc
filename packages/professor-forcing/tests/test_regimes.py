"""The regime-switch source: its exact entropies against brute force and Monte Carlo."""

import itertools
import math

import numpy as np
import pytest

from gm.data import load_dataset
from gm_professor_forcing import regimes as R


def test_window_entropy_matches_brute_force_enumeration():
    """A tiny source (2 regimes of 1 symbol each, D uniform on [1, 3]): the window entropy
    from the recursion equals -sum p log p over all 2^L windows, p from exact_nll."""
    emit = np.ones((2, 1))
    length = 7
    rows = np.array(list(itertools.product([0, 1], repeat=length)))
    logp = -R.exact_nll(rows, emit, 1, 3)
    p = np.exp(logp)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    brute = -(p * logp).sum() / length
    floor, per = R.window_entropy(2, 0.0, 1, 3, length)
    assert floor == pytest.approx(brute, abs=1e-12)
    assert per[0] == pytest.approx(math.log(2))


def test_rate_is_the_limit_of_the_conditional_entropies_and_a_renewal_formula():
    h_emit = 0.7
    _, per = R.window_entropy(3, h_emit, 5, 12, 400)
    rate = R.entropy_rate(3, h_emit, 5, 12)
    assert per[-1] == pytest.approx(rate, abs=1e-9)
    assert rate == pytest.approx(h_emit + (math.log(2) + math.log(8)) / 8.5)
    assert per[0] > per[1] > rate  # a window's first tokens are the least predictable


def test_samples_follow_the_source():
    data = load_dataset("regime-switch", options={"n": 1024, "length": 64, "seed": 3})
    m = data.info.meta
    x = data.raw("train").numpy()
    runs = R.run_lengths(x.reshape(-1, 64 * m["stream_rows"]), m["symbols"])
    assert runs.min() >= m["d_min"] and runs.max() <= m["d_max"]
    assert runs.mean() == pytest.approx((m["d_min"] + m["d_max"]) / 2, abs=1.5)
    # the Bayes-optimal NLL of the rows is the exact floor, up to Monte Carlo error
    emit = R.emissions(m["regimes"], m["symbols"], m["seed"])
    nll = R.exact_nll(x, emit, m["d_min"], m["d_max"]) / 64
    assert abs(nll.mean() - m["window_nll_floor"]) < 4 * nll.std() / math.sqrt(len(nll))
    assert m["window_nll_floor"] > m["entropy_rate"]
    # consecutive rows continue one stream: a junction is a switch only as often as inside
    joins = x[1::2, 0] // m["symbols"] != x[0::2, -1] // m["symbols"]
    assert joins.mean() < 0.1
    occupancy = np.bincount((x // m["symbols"]).ravel(), minlength=m["regimes"]) / x.size
    assert np.abs(occupancy - 1 / m["regimes"]).max() < 0.05
