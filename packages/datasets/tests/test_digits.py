import numpy as np
import pytest
import torch

from gm.data import load_dataset

sklearn = pytest.importorskip("sklearn")


def test_digits_shapes_values_and_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_dataset("digits")
    assert data.info.modality == "image" and data.info.shape == (1, 8, 8)
    train, test = data.raw("train"), data.raw("test")
    assert (
        train.dtype == torch.uint8
        and train.shape == (1257, 1, 8, 8)
        and test.shape == (540, 1, 8, 8)
    )
    assert int(train.min()) == 0 and int(train.max()) == 255
    # the split is exactly sklearn's train_test_split(test_size=540, random_state=0)
    bunch = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        bunch.data, bunch.target, test_size=540, random_state=0
    )
    assert np.array_equal(np.rint(x_te * 255 / 16), test.reshape(-1, 64).numpy())
    assert np.array_equal(y_tr, data.labels["train"].numpy())
    # decoding gives v/16 within the uint8 rounding
    assert torch.allclose(
        data.tensor("train").reshape(-1, 64).double(),
        torch.from_numpy(x_tr / 16),
        atol=1 / 510 + 1e-9,
    )


def test_digits_options():
    data = load_dataset("digits", options={"test_size": "100", "split_seed": "3"})
    assert len(data.raw("test")) == 100 and len(data.raw("train")) == 1697
