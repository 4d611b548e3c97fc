"""The energy distance (V-statistic) against known values (the toys' measure)."""

import torch

from gm_walkback import shared


def test_energy_distance_known_values():
    a = torch.randn(50, 2)
    assert abs(shared.energy_distance(a, a)) < 1e-9  # a sample against itself: exactly 0
    # two point masses at distance 3: 2 * 3 - 0 - 0
    x, y = torch.zeros(5, 2), torch.tensor([[3.0, 0.0]]).repeat(7, 1)
    assert abs(shared.energy_distance(x, y) - 6.0) < 1e-9
    # {0, 1} against {0}: 2 * 0.5 - 0.5 - 0 = 0.5
    assert abs(shared.energy_distance(torch.tensor([[0.0], [1.0]]), torch.zeros(3, 1)) - 0.5) < 1e-9
