"""The README's plugin example works as printed: it is installed as a real entry point."""

import json
import re
from pathlib import Path

import pytest
from conftest import gm_run, make_dist

README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.mark.slow  # 10 s (durations run, 1 thread, load 4-7)
def test_readme_plugin_example(tmp_path):
    text = README.read_text()
    section = text[text.index("## Write your own plugin") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len([ln for ln in code.splitlines() if ln.strip()]) <= 15
    entry = re.search(r'\[project.entry-points.gm\] (\w+) = "(\w+)"', section)
    root = make_dist(tmp_path / "p", "my-gm-plugin", entry.group(1), entry.group(2), code)
    listed = gm_run("list-datasets", "spiral", "--json", paths=(root,))
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["plugin"] == "my-gm-plugin"
    run = tmp_path / "run"
    trained = gm_run(
        "train",
        "gaussian",
        "--dataset",
        "spiral",
        "--steps",
        "20",
        "--out",
        str(run),
        "--device",
        "cpu",
        paths=(root,),
    )
    assert trained.returncode == 0, trained.stderr
    assert (run / "model.safetensors").exists()
