"""gm.data's affine record: samples and log-densities back in the data's own units."""

import math

import pytest
import torch

from gm.data import DataInfo, affine, in_data_units, log_jacobian, to_data_units


def _info(shape, scale, shift=0.0):
    return DataInfo("x", "vector", shape, meta={"affine": {"scale": scale, "shift": shift}})


def test_samples_tuples_and_frames_map_back_and_the_rest_passes():
    info = _info((2,), [10.0, 0.5], [1.0, -3.0])
    s = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    assert torch.equal(to_data_units(s, info), torch.tensor([[1.0, -3.0], [11.0, -2.0]]))
    final, frames = to_data_units((s, torch.stack([s, s])), info)  # (final, chain frames)
    assert torch.equal(frames[1], final)
    tokens = torch.tensor([[1, 2]])
    assert to_data_units(tokens, info) is tokens  # integers are not values to rescale
    odd = torch.ones(3, 5)
    assert to_data_units(odd, info) is odd  # not this data's shape
    plain = DataInfo("y", "vector", (2,))
    assert to_data_units(s, plain) is s and log_jacobian(plain) == 0.0


def test_log_jacobian_broadcasts_a_scalar_over_the_example():
    assert log_jacobian(_info((1, 4, 4), 255.0)) == pytest.approx(-16 * math.log(255))
    assert log_jacobian(_info((2,), [10.0, -0.5])) == pytest.approx(-math.log(10) - math.log(0.5))


def test_in_data_units_signs_and_untouched_metrics():
    info = _info((2,), [2.0, 2.0])
    lj = -2 * math.log(2)
    m = {"log_likelihood": -1.0, "nll": 1.0, "bits_per_dim": 3.0}
    out = in_data_units(m, info, {"log_likelihood": 1.0, "nll": -1.0})
    assert out["log_likelihood"] == pytest.approx(-1.0 + lj)
    assert out["nll"] == pytest.approx(1.0 - lj)
    assert out["bits_per_dim"] == 3.0 and out["data_log_jacobian"] == pytest.approx(lj)
    assert in_data_units(m, info, {}) == m  # nothing declared: nothing said
    assert in_data_units(m, DataInfo("y", "vector", (2,)), {"nll": -1.0}) == m


def test_shift_defaults_to_zero():
    info = DataInfo("x", "vector", (2,), meta={"affine": {"scale": [3.0, 4.0]}})
    s = torch.tensor([[1.0, 1.0]])
    assert torch.equal(to_data_units(s, info), torch.tensor([[3.0, 4.0]]))
    assert torch.equal(affine(info)[1], torch.zeros(2, dtype=torch.float64))
