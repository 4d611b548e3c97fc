"""Packaging: every distribution ships a README, a LICENSE and py.typed, takes its version
from one place, and plugins declare the gm-core range they work with; old runs warn."""

import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import gm
from gm import compat
from gm.run import Run

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = {
    "core": "gm",
    "walkback": "gm_walkback",
    "professor-forcing": "gm_professor_forcing",
    "imputation": "gm_imputation",
    "datasets": "gm_datasets",
}


@pytest.mark.parametrize("package,module", PACKAGES.items())
def test_distribution_files(package, module):
    root = ROOT / "packages" / package
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    project = meta["project"]
    assert (root / project["readme"]).exists()
    assert (root / "LICENSE").read_text().startswith("MIT License")
    assert (root / "src" / module / "py.typed").exists()
    assert "Typing :: Typed" in project["classifiers"]
    # one version source: pyproject reads __version__ from the package
    assert "version" not in project and project["dynamic"] == ["version"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": f"{module}.__version__"}
    init = (root / "src" / module / "__init__.py").read_text()
    assert re.search(r'^__version__ = "\d+\.\d+\.\d+"$', init, re.M)
    if package != "core":
        (core_req,) = [d for d in project["dependencies"] if d.startswith("gm-core")]
        from packaging.requirements import Requirement

        spec = Requirement(core_req).specifier
        assert str(spec), f"{package} must declare the gm-core range it works with"
        assert gm.__version__ in spec
        assert "9.0.0" not in spec  # an upper bound: a future core may break it


def test_no_stray_files_in_the_tree():
    tracked = subprocess.run(
        ["git", "ls-files", "packages"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    strays = [p for p in tracked if p.endswith((".png", ".npy")) and "/tests/" not in p]
    assert strays == []


def test_same_series_rule():
    assert compat.same_series("0.1.0", "0.1.7")
    assert not compat.same_series("0.1.0", "0.2.0")  # before 1.0 a minor bump may break
    assert compat.same_series("1.2.0", "1.9.1")
    assert not compat.same_series("1.2.0", "2.0.0")


def test_problems_name_what_differs():
    ok = {"gm_core_version": gm.__version__, "plugin": "gm-core", "plugin_version": ""}
    assert compat.problems(ok) == []
    old = {**ok, "gm_core_version": "0.0.3"}
    (msg,) = compat.problems(old)
    assert "0.0.3" in msg and gm.__version__ in msg


def test_loading_a_run_saved_by_another_core_warns(tmp_path):
    import json

    from gm import train

    run = train(
        "gaussian", "swiss-roll", steps=2, out=tmp_path / "r", device="cpu", progress=False
    ).path
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Run.open(run)  # the same versions: silent
    record = json.loads((run / "config.json").read_text())
    record["gm_core_version"] = "7.0.0"
    (run / "config.json").write_text(json.dumps(record))
    with pytest.warns(compat.VersionWarning, match="gm-core 7.0.0"):
        Run.open(run)


def test_version_of_the_cli_is_the_package_version():
    out = subprocess.run([sys.executable, "-m", "gm", "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"gm {gm.__version__}"
