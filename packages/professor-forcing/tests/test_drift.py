"""The drift check of gm evaluate: stationary free runs read about 1, compounding ones
well above; its statistics on known answers."""

import math

import pytest
import torch

from gm.build import resolve
from gm.data import DataInfo, Dataset
from gm_professor_forcing import evaluation as E
from gm_professor_forcing.trainers import EvaluateOptions


def test_w1_of_shifted_and_scaled_normals():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200_000, generator=g)
    assert E.quantile_w1(a, a + 0.7) == pytest.approx(0.7, abs=1e-6)
    # W1(N(0,1), N(0,s^2)) = |s - 1| E|Z| = |s - 1| sqrt(2/pi)
    assert E.quantile_w1(a, 3 * a) == pytest.approx(2 * math.sqrt(2 / math.pi), rel=0.02)


def test_statistic_error_of_real_windows_counts_values_and_increments():
    g = torch.Generator().manual_seed(1)
    ref = torch.randn(4000, 16, 1, generator=g)
    same = torch.randn(4000, 16, 1, generator=g)
    assert E.statistic_error(same, ref, None) < 0.03
    # a shift moves the values' law by 0.5 sd and leaves the increments' alone
    assert E.statistic_error(same + 0.5, ref, None) == pytest.approx(0.5, abs=0.04)
    # a random walk keeps the values' spread near but its increments are not the data's
    walk = torch.randn(4000, 16, 1, generator=g).cumsum(1) * 0.3
    assert E.statistic_error(walk, ref, None) > 0.5


def test_statistic_error_is_in_units_of_the_data_and_2grams_for_tokens():
    g = torch.Generator().manual_seed(2)
    ref = torch.randn(2000, 16, 2, generator=g)
    other = torch.randn(2000, 16, 2, generator=g) * 1.3 + 0.2
    base = E.statistic_error(other, ref, None)
    assert E.statistic_error(7 * other, 7 * ref, None) == pytest.approx(base, rel=1e-6)
    assert base > 0.2  # two features' shifts and spreads add up
    tokens = torch.randint(0, 3, (200, 10), generator=g)
    more = torch.randint(0, 3, (200, 10), generator=g)
    assert E.statistic_error(tokens, more, 3) == E.ngram_js(tokens, more, 2, 3)


def _drifting(trainer, strength: float):
    """The GRU's state rises from 0 towards 1 (h_t = 1 - 0.97^t, whatever the input); the
    readout turns that into a law that changes with time, ``strength`` 0: none."""
    gen = trainer.generator
    hidden = gen.hidden_size
    with torch.no_grad():
        for p in gen.parameters():
            p.zero_()
        gru = gen.gru
        gru.bias_ih_l0[hidden : 2 * hidden] = math.log(0.97 / 0.03)  # update gate z = 0.97
        gru.bias_ih_l0[2 * hidden :] = 5.0  # candidate n = tanh(5) ~ 1
        gen.readout.weight[0] = strength  # token 0's logit / the mean: strength * sum(h)
    return trainer


def _trainer(info, hidden=4):
    cls, cfg = resolve("teacher-forcing", info, overrides={"hidden": hidden, "embed": 4})
    return cls(cfg, info)


@pytest.mark.parametrize("vocab", [4, None])
def test_a_stationary_model_reads_no_drift_and_a_drifting_one_does(vocab):
    torch.manual_seed(0)
    length = 8
    if vocab:  # the data: i.i.d. uniform tokens, the zero readout's law exactly
        info = DataInfo("iid", "sequence", (length,), vocab_size=vocab)
        rows = {s: torch.randint(0, vocab, (n, length)) for s, n in (("train", 512), ("test", 512))}
    else:  # i.i.d. N(0, 1) values, the zero readout's law exactly
        info = DataInfo("iid", "sequence", (length, 1))
        rows = {s: torch.randn(n, length, 1) for s, n in (("train", 512), ("test", 512))}
    data = Dataset(info, rows)
    options = EvaluateOptions(n=8, drift_runs=256)
    still = _drifting(_trainer(info), 0.0).evaluate(data, "test", options)
    assert still["drift_horizon"] == 16 * length
    # noise over noise (a ratio of two chi-square-like errors: wide), both near the floor
    assert 1 / 4 < still["drift"] < 4
    assert max(still["drift_past"], still["drift_within"]) < 5 * still["drift_floor"]
    moving = _drifting(_trainer(info), 1.0).evaluate(data, "test", options)
    assert moving["drift"] > 5
    assert moving["drift_past"] > 20 * moving["drift_floor"]


def test_drift_horizon_must_leave_room_past_the_training_length():
    from gm.errors import GMError

    info = DataInfo("iid", "sequence", (8,), vocab_size=3)
    data = Dataset(info, {"test": torch.randint(0, 3, (16, 8))})
    with pytest.raises(GMError, match="drift-horizon"):
        _trainer(info).evaluate(data, "test", EvaluateOptions(n=4, drift_horizon=15))
    with pytest.raises(GMError, match="drift-runs"):
        _trainer(info).evaluate(data, "test", EvaluateOptions(n=4, drift_runs=0))
    # the smallest allowed: 2 L steps, one run
    m = _trainer(info).evaluate(data, "test", EvaluateOptions(n=4, drift_horizon=16, drift_runs=1))
    assert m["drift_horizon"] == 16
