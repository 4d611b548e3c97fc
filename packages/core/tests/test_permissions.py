"""Files and folders a run creates get the ordinary permissions of the user's umask
(``mkstemp``/``mkdtemp`` alone would leave them 0600/0700, unreadable by the group)."""

import os
import stat

from gm import train


def test_run_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        train("gaussian", "swiss-roll", out=tmp_path / "run", steps=3, device="cpu")
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert any(p.name == "model.safetensors" for p in files)
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
