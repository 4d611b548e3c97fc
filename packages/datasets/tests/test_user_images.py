"""images:DIR through the imagefolder builder, and an end-to-end `gm train` on it."""

import numpy as np
import pytest
import torch
from PIL import Image

from gm.data import load_dataset
from gm.errors import GMError


def _folder(root, n=12, size=(12, 10), mode="RGB", seed=0, sub=""):
    rng = np.random.default_rng(seed)
    (root / sub).mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    arrays = []
    for i in range(n):
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(a).save(root / sub / f"img{i:02d}.png")
        arrays.append(a)
    return arrays


def test_image_folder_native_size_and_seeded_split(tmp_path):
    arrays = _folder(tmp_path / "imgs", n=12)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image, not an image extension: ignored")
    data = load_dataset(f"images:{tmp_path / 'imgs'}", options={"test_fraction": "0.25"})
    assert (
        data.info.shape == (3, 10, 12)
        and len(data.raw("train")) == 9
        and len(data.raw("test")) == 3
    )
    perm = np.random.RandomState(0).permutation(12)
    expect = np.stack(arrays)[np.sort(perm[:3])].transpose(0, 3, 1, 2)
    assert np.array_equal(data.raw("test").numpy(), expect)
    assert data.raw("train").dtype == torch.uint8


def test_image_folder_resize_crop_grey_and_labels(tmp_path):
    _folder(tmp_path / "f", n=4, size=(20, 10), mode="L", sub="train/cat")
    _folder(tmp_path / "f", n=3, size=(16, 16), mode="L", sub="train/dog", seed=1)
    _folder(tmp_path / "f", n=2, size=(16, 16), mode="L", sub="test/dog", seed=2)
    with pytest.raises(GMError, match="have different sizes .* --data-option size=N"):
        load_dataset(f"images:{tmp_path / 'f'}")
    data = load_dataset(f"images:{tmp_path / 'f'}", options={"size": "8"})
    assert data.info.shape == (1, 8, 8)  # every image grey -> one channel
    assert len(data.raw("train")) == 7 and len(data.raw("test")) == 2
    assert data.labels["train"].tolist() == [0] * 4 + [1] * 3 and data.info.meta["classes"] == [
        "cat",
        "dog",
    ]
    # crop fit = Pillow's ImageOps.fit (centre crop to the aspect, then resize)
    from PIL import ImageOps

    img = Image.open(tmp_path / "f" / "train" / "cat" / "img00.png")
    assert np.array_equal(
        np.asarray(ImageOps.fit(img, (8, 8), Image.BILINEAR)), data.raw("train")[0, 0].numpy()
    )
    rgb = load_dataset(
        f"images:{tmp_path / 'f'}", options={"size": "8", "channels": "rgb", "fit": "stretch"}
    )
    assert rgb.info.shape == (3, 8, 8)


def test_non_image_in_folder_names_the_file(tmp_path):
    _folder(tmp_path / "imgs", n=3)
    (tmp_path / "imgs" / "broken.png").write_text("this is not a PNG")
    with pytest.raises(GMError, match=r"broken.png is not a readable image"):
        load_dataset(f"images:{tmp_path / 'imgs'}")


def test_changed_folder_is_decoded_again(tmp_path):
    _folder(tmp_path / "imgs", n=5)
    assert (
        len(
            load_dataset(f"images:{tmp_path / 'imgs'}", options={"test_fraction": "0"}).raw("train")
        )
        == 5
    )
    _folder(tmp_path / "imgs", n=7, seed=3)
    assert (
        len(
            load_dataset(f"images:{tmp_path / 'imgs'}", options={"test_fraction": "0"}).raw("train")
        )
        == 7
    )


def test_missing_folder(tmp_path):
    with pytest.raises(GMError, match="is not a folder of images"):
        load_dataset(f"images:{tmp_path / 'nope'}")


@pytest.mark.slow  # 12 s (durations run, 1 thread, load 4-7)
def test_train_gaussian_on_an_image_folder_end_to_end(tmp_path):
    """The always-available end-to-end check: the real CLI trains on images:DIR, then samples."""
    from conftest import gm

    _folder(tmp_path / "imgs", n=40, size=(6, 6), mode="L")
    run = tmp_path / "run"
    r = gm(
        "train",
        "gaussian",
        "--dataset",
        f"images:{tmp_path / 'imgs'}",
        "--steps",
        "5",
        "--set",
        "batch_size=8",
        "--out",
        str(run),
        "--device",
        "cpu",
    )
    assert r.returncode == 0, r.stderr
    assert (run / "metrics.jsonl").read_text().count("\n") >= 1
    r = gm("evaluate", str(run), "--json", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    import json

    assert np.isfinite(json.loads(r.stdout.strip().splitlines()[-1])["nll"])


def test_train_test_and_valid_subfolders_with_a_stray_file(tmp_path, capsys):
    """The README's layout: DIR/train/, DIR/test/ (and valid/) without class folders; a
    stray non-image file is skipped with one warning; decoding prints counts."""
    root = tmp_path / "d"
    train = _folder(root, n=6, size=(8, 8), mode="L", sub="train")
    valid = _folder(root, n=2, size=(8, 8), mode="L", sub="valid", seed=1)
    test = _folder(root, n=3, size=(8, 8), mode="L", sub="test", seed=2)
    (root / "train" / "notes.txt").write_text("a stray file")
    (root / "README.md").write_text("about these images")
    (root / ".DS_Store").write_bytes(b"\0")  # hidden: ignored without a word
    with pytest.warns(UserWarning, match=r"skipped 2 file\(s\) that are not images") as got:
        data = load_dataset(f"images:{root}", options={"test_fraction": "0.5"})
    assert "README.md" in str(got[0].message) and "train/notes.txt" in str(got[0].message)
    for split, arrays in (("train", train), ("valid", valid), ("test", test)):
        assert np.array_equal(data.raw(split).numpy(), np.stack(arrays)[:, None]), split
    assert data.labels == {}  # split folders are not classes
    err = capsys.readouterr().err
    assert "d/ train: 6/6" in err and "d/ test: 3/3" in err


def test_decoding_in_chunks_keeps_rows_in_order(tmp_path, monkeypatch):
    from gm_datasets import folders

    monkeypatch.setattr(folders, "CHUNK", 3)  # 10 images: chunks of 3, 3, 3, 1
    arrays = _folder(tmp_path / "imgs", n=10, size=(5, 4), sub="train/a")
    _folder(tmp_path / "imgs", n=1, size=(5, 4), sub="train/b", seed=4)
    data = load_dataset(f"images:{tmp_path / 'imgs'}", options={"test_fraction": "0"})
    assert np.array_equal(data.raw("train")[:10].numpy(), np.stack(arrays).transpose(0, 3, 1, 2))
    assert data.labels["train"].tolist() == [0] * 10 + [1]


@pytest.mark.parametrize(
    "layout, message",
    [
        (["train/a.png", "test/b.png", "c.png"], "also the image c.png beside them"),
        (["train/a.png", "extra/b.png"], "also a folder extra/ of images beside them"),
        (["test/a.png"], "but no train/ folder"),
        (["train/a.png", "val/b.png", "valid/c.png"], "which both mean the valid split"),
        (["notes.txt"], "found no images in"),
    ],
)
def test_folder_layout_mistakes(tmp_path, layout, message):
    for rel in layout:
        f = tmp_path / "d" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".png"):
            Image.fromarray(np.zeros((4, 4), np.uint8)).save(f)
        else:
            f.write_text("x")
    with pytest.raises(GMError, match=message):
        load_dataset(f"images:{tmp_path / 'd'}")


def test_every_header_counts_and_small_edges(tmp_path):
    _folder(tmp_path / "a", n=1, size=(6, 6), mode="L", sub="")  # img00: the first file read
    _folder(tmp_path / "a", n=3, size=(4, 4), mode="L", sub="more")
    with pytest.raises(GMError, match="have different sizes"):
        load_dataset(f"images:{tmp_path / 'a'}")
    _folder(tmp_path / "b", n=2, size=(3, 3), mode="L")
    data = load_dataset(f"images:{tmp_path / 'b'}", options={"size": "1"})
    assert data.info.shape == (1, 1, 1)
    assert len(data.raw("train")) == 1 and len(data.raw("test")) == 1  # two images: 1 / 1
    with pytest.raises(GMError, match="size must be a positive number"):
        load_dataset(f"images:{tmp_path / 'b'}", options={"size": "0"})


def test_many_stray_files_are_counted_in_one_warning(tmp_path):
    _folder(tmp_path / "c", n=2, size=(3, 3))
    for i in range(5):
        (tmp_path / "c" / f"note{i}.txt").write_text("x")
    with pytest.warns(UserWarning, match=r"skipped 5 file\(s\).*note2.txt and 2 more\)"):
        load_dataset(f"images:{tmp_path / 'c'}")
