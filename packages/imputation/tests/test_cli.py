"""gm impute on users' files, gm evaluate's measures, gm train --mask, and a torch-free CLI."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gm import plugins
from gm.cli import main
from gm.run import Run


def gm(args, capsys):
    """Run the gm CLI in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def write_csv(path, rows, header=("a", "b", "c", "d")):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


def read_csv(path):
    with path.open(newline="") as f:
        return list(csv.reader(f))


ROWS = [
    ["1.25", "", "0.5", "4"],
    ["-2", "3.0", "NaN", ""],
    ["0", "1", "2", "3"],
    ["", "-1.5", "4.75", "NA"],
]


def test_plugin_and_command_modules_do_not_import_torch():
    code = (
        "import sys, gm_imputation.plugin, gm_imputation.commands; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_models_are_listed(capsys):
    code, out, _ = gm(["list-models", "--json"], capsys)
    names = {m["name"] for m in json.loads(out)}
    assert (
        code == 0
        and {
            "gpsi-add",
            "gpsi-jump",
            "lstm-add",
            "lstm-jump",
            "draw-gps",
            "vae-imputer",
            "template-matching",
        }
        <= names
    )


def test_add_and_jump_are_recipes_of_one_trainer(capsys):
    """gpsi-jump is the gpsi trainer with its recipe "jump": the same config as gpsi-add
    with --set recipe=jump; gm list-models shows the recipes, the model's own marked."""
    from gm import build
    from gm.data import DataInfo

    info = DataInfo("v", "vector", (4,))
    jump = build.resolve("gpsi-jump", info)[1]
    assert jump.update == "jump" and jump.recipe == "jump"
    assert build.resolve("gpsi-add", info, overrides={"recipe": "jump"})[1] == jump
    assert build.resolve("gpsi-add", info)[1].update == "add"
    assert build.resolve("lstm-jump", info)[1].update == "jump"
    code, out, _ = gm(["list-models", "gpsi-jump"], capsys)
    assert code == 0 and "jump [this model's]: update='jump'" in out
    assert "  add: update='add'" in out


def test_impute_csv_fills_every_nan_and_keeps_observed_text(vector_run, tmp_path, capsys):
    src = write_csv(tmp_path / "in.csv", ROWS)
    code, out, err = gm(
        ["impute", vector_run, "--input", src, "--out", tmp_path / "out.csv"], capsys
    )
    assert code == 0, err
    got = read_csv(tmp_path / "out.csv")
    assert got[0] == ["a", "b", "c", "d"]
    for row_in, row_out in zip(ROWS, got[1:], strict=True):
        for a, b in zip(row_in, row_out, strict=True):
            if a.strip().lower() in ("", "nan", "na"):
                v = float(b)
                assert np.isfinite(v) and -3 - 1e-6 <= v <= 5 + 1e-6  # in the training range
            else:
                assert a == b  # the observed text, unchanged


def test_impute_multiple_samples_and_average(vector_run, tmp_path, capsys):
    src = write_csv(tmp_path / "in.csv", ROWS, header=None)
    code, _, err = gm(
        ["impute", vector_run, "-i", src, "-o", tmp_path / "many.csv", "-s", "5"], capsys
    )
    assert code == 0, err
    rows = read_csv(tmp_path / "many.csv")
    assert len(rows) == 5 * len(ROWS) and {r[0] for r in rows} == {"1", "2", "3", "4", "5"}
    draws = np.array([[float(v) for v in r[1:]] for r in rows]).reshape(5, len(ROWS), 4)
    assert draws.std(0)[0, 1] > 0  # imputations differ between samples: uncertainty
    code, _, err = gm(
        ["impute", vector_run, "-i", src, "-o", tmp_path / "mean.npy", "-s", "5", "--average"],
        capsys,
    )
    assert code == 0, err
    mean = np.load(tmp_path / "mean.npy")
    assert mean.shape == (len(ROWS), 4) and not np.isnan(mean).any()


def test_impute_npy_never_changes_an_observed_value(vector_run, tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 5, (30, 4))
    x[rng.random(x.shape) < 0.4] = np.nan
    x[0] = [np.nan, 1.0, np.nan, np.nan]
    np.save(tmp_path / "in.npy", x)
    code, _, err = gm(
        [
            "impute",
            vector_run,
            "-i",
            tmp_path / "in.npy",
            "-o",
            tmp_path / "o.npy",
            "--samples",
            "2",
        ],
        capsys,
    )
    assert code == 0, err
    out = np.load(tmp_path / "o.npy")
    assert out.shape == (2, 30, 4) and not np.isnan(out).any()
    seen = ~np.isnan(x)
    assert np.array_equal(out[:, seen], np.broadcast_to(x[seen], (2, seen.sum())))


def test_impute_image_with_a_mask_image(image_run, tmp_path, capsys):
    img = np.zeros((6, 6), np.uint8)
    img[2, :] = 230
    mask = np.zeros((6, 6), np.uint8)
    mask[:3, :3] = 255
    Image.fromarray(img, "L").save(tmp_path / "in.png")
    Image.fromarray(mask, "L").save(tmp_path / "mask.png")
    code, _, err = gm(
        [
            "impute",
            image_run,
            "-i",
            tmp_path / "in.png",
            "--mask",
            tmp_path / "mask.png",
            "-o",
            tmp_path / "out.png",
            "-s",
            "3",
        ],
        capsys,
    )
    assert code == 0, err
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (6, 18)  # three imputations side by side
    for k in range(3):
        part = out[:, 6 * k : 6 * (k + 1)]
        assert np.array_equal(part[mask == 0], img[mask == 0])
    code, _, err = gm(
        ["impute", image_run, "-i", tmp_path / "in.png", "-o", tmp_path / "o.png"], capsys
    )
    assert code == 2 and "--mask" in err


@pytest.mark.parametrize(
    "content,message",
    [
        ("a,b,c,d\n1,2,,4\n1,2,3\n", "row 3 has 3 fields but another row has 4"),
        ("1,2,3,4\n0,1,2,3\n", "no missing values"),
        ("a,b,c,d\n1,,3,4\n2,,4,0\n", "'b' \\(column 2\\) is missing in every row"),
        (
            "a,b,c,d\n1,,3,40\n",
            "'d' \\(column 4\\) is 40, outside the range the model was trained on",
        ),
        ("a,b,c,d\n1,,3,x4\n", "3 numeric values per row \\('d' holds text\\)"),
        ("1,,3\n", "has 3 numeric values per row but"),
        ("", "is empty"),
    ],
)
def test_malformed_csv_gets_one_clear_line(vector_run, tmp_path, capsys, content, message):
    (tmp_path / "bad.csv").write_text(content)
    code, _, err = gm(
        ["impute", vector_run, "-i", tmp_path / "bad.csv", "-o", tmp_path / "o.csv"], capsys
    )
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("gm: error:")]
    assert len(lines) == 1 and "Traceback" not in err
    import re

    assert re.search(message, lines[0]), lines[0]


def test_out_of_range_values_can_be_clipped(vector_run, tmp_path, capsys):
    (tmp_path / "far.csv").write_text("1,,3,40\n")
    code, _, err = gm(
        ["impute", vector_run, "-i", tmp_path / "far.csv", "-o", tmp_path / "o.csv", "--clip"],
        capsys,
    )
    assert code == 0, err
    row = read_csv(tmp_path / "o.csv")[0]
    assert row[0] == "1" and row[3] == "40" and np.isfinite(float(row[1]))


def test_other_input_mistakes(vector_run, tmp_path, capsys):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases = [
        (["-i", tmp_path / "nope.csv"], "does not exist"),
        (["-i", tmp_path / "obj.npy"], "never unpickles"),
        (["-i", tmp_path / "x.json"], "give a .csv, .tsv or .npy"),
        (["-i", tmp_path / "obj.npy", "--samples", "0"], "at least 1"),
    ]
    (tmp_path / "x.json").write_text("1,2")
    for extra, message in cases:
        code, _, err = gm(["impute", vector_run, *extra, "-o", tmp_path / "o.csv"], capsys)
        assert code == 2 and message in err, err
    code, _, err = gm(
        ["impute", tmp_path, "-i", tmp_path / "x.txt", "-o", tmp_path / "o.csv"], capsys
    )
    assert code == 2 and "not a gm run folder" in err


def test_evaluate_reports_the_measures_and_a_steps_study(vector_run, capsys):
    code, out, err = gm(["evaluate", vector_run, "--dataset", "mog-grid", "--json"], capsys)
    assert code == 2 and "shape" in err  # 2-D data against a 4-column run
    from gm.data import DataInfo, Dataset
    from gm_imputation.base import EvaluateOptions

    tr = Run.open(vector_run).trainer
    rng = np.random.default_rng(3)
    import torch

    data = Dataset(
        DataInfo("t", "vector", (4,)),
        {"test": torch.tensor(rng.uniform(-3, 5, (50, 4)), dtype=torch.float32)},
    )
    m = tr.evaluate(data, "test", EvaluateOptions(mask="mcar:0.7", steps=(1, 3), samples=2))
    for key in (
        "nll_per_value",
        "nll_paper",
        "rmse_missing",
        "nll_per_value@1",
        "nll_per_value@3",
        "rmse_missing@3",
        "drop_rate",
    ):
        assert np.isfinite(m[key]), key
    assert "floor_per_value" not in m  # a Gaussian observation model has no entropy floor
    # several --steps: a study; the plain keys stay those of the trained 6 steps
    assert m["steps"] == 6 and "nll_per_value@6" not in m
    one = tr.evaluate(data, "test", EvaluateOptions(mask="mcar:0.7", steps=(3,), samples=2))
    assert one["steps"] == 3 and "nll_per_value@3" not in one
    assert abs(m["nll_paper"] - m["nll_per_value"] * m["n_missing"] / 50 / m["drop_rate"]) < 1e-9


def test_train_accepts_mask_as_an_option(tmp_path, capsys):
    run = tmp_path / "r"
    code, _, err = gm(
        [
            "train",
            "gpsi-add",
            "--dataset",
            "mog-grid",
            "--steps",
            "2",
            "--out",
            run,
            "--mask",
            "mcar:0.3",
            "--set",
            "hidden=8",
            "--set",
            "z_dim=2",
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["mask"] == "mcar:0.3" and config["hidden"] == 8
    code, out, err = gm(["evaluate", run, "--json", "--samples", "2", "--mask", "mcar:0.6"], capsys)
    assert code == 0, err
    assert abs(json.loads(out)["drop_rate"] - 0.6) < 0.05
    code, _, err = gm(
        ["train", "gpsi-add", "--dataset", "mog-grid", "--mask", "mar:3", "--out", tmp_path / "r2"],
        capsys,
    )
    assert code == 2 and "does not fit" in err  # vectors: mar:K is a block of K entries


def test_train_on_a_users_csv_through_the_array_dataset(tmp_path, capsys):
    if "array" not in plugins.registry("datasets"):
        pytest.skip("the array:FILE dataset (gm-datasets) is not installed")
    rng = np.random.default_rng(0)
    u = rng.normal(size=(300, 1))
    x = np.hstack([u * 3 + 10, -u, u**2]) + 0.05 * rng.normal(size=(300, 3))
    x[rng.random(x.shape) < 0.1] = np.nan
    np.savetxt(tmp_path / "data.csv", x, delimiter=",", header="p,q,r", comments="")
    run = tmp_path / "run"
    code, _, err = gm(
        [
            "train",
            "gpsi-add",
            "--dataset",
            f"array:{tmp_path / 'data.csv'}",
            "--mask",
            "mcar:0.5",
            "--steps",
            "20",
            "--out",
            run,
            "--set",
            "hidden=16",
            "--set",
            "batch_size=50",
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 0, err
    # held-out rows may fall outside the train split's range: --clip feeds them clamped
    code, _, err = gm(
        ["impute", run, "-i", tmp_path / "data.csv", "-o", tmp_path / "out.csv", "--clip"], capsys
    )
    assert code == 0, err
    out = np.genfromtxt(tmp_path / "out.csv", delimiter=",", skip_header=1)
    assert not np.isnan(out).any()
    seen = ~np.isnan(x)
    assert np.allclose(out[seen], x[seen], rtol=1e-6)
    lo, hi = np.nanmin(x, 0), np.nanmax(x, 0)  # imputations come back in raw units
    assert ((out >= lo - 1e-4) & (out <= hi + 1e-4)).all()
    assert (run / "samples.png").exists()


def test_filling_is_callable_from_python(vector_run, tmp_path):
    from gm_imputation import filling

    src, out = write_csv(tmp_path / "in.csv", ROWS), tmp_path / "out.csv"
    done = filling.fill_with_run(vector_run, src, out)
    assert (done.filled, done.cells, done.rows, done.rows_filled) == (5, 16, 4, 3)
    rows = read_csv(out)[1:]
    assert len(rows) == 4 and all(cell != "" for row in rows for cell in row)
    assert rows[0][0] == "1.25" and rows[2] == ["0", "1", "2", "3"]  # observed text kept
