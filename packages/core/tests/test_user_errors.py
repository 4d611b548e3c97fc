"""User mistakes: one clear line on stderr, exit code 2, no traceback, nothing lost."""

import json
import pickle

import pytest
from conftest import error_lines, gm_run


def one_line_error(out, *needles):
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    lines = error_lines(out)
    assert len(lines) == 1, out.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("r") / "run"
    out = gm_run(
        "train",
        "tiny",
        "--dataset",
        "circle",
        "--steps",
        "5",
        "--out",
        str(path),
        "--device",
        "cpu",
    )
    assert out.returncode == 0, out.stderr
    return path


def test_unknown_model_suggests_close_names():
    one_line_error(
        gm_run("train", "tinny", "--dataset", "circle"), "unknown model 'tinny'", "'tiny'"
    )


def test_a_model_of_a_missing_plugin_is_unknown_and_the_installed_ones_are_listed():
    # core names no plugin's contents, so it cannot say which distribution to install
    one_line_error(
        gm_run(
            "train",
            "professor-forcing",
            "--dataset",
            "circle",
            env={"GM_DISABLE_PLUGINS": "professor-forcing"},
        ),
        "unknown model 'professor-forcing'",
        "Known: ",
    )


def test_unknown_dataset_suggests_close_names():
    one_line_error(
        gm_run("train", "tiny", "--dataset", "swiss-rol"), "unknown dataset", "'swiss-roll'"
    )


def test_unknown_set_key_names_the_closest_not_every_key():
    line = one_line_error(
        gm_run("train", "tiny", "--dataset", "circle", "--set", "widht=3"),
        "'widht'",
        "Did you mean 'width'?",
    )
    assert "batch_size" not in line  # the close names only, not a list of every key


@pytest.mark.slow  # 3 s (durations run, 1 thread, load 4-7)
def test_wrong_type_says_what_is_expected():
    one_line_error(
        gm_run("train", "tiny", "--dataset", "circle", "--set", "width=wide"),
        "'width'",
        "integer",
        "'wide'",
    )
    one_line_error(
        gm_run("train", "tiny", "--dataset", "circle", "--set", "precision=fp8"),
        "'precision'",
        "'bf16'",
    )


def test_bad_config_file(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("width = [\n")
    one_line_error(
        gm_run("train", "tiny", "--dataset", "circle", "--config", str(bad)), "not valid TOML"
    )
    good = tmp_path / "d.toml"
    good.write_text("colour = 3\n")
    one_line_error(
        gm_run("train", "tiny", "--dataset", "circle", "--config", str(good)), "'colour'"
    )


@pytest.mark.slow  # 4 s (durations run, 1 thread, load 4-7)
def test_unknown_dataset_option():
    one_line_error(
        gm_run("train", "tiny", "--dataset", "circle", "--data-option", "size=3"),
        "no option 'size'",
        "n, seed, noise",
    )


def test_missing_run_folder(tmp_path):
    one_line_error(gm_run("sample", str(tmp_path / "nope")), "does not exist")


@pytest.mark.slow  # 4 s (durations run, 1 thread, load 4-7)
def test_folder_that_is_not_a_run(tmp_path):
    one_line_error(gm_run("evaluate", str(tmp_path)), "not a gm run folder")


def test_corrupt_config_json(run, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "config.json").write_text("{not json")
    one_line_error(gm_run("sample", str(broken)), "corrupt")


@pytest.mark.slow  # 6 s (durations run, 1 thread, load 4-7)
def test_pickle_offered_as_checkpoint(run, tmp_path):
    pt = tmp_path / "model.pt"
    pt.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    one_line_error(gm_run("sample", str(pt)), "never unpickles")
    # a run folder whose weights file is really a pickle
    import shutil

    fake = tmp_path / "fake"
    shutil.copytree(run, fake)
    (fake / "model.safetensors").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    one_line_error(
        gm_run("sample", str(fake), "--out", str(tmp_path / "s.npy")), "not a valid safetensors"
    )


@pytest.mark.slow  # 6 s (durations run, 1 thread, load 4-7)
def test_weights_that_do_not_match_the_config(run, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(run, other)
    record = json.loads((other / "config.json").read_text())
    record["config"]["width"] = 7
    (other / "config.json").write_text(json.dumps(record))
    one_line_error(gm_run("sample", str(other), "--out", str(tmp_path / "s.npy")), "does not match")


@pytest.mark.slow  # 3 s (durations run, 1 thread, load 4-7)
def test_run_of_an_uninstalled_model(run):
    one_line_error(gm_run("sample", str(run), paths=()), "'tiny'", "pip install gm-tiny")


def test_existing_run_folder_is_not_overwritten(run):
    before = (run / "model.safetensors").read_bytes()
    one_line_error(gm_run("train", "tiny", "--dataset", "circle", "--out", str(run)), "--resume")
    assert (run / "model.safetensors").read_bytes() == before


@pytest.mark.slow  # 6 s (durations run, 1 thread, load 4-7)
def test_unknown_sample_option(run, tmp_path):
    one_line_error(gm_run("sample", str(run), "--colour", "red"), "unknown option 'colour'")


def test_unknown_command_suggests():
    one_line_error(gm_run("trian"), "'train'")


@pytest.mark.slow  # 4 s (durations run, 1 thread, load 4-7)
def test_sample_and_evaluate_work(run, tmp_path):
    out = gm_run("sample", str(run), "-n", "10", "--out", str(tmp_path / "s.npy"))
    assert out.returncode == 0, out.stderr
    import numpy as np

    assert np.load(tmp_path / "s.npy").shape == (10, 2)


@pytest.mark.slow  # 15 s (durations run, 1 thread, load 4-7)
def test_threads_option(run, tmp_path):
    one_line_error(gm_run("sample", str(run), "--threads", "0"), "--threads must be at least 1")
    out = gm_run("sample", str(run), "--threads", "1", "-n", "3", "--out", str(tmp_path / "t.npy"))
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--steps", "-3"], "option 'steps' must be at least 1"),
        (["--steps", "1e30"], "'--steps'"),
        (["--set", "steps=1e30"], "'steps' must be at least 1 and at most"),
        (["--set", "lr=abc"], "'lr' expects a number, got 'abc'"),
        (["--set", "lr=nan"], "'lr' must be a finite number"),
        (["--set", "log_every=0"], "'log_every' must be at least 1"),
        (["--set", "nonexistent=1"], "No valid key is close"),
        (["--max-time", "10x"], "--max-time expects a duration"),
        (["--report-to", "tensorbord"], "tensorboard"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_argument_errors_come_before_data_or_a_model_is_built(tmp_path, monkeypatch, capsys, args, needle):  # fmt: skip
    """Checked by the absence of a build (the loaders and the model's constructor would
    fail the test if reached) and of a run folder, not by seconds."""
    from gm import build, cli, engine

    def built(*a, **kw):
        raise AssertionError("reached a build before refusing the arguments")

    monkeypatch.setattr(engine, "load_dataset", built)
    monkeypatch.setattr(build, "trainer", built)
    out = tmp_path / "r"
    argv = ["train", "gaussian", "--dataset", "swiss-roll", "--out", str(out), "--device", "cpu"]
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, *args])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and needle in err and err.count("\n") == 1, err
    assert not out.exists()
