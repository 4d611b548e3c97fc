"""Masks have the stated distributions, compose, and fail clearly."""

import pytest
import torch

from gm import masks
from gm.errors import GMError


def sample(spec, n, shape, modality="image", seed=0):
    return masks.parse(spec).sample(
        n, shape, modality=modality, generator=torch.Generator().manual_seed(seed)
    )


@pytest.mark.parametrize("p", [0.0, 0.3, 0.6, 0.9, 1.0])
def test_mcar_drops_each_value_with_probability_p(p):
    m = sample(f"mcar:{p}", 4000, (50,), modality="vector")
    # 200 000 Bernoulli(p) draws: the rate is within 5 standard errors of p
    se = (p * (1 - p) / m.numel()) ** 0.5
    assert abs(m.float().mean().item() - p) <= 5 * se + 1e-12
    # independent across positions: every column has about the same rate
    assert (m.float().mean(0) - p).abs().max() < 0.04


def test_mcar_on_images_is_per_pixel_and_shared_by_channels():
    m = sample("mcar:0.5", 500, (3, 8, 8))
    assert torch.equal(m[:, 0], m[:, 1]) and torch.equal(m[:, 0], m[:, 2])
    assert abs(m.float().mean().item() - 0.5) < 0.02


@pytest.mark.parametrize("k,h,w", [(3, 8, 8), (4, 8, 8), (2, 5, 7), (8, 8, 8)])
def test_mar_is_one_square_with_corner_uniform_inside_the_border(k, h, w):
    n = 6000
    m = sample(f"mar:{k}", n, (1, h, w))[:, 0]
    assert (m.sum((1, 2)) == k * k).all()  # exactly one k x k square per image
    rows, cols = m.any(2), m.any(1)
    top = rows.float().argmax(1)
    left = cols.float().argmax(1)
    assert (rows.sum(1) == k).all() and (cols.sum(1) == k).all()  # contiguous k rows/cols
    for i in range(20):  # the square is where its rows and columns say
        assert m[i, top[i] : top[i] + k, left[i] : left[i] + k].all()
    # the corner takes every position that keeps the square inside, and no other, uniformly
    assert set(top.tolist()) == set(range(h - k + 1))
    assert set(left.tolist()) == set(range(w - k + 1))
    counts = torch.bincount(top, minlength=h - k + 1).float()
    assert (counts / n - 1 / (h - k + 1)).abs().max() < 0.05


def test_bottom_half_and_all():
    m = sample("bottom-half", 3, (1, 7, 4))
    assert m[:, :, 3:].all() and not m[:, :, :3].any()
    assert sample("all", 2, (5,), modality="vector").all()
    assert not sample("nan", 2, (5,), modality="vector").any()


def test_combination_is_the_union():
    a = sample("mcar:0.3", 3000, (1, 8, 8), seed=1)
    both = sample("mcar:0.3+mar:3", 3000, (1, 8, 8), seed=1)
    assert (both >= a).all()  # the MCAR part is drawn first from the same generator
    rate = both.float().mean().item()
    expected = masks.parse("mcar:0.3+mar:3").expected_rate((1, 8, 8))
    assert abs(expected - (1 - 0.7 * (1 - 9 / 64))) < 1e-12
    assert abs(rate - expected) < 0.01


def test_seeded_masks_are_reproducible():
    assert torch.equal(
        sample("mcar:0.5+mar:2", 10, (1, 6, 6), seed=3),
        sample("mcar:0.5+mar:2", 10, (1, 6, 6), seed=3),
    )


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "mcar",
        "mcar:1.5",
        "mcar:x",
        "mar:0",
        "mar:2.5",
        "square:3",
        "mcar:0.3+",
        "bottom-half:2",
    ],
)
def test_bad_specs_are_clear_errors(bad):
    with pytest.raises(GMError, match="mask|MCAR|square"):
        masks.parse(bad)


def test_vector_blocks_and_halves_and_oversized_ones_are_errors():
    gen = torch.Generator().manual_seed(0)
    block = masks.parse("mar:3").sample(500, (10,), modality="vector", generator=gen)
    assert (block.sum(1) == 3).all()
    starts = block.float().argmax(1)
    for row, start in zip(block, starts, strict=True):  # consecutive entries
        assert row[start : start + 3].all()
    assert set(starts.tolist()) == set(range(8))  # every start 0..D-K is drawn
    half = masks.parse("bottom-half").sample(2, (5,), modality="vector")
    assert torch.equal(half[0], torch.tensor([False, False, True, True, True]))
    assert masks.parse("mar:3").expected_rate((10,), "vector") == pytest.approx(0.3)
    assert masks.parse("bottom-half").expected_rate((5,), "vector") == pytest.approx(0.6)
    assert masks.parse("mar:10").sample(2, (10,), modality="vector").all()  # it just fits
    assert masks.parse("all+mcar:0.1").expected_rate((10,), "vector") == 1.0
    with pytest.raises(GMError, match="does not fit"):
        masks.parse("mar:11").sample(2, (10,), modality="vector")
    with pytest.raises(GMError, match="does not fit"):
        masks.parse("mar:9").sample(2, (1, 8, 8), modality="image")


def test_split_known_keeps_data_nans_out_of_both_sets():
    x = torch.tensor([[0.1, float("nan"), 0.3, float("nan")]])
    missing = torch.tensor([[True, True, False, False]])
    x0, known, target = masks.split_known(x, missing)
    assert torch.equal(known, torch.tensor([[0.0, 0.0, 1.0, 0.0]]))
    assert torch.equal(target, torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    assert not torch.isnan(x0).any()
