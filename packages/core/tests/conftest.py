import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    """stderr lines other than warnings about other installed plugins."""
    return [
        ln
        for ln in out.stderr.strip().splitlines()
        if ln.strip() and not ln.startswith("gm: warning:")
    ]


def forked(fn, timeout: float = 60) -> tuple[int, str]:
    """Run ``fn()`` in a forked child process (a real process that signals can end, without
    a fresh interpreter's start-up); returns (exit status as a shell reports it, stderr).
    A child ended by a signal reports 128 + the signal's number, as the shell does."""
    import signal
    import tempfile
    import time

    err = tempfile.TemporaryFile()  # noqa: SIM115 - the child writes it, the parent reads it
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.dup2(err.fileno(), 2)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            fn()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - report anything, then leave
            import traceback

            traceback.print_exc()
            code = 99
        finally:
            sys.stderr.flush()
            os._exit(code)
    deadline = time.time() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise TimeoutError("the forked child did not finish")
        time.sleep(0.01)
    err.seek(0)
    text = err.read().decode(errors="replace")
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status), text
    return os.WEXITSTATUS(status), text
