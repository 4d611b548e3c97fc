"""Non-Hub sources read from local files in their exact formats."""

import warnings

import numpy as np
import pytest
import torch

from gm.data import load_dataset
from gm.errors import GMError
from gm_datasets import availability, fixtures, text
from gm_datasets.strokes import is_test_form

# --- binarized-mnist ------------------------------------------------------------------


def test_binarized_mnist_fixed_amat(tmp_path):
    fixtures.write_amat(tmp_path / "binarized-mnist", {"train": 12, "valid": 4, "test": 5})
    assert availability.binarized_mnist(str(tmp_path))
    data = load_dataset("binarized-mnist", str(tmp_path))
    assert {k: v.shape for k, v in data.splits.items()} == {
        "train": (12, 1, 28, 28),
        "valid": (4, 1, 28, 28),
        "test": (5, 1, 28, 28),
    }
    x = data.raw("train")
    assert x.dtype == torch.uint8 and set(x.unique().tolist()) == {0, 255}
    first = (
        (tmp_path / "binarized-mnist" / "binarized_mnist_train.amat").read_text().splitlines()[0]
    )
    assert data.tensor("train")[0].flatten().tolist() == [float(v) for v in first.split()]
    assert data.info.meta["binarization"] == "fixed"


def test_bad_amat_line_is_named(tmp_path):
    folder = fixtures.write_amat(tmp_path / "b")
    path = folder / "binarized_mnist_valid.amat"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:-2]  # one value short
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(GMError, match=r"binarized_mnist_valid.amat line 3 is not 784 values"):
        load_dataset("binarized-mnist", options={"source_dir": str(folder)})


def test_binarized_threshold_and_dynamic_over_mnist(tmp_path):
    fixtures.write_mnist(tmp_path / "mnist", n_train=20, n_test=6)
    grey = load_dataset("mnist", str(tmp_path)).raw("train")
    thr = load_dataset("binarized-mnist", str(tmp_path), {"mode": "threshold"})
    assert torch.equal(thr.raw("train"), (grey >= 128).to(torch.uint8) * 255)
    dyn = load_dataset("binarized-mnist", str(tmp_path), {"mode": "dynamic"})
    assert torch.equal(dyn.raw("train"), grey)  # grey kept; binarised per batch
    torch.manual_seed(0)
    a = next(dyn.batches("train", 20))
    b = next(dyn.to("cpu").batches("train", 20))
    assert set(a.unique().tolist()) <= {0.0, 1.0} and not torch.equal(a, b)  # fresh draws
    # the draws follow Bernoulli(x/255): mean over many draws approaches the grey level
    torch.manual_seed(1)
    mean = torch.stack([dyn.tensor("train") for _ in range(400)]).mean(0)
    assert (mean - grey.float() / 255).abs().max() < 0.15  # 6 sigma at p = 0.5


# --- sequential-mnist -----------------------------------------------------------------


def test_sequential_mnist_from_digits_with_permutation():
    pytest.importorskip("sklearn")
    plain = load_dataset("sequential-mnist", options={"source": "digits"})
    assert (
        plain.info.modality == "sequence"
        and plain.info.shape == (64,)
        and plain.info.vocab_size == 2
    )
    images = load_dataset("digits")
    assert torch.equal(plain.raw("train"), (images.raw("train").reshape(-1, 64) >= 128).long())
    perm = load_dataset(
        "sequential-mnist", options={"source": "digits", "permute": "true", "permutation_seed": "5"}
    )
    p = perm.info.meta["permutation"]
    assert sorted(p) == list(range(64)) and p == np.random.RandomState(5).permutation(64).tolist()
    assert torch.equal(perm.raw("test"), plain.raw("test")[:, p])
    grey = load_dataset("sequential-mnist", options={"source": "digits", "pixels": "grey"})
    assert grey.info.vocab_size == 256 and grey.raw("train").dtype == torch.int64
    assert torch.equal(grey.raw("train"), images.raw("train").reshape(-1, 64).long())


def test_sequential_mnist_stochastic_binarisation_is_fixed_and_follows_the_grey_levels():
    opts = {"source": "digits", "pixels": "stochastic", "binarize_seed": "3"}
    a, b = (
        load_dataset("sequential-mnist", options=opts),
        load_dataset("sequential-mnist", options=opts),
    )
    assert a.info.vocab_size == 2 and a.info.meta["binarize_seed"] == 3
    assert torch.equal(a.raw("train"), b.raw("train"))  # one fixed draw, not per load
    other = load_dataset("sequential-mnist", options={**opts, "binarize_seed": "4"})
    assert not torch.equal(a.raw("train"), other.raw("train"))
    grey = load_dataset("digits").raw("train").reshape(-1, 64).double() / 255
    x = a.raw("train").double()
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert not (x[grey == 0]).any() and x[grey == 1].all()  # black stays 0, white stays 1
    # P(1) = grey / 255: the counts of ones over all pixels match their expectation
    mid = (grey > 0) & (grey < 1)
    expected, var = grey[mid].sum(), (grey[mid] * (1 - grey[mid])).sum()
    assert abs(x[mid].sum() - expected) < 4 * var.sqrt()
    with pytest.raises(GMError, match="no grey levels"):
        load_dataset(
            "sequential-mnist", options={"source": "binarized-mnist", "pixels": "stochastic"}
        )


def test_sequential_mnist_over_mnist(tmp_path):
    fixtures.write_mnist(tmp_path / "mnist", n_train=6, n_test=3)
    data = load_dataset("sequential-mnist", str(tmp_path))
    assert data.raw("train").shape == (6, 784) and data.info.meta["permutation"] is None


# --- tfd ------------------------------------------------------------------------------


def test_tfd_mat(tmp_path):
    fixtures.write_tfd(tmp_path / "tfd" / "TFD_48x48.mat", n=40)
    from scipy.io import loadmat

    mat = loadmat(tmp_path / "tfd" / "TFD_48x48.mat")
    data = load_dataset("tfd", str(tmp_path), {"fold": "2"})
    col = mat["folds"][:, 2]
    assert len(data.raw("train")) == ((col == 0) | (col == 1)).sum()
    assert len(data.raw("test")) == (col == 3).sum() and data.info.shape == (1, 48, 48)
    assert np.array_equal(data.raw("valid")[:, 0].numpy(), mat["images"][col == 2])
    only = load_dataset("tfd", str(tmp_path), {"fold": "2", "unlabelled": "false"})
    assert len(only.raw("train")) == (col == 1).sum() and (only.labels["train"] >= 1).all()
    with pytest.raises(GMError, match="fold must be between 0 and 4"):
        load_dataset("tfd", str(tmp_path), {"fold": "7"})


def test_tfd_missing_says_where(tmp_path):
    with pytest.raises(GMError, match=rf"put TFD_48x48.mat .* in {tmp_path}/tfd"):
        load_dataset("tfd", str(tmp_path))


# --- ptb-char and text:FILE --------------------------------------------------------------


def _expected_stream(sentences):
    return "".join(" " + s.strip() + "\n" for s in sentences if s.strip())


def test_ptb_char_from_text_files_count_rules(tmp_path):
    sents = fixtures.write_ptb_text(tmp_path / "ptb-char", {"train": 40, "valid": 10, "test": 12})
    data = load_dataset("ptb-char", str(tmp_path), {"seq_len": "7"})
    meta = data.info.meta
    streams = {s: _expected_stream(v) for s, v in sents.items()}
    alphabet = "".join(sorted(set("".join(streams.values()))))
    assert (
        meta["alphabet"] == alphabet and data.info.vocab_size == len(alphabet) and "\n" in alphabet
    )
    assert meta["characters"] == {s: len(t) for s, t in streams.items()}
    # one separator and one end-of-line per stripped sentence; <unk> stays 5 characters
    assert meta["characters"]["train"] == sum(len(s) + 2 for s in sents["train"])
    assert "<unk>" in streams["train"] and {"<", "u", "n", "k", ">"} <= set(alphabet)
    train = data.raw("train")
    assert train.dtype == torch.int64 and train.shape == (len(streams["train"]) // 7, 7)
    decoded = "".join(alphabet[i] for i in train.flatten().tolist())
    assert decoded == streams["train"][: len(decoded)]


def test_ptb_char_parquet_export_gives_the_same_stream(tmp_path):
    sents = fixtures.write_ptb_parquet(tmp_path / "hub", {"train": 30, "validation": 8, "test": 9})
    fixtures.write_ptb_text(tmp_path / "raw", {"train": 1, "valid": 1, "test": 1})  # unrelated
    for split, name in (("train", "train"), ("validation", "valid"), ("test", "test")):
        (tmp_path / "raw2").mkdir(exist_ok=True)
        (tmp_path / "raw2" / f"ptb.{name}.txt").write_text(
            "".join(f" {s} \n" for s in sents[split])
        )
    a = load_dataset("ptb-char", options={"source_dir": str(tmp_path / "hub"), "seq_len": "5"})
    b = load_dataset("ptb-char", options={"source_dir": str(tmp_path / "raw2"), "seq_len": "5"})
    assert a.info.meta["alphabet"] == b.info.meta["alphabet"]
    for s in ("train", "valid", "test"):
        assert torch.equal(a.raw(s), b.raw(s))


def test_ptb_full_size_constants_are_documented():
    assert text.PTB_CHARS == {"train": 5_059_566, "valid": 396_412, "test": 446_184}
    assert text.PTB_ALPHABET_SIZE == 50


def test_text_file(tmp_path):
    f = tmp_path / "corpus.txt"
    body = "Hello, world!\nÜnïcode line.\n" * 20
    f.write_text(body, encoding="utf-8")
    data = load_dataset(f"text:{f}", options={"seq_len": "10"})
    alphabet = data.info.meta["alphabet"]
    assert alphabet == "".join(sorted(set(body))) and data.info.vocab_size == len(alphabet)
    cut = int(round(len(body) * 0.9))
    assert (
        data.raw("train").shape == (cut // 10, 10)
        and len(data.raw("test")) == (len(body) - cut) // 10
    )
    assert "".join(alphabet[i] for i in data.raw("test")[0].tolist()) == body[cut : cut + 10]
    with pytest.raises(GMError, match="fewer than one window"):
        load_dataset(f"text:{f}", options={"seq_len": "1000"})
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(GMError, match="latin1.txt is not UTF-8 text"):
        load_dataset(f"text:{bad}")


# --- array:FILE -----------------------------------------------------------------------


def test_array_npy_with_nans_scaled_on_train(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(5, 3, (50, 4))
    x[rng.random(x.shape) < 0.2] = np.nan
    np.save(tmp_path / "x.npy", x)
    data = load_dataset(f"array:{tmp_path / 'x.npy'}")
    assert data.info.modality == "vector" and data.info.shape == (4,)
    train, test = data.raw("train").numpy(), data.raw("test").numpy()
    assert train.dtype == np.float32 and len(train) == 40 and len(test) == 10
    assert np.isnan(train).sum() + np.isnan(test).sum() == np.isnan(x).sum()
    assert np.allclose(np.nanmin(train, 0), 0) and np.allclose(np.nanmax(train, 0), 1)
    lo, hi = np.array(data.info.meta["column_min"]), np.array(data.info.meta["column_max"])
    back = np.concatenate([train, test]) * (hi - lo) + lo
    assert np.allclose(np.sort(back[~np.isnan(back)]), np.sort(x[~np.isnan(x)]), atol=1e-5)


def test_array_csv_header_missing_markers(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("a,b,c\n1,2,3\n4,,6\nNA,8,9\n10,11,?\n2,3,4\n")
    data = load_dataset(f"array:{f}", options={"test_fraction": "0"})
    assert data.info.meta["columns"] == ["a", "b", "c"] and list(data.splits) == ["train"]
    x = data.raw("train").numpy()
    assert x.shape == (5, 3) and np.isnan(x).sum() == 3
    assert np.allclose(x[0], [0, 0, 0]) and np.isclose(x[3, 0], 1.0)


def test_array_errors_name_the_file(tmp_path):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2,3\n4,5\n")
    with pytest.raises(
        GMError, match=r"ragged.csv line 2 has 2 values but line 1 has 3 \(a ragged CSV\)"
    ):
        load_dataset(f"array:{ragged}")
    empty_col = tmp_path / "nan.csv"
    empty_col.write_text("x,y\n1,nan\n2,\n3,nan\n")
    with pytest.raises(GMError, match=r"nan.csv: column\(s\) y have no observed value"):
        load_dataset(f"array:{empty_col}", options={"test_fraction": "0"})
    word = tmp_path / "word.csv"
    word.write_text("1,2\n3,abc\n")
    with pytest.raises(GMError, match="word.csv line 2 has a non-numeric value 'abc'"):
        load_dataset(f"array:{word}")
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4, 5, 6)))  # (N, H, W) images are fine
    with pytest.raises(GMError, match="array:FILE needs a numeric array, rows = examples"):
        load_dataset(f"array:{tmp_path / 'cube.npy'}")


# --- iam-ondb -------------------------------------------------------------------------


def test_iam_ondb_strokes(tmp_path):
    forms = [f"a0{i}-00{j}u" for i in range(1, 4) for j in range(4)]
    lines = fixtures.write_iam(tmp_path / "iam-ondb", forms, lines_per_form=2)
    assert availability.iam_ondb(str(tmp_path))
    data = load_dataset(
        "iam-ondb", str(tmp_path), {"seq_len": "10", "normalize": "false", "test_fraction": "0.3"}
    )
    assert data.info.modality == "strokes" and data.info.shape == (10, 3)
    x = data.raw("train")
    assert x.dtype == torch.float32 and set(x[..., 2].unique().tolist()) <= {0.0, 1.0}
    # rebuild the first line by hand: offsets of the joined points, pen lift on stroke ends
    first_id = sorted(lines)[0]
    pts = np.concatenate(lines[first_id])
    ends = np.concatenate([np.arange(len(s)) == len(s) - 1 for s in lines[first_id]]).astype(
        np.float32
    )
    expect = np.column_stack([np.vstack([[0, 0], np.diff(pts, axis=0)]), ends])
    split = "test" if is_test_form(first_id.rsplit("-", 1)[0], 0.3) else "train"
    assert np.array_equal(data.raw(split)[0].numpy(), expect[:10])
    total = {s: int(v.shape[0]) for s, v in data.splits.items()}
    assert sum(total.values()) == sum(len(np.concatenate(v)) // 10 for v in lines.values())
    norm = load_dataset("iam-ondb", str(tmp_path), {"seq_len": "10", "test_fraction": "0.3"})
    scale = np.array(norm.info.meta["scale"], dtype=np.float32)
    assert np.allclose(norm.raw("train")[..., :2].numpy() * scale, x[..., :2].numpy(), atol=1e-4)


def test_iam_truncated_archive_is_named(tmp_path):
    fixtures.write_iam(tmp_path / "iam-ondb", ["a01-000u"], lines_per_form=3)
    arch = tmp_path / "iam-ondb" / "lineStrokes-all.tar.gz"
    arch.write_bytes(arch.read_bytes()[:200])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(
            GMError, match="lineStrokes-all.tar.gz is not a readable .tar.gz archive"
        ):
            load_dataset("iam-ondb", str(tmp_path))


def test_iam_ondb_affine_gives_tablet_units_back(tmp_path):
    from gm.data import log_jacobian, to_data_units

    forms = [f"a0{i}-00{j}u" for i in range(1, 4) for j in range(4)]
    fixtures.write_iam(tmp_path / "iam-ondb", forms, lines_per_form=2)
    opts = {"seq_len": "10", "test_fraction": "0.3"}
    raw = load_dataset("iam-ondb", str(tmp_path), {**opts, "normalize": "false"})
    norm = load_dataset("iam-ondb", str(tmp_path), opts)
    assert "affine" not in raw.info.meta
    back = to_data_units(norm.raw("train"), norm.info)
    assert torch.allclose(back, raw.raw("train"), atol=1e-4)
    longer = torch.cat([norm.raw("train")] * 3, 1)  # sampled past the training window
    assert torch.allclose(to_data_units(longer, norm.info)[:, :10], back)
    s = norm.info.meta["scale"]
    assert log_jacobian(norm.info) == pytest.approx(-10 * (np.log(s[0]) + np.log(s[1])))
