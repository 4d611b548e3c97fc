"""Plugin discovery through real entry points: failures are warnings, duplicates errors."""

import json

from conftest import TINY, error_lines, gm_run, make_dist

GOOD_DATASET = """
import gm
from gm.specs import DatasetSpec

@gm.hookimpl
def gm_datasets():
    return [DatasetSpec("{name}", "gm.builtins.toy:circle", modality="vector", shape=(2,))]
"""


def test_broken_plugin_is_a_warning_and_the_cli_still_works(tmp_path):
    broken = make_dist(
        tmp_path / "b",
        "gm-broken",
        "broken",
        "gm_broken_plugin",
        "raise ImportError('no module named shiny')\n",
    )
    out = gm_run("list-models", "--json", paths=(TINY, broken))
    assert out.returncode == 0
    assert "gm-broken" in out.stderr and "shiny" in out.stderr
    assert any(m["name"] == "tiny" for m in json.loads(out.stdout))


def test_duplicate_names_name_both_distributions(tmp_path):
    a = make_dist(
        tmp_path / "a", "gm-alpha", "alpha", "gm_alpha_plugin", GOOD_DATASET.format(name="ring")
    )
    b = make_dist(
        tmp_path / "b", "gm-beta", "beta", "gm_beta_plugin", GOOD_DATASET.format(name="ring")
    )
    out = gm_run("list-datasets", paths=(a, b))
    assert out.returncode == 2
    assert "gm-alpha" in out.stderr and "gm-beta" in out.stderr and "Traceback" not in out.stderr
    assert len(error_lines(out)) == 1


def test_disable_and_load_plugins_select(tmp_path):
    a = make_dist(
        tmp_path / "a", "gm-alpha", "alpha", "gm_alpha_plugin", GOOD_DATASET.format(name="ring")
    )
    names = lambda out: {d["name"] for d in json.loads(out.stdout)}  # noqa: E731
    assert "ring" in names(gm_run("list-datasets", "--json", paths=(a,)))
    assert "ring" not in names(
        gm_run("list-datasets", "--json", paths=(a,), env={"GM_DISABLE_PLUGINS": "gm-alpha"})
    )
    only = gm_run("list-models", "--json", paths=(a, TINY), env={"GM_LOAD_PLUGINS": "alpha"})
    assert "tiny" not in {m["name"] for m in json.loads(only.stdout)}


def test_misspelled_hook_is_caught(tmp_path):
    bad = make_dist(
        tmp_path / "m",
        "gm-typo",
        "typo",
        "gm_typo_plugin",
        "import gm\n\n@gm.hookimpl\ndef gm_model():\n    return []\n",
    )
    out = gm_run("list-models", paths=(bad,))
    assert out.returncode == 2 and "gm_model" in out.stderr and "gm-typo" in out.stderr
    assert "Traceback" not in out.stderr


def test_broken_plugin_command_is_a_warning(tmp_path):
    code = (
        "import gm\nfrom gm.specs import CommandSpec\n\n@gm.hookimpl\ndef gm_commands():\n"
        '    return [CommandSpec("polish", "gm_missing_module:polish", "broken verb")]\n'
    )
    bad = make_dist(tmp_path / "c", "gm-polish", "polish", "gm_polish_plugin", code)
    out = gm_run("list-models", paths=(TINY, bad))
    assert out.returncode == 0 and "polish" in out.stderr and "gm-polish" in out.stderr
