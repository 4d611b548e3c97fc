"""What walkback and NET share (gm_walkback.shared): the last step's mean as a sample, and
bits/dim from nats against known values."""

import math

import pytest
import torch

from gm_walkback import chains, schedules, shared
from gm_walkback.operators import GaussianLinear

WALK = schedules.doubling(heat=3).reverse(extra_steps=2)  # 5 steps


def _op():
    op = GaussianLinear((2,))
    op.set_linear(0.5, 1.0, 0.04)  # N(0.5 s + 1, 0.04 T)
    return op


def test_without_mean_the_chain_is_the_plain_chain_draw_for_draw():
    op, s0 = _op(), torch.randn(64, 2)
    torch.manual_seed(1)
    want, want_frames = chains.run_chain(op, s0, WALK, every=2)
    torch.manual_seed(1)
    got, frames = shared.sample_chain(op, s0, WALK, every=2, mean=False)
    assert torch.equal(got, want) and len(frames) == len(want_frames)


def test_with_mean_the_last_step_returns_its_mean_and_the_last_frame_is_it():
    op, s0 = _op(), torch.randn(64, 2)
    torch.manual_seed(1)
    before, _ = chains.run_chain(op, s0, WALK.prefix(len(WALK) - 1))
    torch.manual_seed(1)
    got, frames = shared.sample_chain(op, s0, WALK, every=2, mean=True)
    torch.testing.assert_close(got, 0.5 * before + 1.0)  # the last step (T = 1): its mean
    assert torch.equal(frames[-1], got)
    # 0, 2, 4 of the first 4 steps, then the mean: one more frame than the 4-step chain's
    assert len(frames) == len(chains.run_chain(op, s0, WALK.prefix(4), every=2)[1]) + 1
    torch.manual_seed(1)
    drawn, _ = shared.sample_chain(op, s0, WALK, mean=False)
    assert not torch.allclose(drawn, got)  # a draw is not the mean


def test_bits_per_dim_of_known_values():
    # a uniform density on [0, 1]^D (log-density 0) is 8 bits a dimension of an 8-bit image
    dims = 64
    assert shared.bits_per_dim(0.0, dims, shared.cell_nats((1, 8, 8))) == pytest.approx(8.0)
    assert shared.bits_per_dim(-dims * math.log(2), dims, 0.0) == pytest.approx(1.0)
    rows = shared.likelihood_metrics(
        -dims * math.log(2), -2 * dims * math.log(2), trajectories=3, examples=5,
        walk_steps=7, image_dims=dims, cell=0.0,
    )  # fmt: skip
    assert (rows["bits_per_dim"], rows["bound_bits_per_dim"]) == pytest.approx((1.0, 2.0))
    vector = shared.likelihood_metrics(
        -1.0, -2.0, trajectories=3, examples=5, walk_steps=7, image_dims=None, cell=0.0
    )
    assert "bits_per_dim" not in vector and vector["lower_bound"] == -2.0


def test_dequantised_values_stay_in_their_8_bit_cell():
    k = torch.arange(256, dtype=torch.float32).repeat(40)
    x = shared.dequantise(k / 255)
    assert ((x * 256).floor() == k).all() and x.std() > 0
