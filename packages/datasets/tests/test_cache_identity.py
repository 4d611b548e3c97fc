"""The cache is keyed by the source's files, so a copy decoded from other files is never
served under the same name; entries get the user's umask; a damaged entry is decoded again."""

import json
import os
import stat

import numpy as np
import pytest

from gm.data import load_dataset
from gm_datasets import cache, fixtures


def _train_images(seed, n_train):
    rng = np.random.default_rng(seed)
    return np.stack(fixtures.random_images(rng, n_train, (28, 28)))[:, None]


@pytest.mark.slow  # 31 s (durations run, 1 thread, load 4-7)
def test_prepare_from_a_64_then_an_80_image_copy_sees_80(tmp_path):
    from conftest import gm

    fixtures.write_mnist(tmp_path / "m64", n_train=64, n_test=16)
    fixtures.write_mnist(tmp_path / "m80", n_train=80, n_test=16, seed=1)
    r = gm("datasets", "prepare", "mnist", "--from", str(tmp_path / "m64"))
    assert r.returncode == 0, r.stderr
    assert "train 64, test 16" in r.stdout
    assert f"source: --from {tmp_path / 'm64'} (2 files," in r.stdout and "decoded now" in r.stdout
    r = gm("datasets", "prepare", "mnist", "--from", str(tmp_path / "m80"))
    assert r.returncode == 0, r.stderr
    assert "train 80, test 16" in r.stdout and f"--from {tmp_path / 'm80'}" in r.stdout
    # the same files again: read from their own entry, not decoded, not the other copy's
    r = gm("datasets", "prepare", "mnist", "--from", str(tmp_path / "m64"))
    assert "train 64, test 16" in r.stdout and "read from the cache" in r.stdout
    assert len([p for p in cache.cache_root().iterdir() if p.name.startswith("mnist-")]) == 2


def test_data_dir_copy_is_not_served_another_copys_arrays(tmp_path):
    fixtures.write_mnist(tmp_path / "a", n_train=64, n_test=4)
    load_dataset("mnist", options={"source_dir": str(tmp_path / "a")})
    fixtures.write_mnist(tmp_path / "data" / "mnist", n_train=80, n_test=4, seed=1)
    data = load_dataset("mnist", str(tmp_path / "data"))
    assert np.array_equal(data.raw("train").numpy(), _train_images(1, 80))
    assert data.info.meta["provenance"]["found"] == "data-dir"


def test_files_rewritten_in_place_are_decoded_again(tmp_path):
    fixtures.write_mnist(tmp_path / "m", n_train=20, n_test=4)
    first = load_dataset("mnist", options={"source_dir": str(tmp_path / "m")})
    assert np.array_equal(first.raw("train").numpy(), _train_images(0, 20))
    fixtures.write_mnist(tmp_path / "m", n_train=20, n_test=4, seed=5)  # same names and count
    again = load_dataset("mnist", options={"source_dir": str(tmp_path / "m")})
    assert np.array_equal(again.raw("train").numpy(), _train_images(5, 20))


def test_without_any_source_the_newest_entry_is_used_and_says_so(tmp_path):
    import shutil

    fixtures.write_mnist(tmp_path / "m", n_train=12, n_test=4)
    load_dataset("mnist", options={"source_dir": str(tmp_path / "m")})
    shutil.rmtree(tmp_path / "m")
    data = load_dataset("mnist")  # offline, no data dir, no Hub cache: only the cache entry
    assert len(data.raw("train")) == 12
    prov = data.info.meta["provenance"]
    assert prov["source_found_now"] is False and not prov["decoded_now"]


def test_damaged_entry_is_decoded_again(tmp_path):
    fixtures.write_mnist(tmp_path / "m", n_train=10, n_test=4)
    load_dataset("mnist", options={"source_dir": str(tmp_path / "m")})
    (entry,) = [p for p in cache.cache_root().iterdir() if p.name.startswith("mnist-")]
    (entry / "train.npy").write_bytes(b"\x93NUMPY truncated")
    data = load_dataset("mnist", options={"source_dir": str(tmp_path / "m")})
    assert np.array_equal(data.raw("train").numpy(), _train_images(0, 10))
    assert data.info.meta["provenance"]["decoded_now"]


def test_cache_folders_and_files_follow_the_umask(tmp_path):
    fixtures.write_mnist(tmp_path / "m", n_train=4, n_test=2)
    old = os.umask(0o002)  # a group-shared cache
    try:
        load_dataset("mnist", options={"source_dir": str(tmp_path / "m")})
    finally:
        os.umask(old)
    (entry,) = [p for p in cache.cache_root().iterdir() if p.name.startswith("mnist-")]
    assert stat.S_IMODE(entry.stat().st_mode) == 0o775
    for f in entry.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o664, f.name
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["source"]["identity"]["files"] == 2 and meta["format"] == cache.FORMAT


def test_rewriting_an_entry_replaces_it_whole(tmp_path):
    """A second writer of the same entry (another rank, or a damaged entry decoded again)
    swaps its complete folder in; nothing half-written or set aside is left behind."""
    import numpy as np

    folder = tmp_path / "entry"
    cache.write(folder, {"train": np.zeros(3, np.uint8)}, {"name": "x"})
    (folder / "train.npy").write_bytes(b"damaged")
    cache.write(folder, {"train": np.ones(4, np.uint8)}, {"name": "x"})
    assert np.array_equal(np.load(folder / "train.npy"), np.ones(4, np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]


@pytest.mark.slow  # 11 s (durations run, 1 thread, load 4-7)
def test_a_cached_copy_says_its_source_count_and_date_in_list_datasets_and_train(tmp_path):
    """The newcomer's 64-example cache listed and trained on as `mnist` with no word: now
    both name where it came from, how many examples it holds and when it was decoded."""
    import time

    from conftest import gm

    fixtures.write_mnist(tmp_path / "m64", n_train=64, n_test=16)
    assert gm("datasets", "prepare", "mnist", "--from", str(tmp_path / "m64")).returncode == 0
    today = time.strftime("%Y-%m-%d")
    said = f"80 examples (train 64, test 16), decoded {today} from --from {tmp_path / 'm64'}"
    listed = gm("list-datasets", env={"COLUMNS": "100"})
    assert listed.returncode == 0, listed.stderr
    (line,) = [ln for ln in listed.stdout.splitlines() if ln.startswith("mnist: ")]
    assert said in line and str(cache.cache_root()) in line
    as_json = json.loads(gm("list-datasets", "--json").stdout)
    assert said in next(d["cached"] for d in as_json if d["name"] == "mnist")
    assert next(d["cached"] for d in as_json if d["name"] == "cifar10") is None  # none cached
    trained = gm("train", "gaussian", "--dataset", "mnist", "--steps", "1", "--set",
                 "batch_size=8", "--out", str(tmp_path / "r"), "--device", "cpu")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert f"gm: dataset mnist from the cache: {said}" in trained.stderr


def test_a_cache_summary_counts_examples_not_labels():
    meta = {
        "arrays": {
            "train": {"shape": [5, 1, 2, 2]},
            "train.labels": {"shape": [5]},
            "test": {"shape": [3, 1, 2, 2]},
        },  # fmt: skip
        "created": "2026-01-02T03:04:05",
        "source": {
            "found": "data-dir",
            "folder": "/d/mnist",
            "identity": {"files": 2, "bytes": 2_000_000},
        },  # fmt: skip
    }
    assert cache.summary(meta) == (
        "8 examples (train 5, test 3), decoded 2026-01-02 from the data dir /d/mnist "
        "(2 files, 2.0 MB)"
    )


def test_a_cache_summary_orders_splits_and_sizes_as_people_read_them():
    def said(bytes_, splits):
        meta = {"arrays": {s: {"shape": [n, 2]} for s, n in splits.items()},
                "source": {"found": "from", "folder": "/f",
                           "identity": {"files": 1, "bytes": bytes_}}}  # fmt: skip
        return cache.summary(meta)

    text = said(99_999, {"zz": 1, "test": 2, "aa": 3, "valid": 4, "train": 5})
    assert text.startswith("15 examples (train 5, valid 4, test 2, aa 3, zz 1), decoded ?")
    assert text.endswith("from --from /f (1 file, 99,999 bytes)")
    assert said(100_000, {"train": 1}).endswith("(1 file, 0.1 MB)")
    assert said(0, {"train": 1}).endswith("(1 file, 0 bytes)")
