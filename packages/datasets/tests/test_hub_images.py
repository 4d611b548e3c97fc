"""Hub image datasets, loaded from tiny parquet files in the Hub's exact layout and schema."""

import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch

from gm.data import load_dataset
from gm.errors import GMError
from gm_datasets import availability, fixtures
from gm_datasets.images import rgb_to_grey


def _decoded(path, column="image"):
    """The images of a parquet file decoded independently with pyarrow + Pillow."""
    import io

    import pyarrow.parquet as pq
    from PIL import Image

    table = pq.read_table(path)
    return [
        np.asarray(Image.open(io.BytesIO(v["bytes"]))) for v in table.column(column).to_pylist()
    ]


def test_mnist_from_data_dir(tmp_path):
    fixtures.write_mnist(tmp_path / "data" / "mnist", n_train=30, n_test=10)
    data = load_dataset("mnist", str(tmp_path / "data"))
    assert data.info.modality == "image" and data.info.shape == (1, 28, 28)
    x = data.raw("train")
    assert x.dtype == torch.uint8 and x.shape == (30, 1, 28, 28) and len(data.raw("test")) == 10
    src = tmp_path / "data" / "mnist" / "mnist" / "train-00000-of-00001.parquet"
    assert np.array_equal(np.stack(_decoded(src)), x[:, 0].numpy())
    import pyarrow.parquet as pq

    assert data.labels["train"].tolist() == pq.read_table(src).column("label").to_pylist()
    assert float(data.tensor("train").min()) >= 0 and float(data.tensor("train").max()) <= 1


def test_mnist_valid_split_and_cache_reuse(tmp_path):
    fixtures.write_mnist(tmp_path / "mnist", n_train=30, n_test=10)
    first = load_dataset("mnist", options={"source_dir": str(tmp_path / "mnist")})
    shutil.rmtree(tmp_path / "mnist")  # the cache alone must now suffice
    assert availability.mnist(None)
    data = load_dataset("mnist", options={"valid_size": "10"})
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 20, "valid": 10, "test": 10}
    assert torch.equal(data.raw("valid"), first.raw("train")[20:])
    assert torch.equal(data.labels["valid"], first.labels["train"][20:])
    with pytest.raises(GMError, match="valid_size"):
        load_dataset("mnist", options={"valid_size": "30"})


def test_cifar10_img_column(tmp_path):
    fixtures.write_cifar10(tmp_path / "data" / "cifar10")
    data = load_dataset("cifar10", str(tmp_path / "data"))
    assert (
        data.info.shape == (3, 32, 32)
        and len(data.raw("train")) == 20
        and len(data.raw("test")) == 10
    )
    src = tmp_path / "data" / "cifar10" / "plain_text" / "test-00000-of-00001.parquet"
    assert np.array_equal(
        np.stack(_decoded(src, "img")).transpose(0, 3, 1, 2), data.raw("test").numpy()
    )


def test_svhn_reads_cropped_digits_only_and_extra_on_request(tmp_path):
    fixtures.write_svhn(tmp_path / "data" / "svhn", {"train": 20, "test": 8, "extra": 6})
    data = load_dataset("svhn", str(tmp_path / "data"))
    assert set(data.splits) == {"train", "test"} and data.info.shape == (3, 32, 32)
    both = load_dataset("svhn", str(tmp_path / "data"), {"extra": "true"})
    assert len(both.raw("extra")) == 6 and torch.equal(both.raw("train"), data.raw("train"))
    grey = load_dataset("svhn-gray", str(tmp_path / "data"))
    assert grey.info.shape == (1, 32, 32) and grey.raw("train").dtype == torch.uint8
    from PIL import Image

    rgb = data.raw("train")[0].permute(1, 2, 0).numpy()
    assert np.array_equal(
        np.asarray(Image.fromarray(rgb).convert("L")), grey.raw("train")[0, 0].numpy()
    )


def test_grey_conversion_matches_pillow():
    from PIL import Image

    x = np.random.default_rng(0).integers(0, 256, (5, 3, 9, 7), dtype=np.uint8)
    pil = np.stack([np.asarray(Image.fromarray(a.transpose(1, 2, 0)).convert("L")) for a in x])[
        :, None
    ]
    assert np.array_equal(rgb_to_grey(x), pil)


def test_celeba_vw_preprocessing_and_official_partition(tmp_path):
    numbers = [1, 2, 162_770, 162_771, 182_637, 182_638, 202_599]
    fixtures.write_celeba(tmp_path / "data" / "celeba", numbers)
    data = load_dataset("celeba", str(tmp_path / "data"))
    assert data.info.shape == (3, 64, 64)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 3, "valid": 2, "test": 2}
    assert data.info.meta["splits"] == "official partition by file number"
    # the VW recipe, done by hand on the first image: 178x218 -> 64x78 -> centre crop 64
    from PIL import Image

    src = tmp_path / "data" / "celeba" / "data" / "train-00000-of-00001.parquet"
    img = Image.fromarray(_decoded(src)[0]).resize((64, 78), Image.BILINEAR).crop((0, 7, 64, 71))
    assert np.array_equal(np.asarray(img).transpose(2, 0, 1), data.raw("train")[0].numpy())
    small = load_dataset("celeba", str(tmp_path / "data"), {"size": "32"})
    assert small.info.shape == (3, 32, 32)


def test_celeba_source_splits_are_used(tmp_path):
    fixtures.write_celeba(
        tmp_path / "celeba", [], splits={"train": [1, 2, 3], "valid": [4], "test": [5, 6]}
    )
    data = load_dataset("celeba", options={"source_dir": str(tmp_path / "celeba")})
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 3, "valid": 1, "test": 2}
    assert data.info.meta["splits"] == "source splits"


def test_truncated_parquet_names_the_file(tmp_path):
    folder = fixtures.write_mnist(tmp_path / "mnist", n_train=30, n_test=10)
    bad = folder / "mnist" / "test-00000-of-00001.parquet"
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(GMError, match="test-00000-of-00001.parquet is not a readable parquet file"):
        load_dataset("mnist", options={"source_dir": str(folder)})


def test_wrong_image_size_is_a_clear_error(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        fixtures.write_image_parquet(
            tmp_path / "mnist" / f"{split}-0.parquet",
            fixtures.random_images(rng, 3, (32, 32)),
            [1, 2, 3],
        )
    with pytest.raises(
        GMError, match=r"(train|test)-0.parquet row 0 decodes to an image of shape \(32, 32\)"
    ):
        load_dataset("mnist", options={"source_dir": str(tmp_path / "mnist")})


def test_hub_snapshot_in_the_hub_cache_is_found_offline(tmp_path):
    snap = tmp_path / "hf-hub" / "datasets--ylecun--mnist" / "snapshots" / "0123abc"
    fixtures.write_mnist(snap, n_train=4, n_test=2)
    assert availability.mnist(None)
    assert len(load_dataset("mnist").raw("train")) == 4


@pytest.mark.slow  # 4 s (durations run, 1 thread, load 4-7)
def test_missing_offline_dataset_one_line_exit_2(tmp_path):
    from conftest import gm

    assert not availability.cifar10(str(tmp_path))
    r = gm("train", "gaussian", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--steps", "1")
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("gm: error: dataset 'cifar10' is not available offline")
    assert (
        "hf download uoft-cs/cifar10 --repo-type dataset" in line and f"{tmp_path}/cifar10" in line
    )
    assert "Traceback" not in r.stderr


def test_list_datasets_json_shows_availability(tmp_path):
    from conftest import gm

    r = gm("list-datasets", "--json", "--data-dir", str(tmp_path))
    rows = {d["name"]: d for d in json.loads(r.stdout)}
    has_sklearn = importlib.util.find_spec("sklearn") is not None
    assert rows["mnist"]["offline"] is False and rows["digits"]["offline"] is has_sklearn
    assert (
        rows["celeba"]["licence"].startswith("non-commercial")
        and rows["mnist"]["modality"] == "image"
    )
    assert rows["iam-ondb"]["modality"] == "strokes" and rows["ptb-char"]["splits"] == [
        "train",
        "valid",
        "test",
    ]
    fixtures.write_mnist(tmp_path / "mnist", n_train=2, n_test=2)
    rows = {
        d["name"]: d
        for d in json.loads(gm("list-datasets", "--json", "--data-dir", str(tmp_path)).stdout)
    }
    assert rows["mnist"]["offline"] is True and rows["sequential-mnist"]["offline"] is True


def test_celeba_partition_out_of_order_and_without_file_names(tmp_path):
    fixtures.write_celeba(tmp_path / "a", [182_638, 1, 162_771, 2])
    data = load_dataset("celeba", options={"source_dir": str(tmp_path / "a")})
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 2, "valid": 1, "test": 1}
    fixtures.write_celeba(tmp_path / "b", list(range(1, 21)), with_paths=False, seed=1)
    data = load_dataset("celeba", options={"source_dir": str(tmp_path / "b")})
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 16, "valid": 2, "test": 2}
    assert data.info.meta["splits"].startswith("seeded 80/10/10")


def test_online_download_goes_through_the_hub_cache(tmp_path, monkeypatch):
    """Online, a missing source is fetched with snapshot_download (stood in for here: no
    network) and then read by the same local-file code; a failed download is one line."""
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, *, repo_type, revision, cache_dir, allow_patterns):
        calls.append((repo_id, repo_type, revision, allow_patterns))
        snap = tmp_path / "hf-hub" / "datasets--ylecun--mnist" / "snapshots" / "abc"
        fixtures.write_mnist(snap, n_train=5, n_test=3)
        return str(snap)

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    data = load_dataset("mnist")
    assert calls == [("ylecun/mnist", "dataset", None, ["mnist/*"])]
    assert len(data.raw("train")) == 5 and availability.mnist(None)

    def no_network(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    with pytest.raises(
        GMError, match=r"'cifar10' is not available offline \(download failed: ConnectionError\)"
    ):
        load_dataset("cifar10")


def test_celeba_from_the_original_jpeg_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "data" / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in (1, 162_771, 202_599, 3):
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(
            folder / f"{k:06d}.jpg"
        )
    data = load_dataset("celeba", str(tmp_path / "data"))
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 2, "valid": 1, "test": 1}
    img = (
        Image.open(folder / "000003.jpg")
        .convert("RGB")
        .resize((64, 78), Image.BILINEAR)
        .crop((0, 7, 64, 71))
    )
    assert np.array_equal(np.asarray(img).transpose(2, 0, 1), data.raw("train")[1].numpy())
