"""The `gm datasets prepare` verb and the torch-free listing path."""

import subprocess
import sys

import numpy as np
import pytest

from gm_datasets import cache, fixtures


@pytest.mark.slow  # 5 s (durations run, 1 thread, load 4-7)
def test_prepare_from_a_folder_fills_the_cache(tmp_path):
    from conftest import gm

    fixtures.write_mnist(tmp_path / "snapshot", n_train=8, n_test=4)
    r = gm("datasets", "prepare", "mnist", "--from", str(tmp_path / "snapshot"))
    assert r.returncode == 0, r.stderr
    assert "mnist: image 1x28x28, train 8, test 4" in r.stdout
    entries = [p for p in cache.cache_root().iterdir() if p.name.startswith("mnist-v1-")]
    assert len(entries) == 1 and (entries[0] / "meta.json").is_file()
    meta = __import__("json").loads((entries[0] / "meta.json").read_text())
    assert meta["source"]["found"] == "from" and meta["arrays"]["train"] == {
        "shape": [8, 1, 28, 28],
        "dtype": "uint8",
    }
    assert np.load(entries[0] / "test.labels.npy").shape == (4,)
    # now usable with no source at all, from the real CLI
    r = gm("list-datasets", "mnist", "--json")
    assert '"offline": true' in r.stdout


@pytest.mark.slow  # 11 s (durations run, 1 thread, load 4-7)
def test_prepare_errors_are_one_line(tmp_path):
    from conftest import gm

    r = gm("datasets", "prepare", "mnist", "--from", str(tmp_path))
    assert r.returncode == 2 and "found no mnist source files" in r.stderr
    r = gm("datasets", "prepare", "array:x.npy", "--from", str(tmp_path))
    assert r.returncode == 2 and "takes no --from folder" in r.stderr
    r = gm("datasets", "prepare", "svhn")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not available offline" in r.stderr


def test_plugin_command_and_availability_modules_import_neither_torch_nor_datasets():
    code = (
        "import sys, gm_datasets.plugin, gm_datasets.commands, gm_datasets.availability as a;"
        "a.mnist(None); a.celeba(None); a.digits(None);"
        "bad = [m for m in ('torch', 'datasets', 'numpy') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_list_datasets_stays_torch_free():
    code = (
        "import sys; from gm.cli import main\n"
        "try:\n    main(['list-datasets', '--json'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED', [m for m in ('torch', 'datasets') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "LOADED []" in out
