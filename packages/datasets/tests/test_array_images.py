"""array:FILE of images: shape= (or a 3-/4-D .npy) gives image modality; values are kept
(no per-column scaling), their range detected and stated."""

import numpy as np
import pytest

from gm.data import load_dataset

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 256, (10, 784)).astype(np.float64)
PIXELS[:, 0] = 0  # a constant column: min-max would have mapped it, images keep it


def _load(tmp_path, a, **options):
    np.save(tmp_path / "x.npy", a)
    return load_dataset(f"array:{tmp_path / 'x.npy'}", options={"test_fraction": "0", **options})


def test_0_255_rows_with_a_shape_are_uint8_images_undone_by_255(tmp_path, capsys):
    data = _load(tmp_path, PIXELS, shape="1x28x28")
    assert data.info.modality == "image" and data.info.shape == (1, 28, 28)
    x = data.raw("train")
    assert x.dtype.is_floating_point is False
    assert np.array_equal(x.numpy().reshape(10, 784), PIXELS.astype(np.uint8))
    assert data.info.meta["affine"] == {"scale": 255.0, "shift": 0.0}
    assert "values 0-255" in data.info.meta["pixels"]
    assert "values 0-255 (stored as uint8)" in capsys.readouterr().err  # stated


def test_hxw_and_square_shapes(tmp_path):
    assert _load(tmp_path, PIXELS, shape="28x28").info.shape == (1, 28, 28)
    assert _load(tmp_path, PIXELS, shape="square").info.shape == (1, 28, 28)
    rgb = RNG.integers(0, 256, (6, 3 * 16 * 16)).astype(float)
    assert _load(tmp_path, rgb, shape="square").info.shape == (3, 16, 16)
    grey = PIXELS.reshape(10, 28, 28)  # (N, H, W): images without being asked
    data = _load(tmp_path, grey)
    assert data.info.shape == (1, 28, 28) and np.array_equal(data.raw("train")[:, 0].numpy(), grey)


def test_0_1_values_are_kept_as_they_are(tmp_path):
    levels = PIXELS / 255.0  # exact multiples of 1/255: uint8 loses nothing
    data = _load(tmp_path, levels, shape="28x28")
    assert "affine" not in data.info.meta and "values 0-1" in data.info.meta["pixels"]
    assert np.allclose(data.tensor("train").numpy().reshape(10, 784), levels, atol=1e-7)
    smooth = RNG.random((10, 784))  # not on the 256 levels: float32 as given
    data = _load(tmp_path, smooth, shape="28x28")
    assert data.raw("train").dtype.is_floating_point
    assert np.allclose(data.raw("train").numpy().reshape(10, 784), smooth, atol=1e-7)


def test_fractional_0_255_values_are_divided_and_recorded(tmp_path):
    a = PIXELS + 0.5 * (PIXELS < 255)
    data = _load(tmp_path, a, shape="28x28")
    x = data.raw("train").numpy().reshape(10, 784)
    assert np.allclose(x * 255.0, a, atol=1e-4) and data.info.meta["affine"]["scale"] == 255.0


def test_stated_range_overrides_detection(tmp_path):
    dark = np.minimum(PIXELS, 1.0)  # 0/1 values of a 0-255 image: detection would say 0-1
    data = _load(tmp_path, dark, shape="28x28", pixels="0-255")
    assert data.info.meta["affine"]["scale"] == 255.0
    assert np.array_equal(data.raw("train").numpy().reshape(10, 784), dark.astype(np.uint8))


def test_vectors_still_min_max_scaled_with_the_affine_recorded(tmp_path):
    a = RNG.normal(5.0, 3.0, (20, 3))
    data = _load(tmp_path, a)
    x = data.raw("train").double().numpy()
    aff = data.info.meta["affine"]
    assert x.min() == pytest.approx(0) and x.max() == pytest.approx(1)
    assert np.allclose(x * np.array(aff["scale"]) + np.array(aff["shift"]), a, atol=1e-5)


def test_channels_first_npy_and_range_edges(tmp_path):
    import torch

    rgb = RNG.integers(0, 256, (4, 3, 5, 6)).astype(np.uint8)
    data = _load(tmp_path, rgb)
    assert data.info.shape == (3, 5, 6) and np.array_equal(data.raw("train").numpy(), rgb)
    levels = _load(tmp_path, PIXELS / 255.0, shape="28x28")
    assert levels.raw("train").dtype == torch.uint8  # 256 levels of 0-1: stored exactly
    two = np.minimum(PIXELS, 2.0)  # max 2: a dark 0-255 image, not 0-1
    assert _load(tmp_path, two, shape="28x28").info.meta["affine"]["scale"] == 255.0
    from gm.errors import GMError

    for bad in (PIXELS - 1.0, np.minimum(PIXELS + 0.5, 255.5)):  # below 0, above 255
        with pytest.raises(GMError, match="image arrays hold 0-255 or 0-1 values"):
            _load(tmp_path, bad, shape="28x28")


def test_split_edges_and_constant_columns(tmp_path):
    from gm.errors import GMError

    a = np.column_stack([RNG.normal(size=2), np.full(2, 7.0)])
    np.save(tmp_path / "two.npy", a)
    data = load_dataset(f"array:{tmp_path / 'two.npy'}")  # two rows: one train, one test
    assert len(data.raw("train")) == 1 and len(data.raw("test")) == 1
    assert data.info.meta["split"].startswith("RandomState(0)")
    big = np.column_stack([RNG.normal(size=20), np.full(20, 7.0)])
    data = _load(tmp_path, big)
    assert data.info.meta["affine"]["scale"][1] == 1.0  # a constant column adds no Jacobian
    assert data.raw("train")[:, 1].abs().max() == 0
    with pytest.raises(GMError, match=r"test_fraction must be in \[0, 1\)"):
        load_dataset(f"array:{tmp_path / 'two.npy'}", options={"test_fraction": "1"})
