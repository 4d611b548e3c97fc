"""Pictures a person can read: data in grey under 2-D samples, a frame and legend, small
images upscaled, labelled rows."""

import numpy as np
import torch

from gm import pictures
from gm.data import DataInfo

BLUE, GREY = (31, 90, 200), (190, 190, 190)


def count(img, colour):
    return int((np.asarray(img) == colour).all(-1).sum())


def test_scatter_draws_the_data_under_the_samples_from_the_context():
    samples = torch.randn(200, 2)
    data = torch.randn(300, 2) * 0.3 + 3
    alone = pictures.scatter(samples)
    assert count(alone, GREY) < 20 and count(alone, BLUE) > 200  # (text edges can be grey)
    with pictures.context(reference=data, title="walkback on swiss-roll"):
        img = pictures.auto(samples, DataInfo("x", "vector", (2,)))
    assert count(img, GREY) > 300  # the data is there, in grey
    assert img.size == (512, 512)


def test_scatter_keeps_points_inside_the_frame():
    img = np.asarray(pictures.scatter(torch.randn(2000, 2) * 5))
    left_margin = img[:, :40]
    assert not (left_margin == BLUE).all(-1).any()


def test_small_images_are_upscaled_and_rows_labelled():
    tiles = torch.rand(6, 1, 8, 8)
    info = DataInfo("d", "image", (1, 8, 8))
    img = pictures.auto(tiles, info)
    assert img.height >= 2 * 8 * 12  # 8x8 tiles drawn at 12x
    plain = pictures.image_grid(tiles, nrow=3, scale=4)
    named = pictures.image_grid(tiles, nrow=3, scale=4, row_labels=["masked", "filled"])
    assert named.height == plain.height and named.width > plain.width + 30
    arr = np.asarray(named)
    assert (arr[:, : named.width - plain.width] < 128).any()  # text drawn in the label column


def test_tiles_of_any_size_come_out_about_a_tile_wide():
    assert [pictures.scale_for(s) for s in (8, 28, 32, 64, 96, 200)] == [12, 3, 3, 1, 1, 1]
    info = DataInfo("mnist", "image", (1, 28, 28))
    assert pictures.auto(torch.rand(4, 1, 28, 28), info).width >= 2 * 28 * 3


def test_row_labels_repeat_over_blocks_and_a_title_sits_on_top():
    tiles = torch.zeros(12, 1, 8, 8)  # two blocks of (truth, masked, imputed) rows
    labels = ["truth", "masked", "imputed"]
    grid = pictures.image_grid(tiles, nrow=2, scale=4, row_labels=labels)
    once = pictures.image_grid(tiles[:6], nrow=2, scale=4, row_labels=labels)
    arr, top = np.asarray(grid), np.asarray(once)
    label_w = grid.width - pictures.image_grid(tiles, nrow=2, scale=4).width
    half = top.shape[0] - 4  # the second block's labels drawn like the first's
    assert (arr[half:, :label_w] < 128).any() and (arr[:half, :label_w] < 128).any()
    white = torch.ones(12, 1, 8, 8)
    with pictures.context(title="walkback: 12 samples"):
        titled = pictures.auto(white, DataInfo("d", "image", (1, 8, 8)))
    bare = pictures.auto(white, DataInfo("d", "image", (1, 8, 8)))
    assert titled.height == bare.height + 24
    assert (np.asarray(titled)[:24] < 128).any() and not (np.asarray(bare)[:24] < 128).any()
