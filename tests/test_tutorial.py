"""The tutorial's one script in its quick mode (CI's integration session runs this file):
every command on the page runs for real, and the page names the commit that made it."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_tutorial_quick_mode_makes_the_whole_page_and_names_its_commit(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "make_tutorial.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    page = (tmp_path / "tutorial.md").read_text()
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    assert re.search(rf"at commit\s+`{head}", page), page[:600]
    assert "quick mode" in page
    for section in ("Variational Walkback on digits", "Professor forcing on a text file",
                    "`gm impute` on a table"):  # fmt: skip
        assert section in page
    for picture in ("digits-loss.png", "digits-samples.png", "digits-inpaint.png"):
        assert f"(tutorial/{picture})" in page and (tmp_path / "tutorial" / picture).stat().st_size
    # real outputs: the text sample printed on stdout, the imputation scored against truth
    assert "=== sample 1 ===" in page and re.search(r"\*\*RMSE \d\.\d{3}\*\*", page)
