"""Listing commands must not import torch: they read lazy registry records only."""

import json
import subprocess
import sys

import pytest
from conftest import TINY, env_with

PROBE = """
import sys
from gm.cli import main
try:
    main({args!r})
except SystemExit as e:
    code = e.code
else:
    code = 0
print("TORCH_IMPORTED" if "torch" in sys.modules else "NO_TORCH", code, file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["list-models"],
        ["list-datasets"],
        ["list-components"],
        ["plugins", "--json"],
        ["train", "--help"],
    ],
)
def test_listing_does_not_import_torch(args):
    env = env_with(TINY)
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **env},
        timeout=60,
    )
    assert "NO_TORCH 0" in out.stderr, out.stderr


def test_plugins_json_lists_builtin_and_entry_point_plugins():
    from conftest import gm_run

    out = gm_run("plugins", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["gm-core"]["hooks"] == ["gm_datasets", "gm_loggers", "gm_models", "gm_trainers"]
    assert rows["tiny"]["distribution"] == "gm-tiny" and rows["tiny"]["hooks"] == [
        "gm_models",
        "gm_trainers",
    ]


def test_list_models_and_datasets_json_and_pattern():
    from conftest import gm_run

    models = json.loads(gm_run("list-models", "--json").stdout)
    assert {"name": "tiny", "plugin": "gm-tiny"}.items() <= models[-1].items() or any(
        m["name"] == "tiny" and m["plugin"] == "gm-tiny" for m in models
    )
    data = json.loads(gm_run("list-datasets", "mog*", "--json").stdout)
    assert [d["name"] for d in data] == ["mog-grid"]
    assert (
        data[0]["offline"] is True and data[0]["modality"] == "vector" and data[0]["shape"] == [2]
    )
