"""tools/mutate.py: a mutant the tests see is killed, one they cannot see survives, and the
file is restored byte for byte."""

import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).parents[1] / "tools" / "mutate.py"
MODULE = '''"""A sign - and a sum."""


def f(x: int = 1) -> int:
    y = x * 2 + 1
    if x < 0:
        return -y
    return y
'''


def test_kills_what_the_test_sees_and_restores_the_file(tmp_path):
    (tmp_path / "mod.py").write_text(MODULE)
    (tmp_path / "test_mod.py").write_text(
        "from mod import f\n\n\ndef test_f():\n    assert f(1) == 3\n"
    )
    r = subprocess.run(
        [
            sys.executable,
            str(TOOL),
            "mod.py",
            "--only",
            "f",
            "--report",
            "r.md",
            "--test",
            f"{sys.executable} -m pytest -q -x -p no:cacheprovider test_mod.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "mod.py").read_text() == MODULE
    report = (tmp_path / "r.md").read_text()
    assert "| `mod.py:5` | `x * 2 + 1` | `(x * 2 - 1)` | killed |" in report
    assert "| `mod.py:7` | `-y` | `(y)` | survived |" in report  # f(-1) is never tested
    rows = [ln for ln in report.splitlines() if ln.startswith("| `mod.py")]
    assert not any("A sign" in r or "`int`" in r for r in rows)  # docstrings, annotations
