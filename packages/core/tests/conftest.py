import os
import subprocess
import sys
from pathlib import Path

import pytest

from gm.testing import forked  # noqa: F401 - re-exported for the tests

FIXTURES = Path(__file__).parent / "fixtures"
TINY = FIXTURES / "tinyplugin"


def make_dist(root: Path, dist: str, entry: str, module: str, code: str) -> Path:
    """A real installed distribution (dist-info + module) under ``root``, for sys.path."""
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[gm]\n{entry} = {module}\n")
    (root / f"{module}.py").write_text(code)
    return root


def env_with(*paths: Path, **extra: str) -> dict[str, str]:
    """This process's environment with ``paths`` put first on PYTHONPATH (kept, so a checkout
    whose packages are on PYTHONPATH tests its own code, not an installed copy)."""
    old = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*map(str, paths), *([old] if old else [])]),
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def gm_run(
    *args: str,
    paths: tuple[Path, ...] = (TINY,),
    env: dict | None = None,
    timeout: float = 120,
    **kw,
) -> subprocess.CompletedProcess:
    """Run the real `gm` command line in a fresh interpreter, with extra plugin paths."""
    full = env_with(*paths, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "gm", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
        **kw,
    )


@pytest.fixture
def tiny_plugin(monkeypatch):
    """The `tiny` test model registered in this process through its entry point."""
    from gm import plugins

    monkeypatch.syspath_prepend(str(TINY))
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture(autouse=True)
def _threads():
    import torch

    torch.set_num_threads(1)


def error_lines(out: subprocess.CompletedProcess) -> list[str]:
    """stderr lines other than warnings about other installed plugins and progress lines
    (in a pipe those are timestamped log lines: ``2026-01-01 10:00:00 gm: loading ...``)."""
    import re

    return [
        ln
        for ln in out.stderr.strip().splitlines()
        if ln.strip()
        and not ln.startswith("gm: warning:")
        and not re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", ln)
    ]


def pty_run(*args: str, paths: tuple = (), env: dict | None = None, timeout: float = 120):
    """Run `gm` on a pseudo-terminal (as a person would see it); returns the raw bytes
    read, as (time since start, chunk) pairs, and the exit status."""
    import pty
    import select
    import time

    full = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*map(str, paths), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    start = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:  # the child: become gm
        os.execvpe(sys.executable, [sys.executable, "-m", "gm", *args], full)
    chunks = []
    while time.monotonic() - start < timeout:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append((time.monotonic() - start, chunk.decode(errors="replace")))
    _, status = os.waitpid(pid, 0)
    return chunks, os.waitstatus_to_exitcode(status)


def plain(text: str) -> str:
    """Text without terminal escape sequences."""
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
