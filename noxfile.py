"""Test sessions. Plain `nox` runs the CI set: lint, mypy, each package alone, integration, ddp.
(`pip install nox` first: nox is not a dependency of any package.)

Installs pin torch through constraints.txt (the local CPU build on the project's machines);
users installing the packages elsewhere get the torch build for their platform.
"""

from pathlib import Path

import nox

nox.options.sessions = ["lint", "mypy", "tests", "integration", "ddp"]
nox.options.reuse_existing_virtualenvs = False

ROOT = Path(__file__).parent
PLUGINS = sorted(
    p.name
    for p in (ROOT / "packages").iterdir()
    if (p / "pyproject.toml").exists() and p.name != "core"
)
PIN = ["-c", "constraints.txt"]


def _with_test_extra(package: str) -> str:
    text = (ROOT / "packages" / package / "pyproject.toml").read_text()
    return f"./packages/{package}[test]" if "\ntest = [" in text else f"./packages/{package}"


@nox.session
def lint(session):
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


# Every package's sources type-check clean (config in the root pyproject.toml); a new
# package joins here. The plugins are installed so their imports of each other resolve.
TYPED = ["packages/core/src", *(f"packages/{p}/src" for p in PLUGINS)]


@nox.session
def mypy(session):
    """Type checks of the sources in TYPED, with every package installed."""
    session.install(*PIN, "mypy", *(f"./packages/{p}" for p in ["core", *PLUGINS]))
    session.run("mypy", *TYPED)


@nox.session
@nox.parametrize("package", ["core", *PLUGINS])
def tests(session, package):
    """One package's tests with only that package and gm-core installed."""
    targets = [_with_test_extra("core")] + (
        [_with_test_extra(package)] if package != "core" else []
    )
    session.install(*PIN, "pytest", *targets)
    session.run(
        "pytest", f"packages/{package}/tests", *session.posargs, env={"OMP_NUM_THREADS": "2"}
    )


@nox.session
def quick(session):
    """The loop while editing: every package's tests without the slow ones (-m "not slow"),
    everything installed once. Not part of plain `nox`, which runs the slow ones too."""
    session.install(*PIN, "pytest", *(_with_test_extra(p) for p in ["core", *PLUGINS]))
    for package in ["core", *PLUGINS]:
        session.run(
            "pytest", f"packages/{package}/tests", "-m", "not slow", *session.posargs,
            env={"OMP_NUM_THREADS": "2"},
        )  # fmt: skip


@nox.session
def integration(session):
    """Everything installed together: cross-package tests, then every package's tests again
    (each in its own pytest process: their conftest modules share a name)."""
    session.install(*PIN, "pytest", *(_with_test_extra(p) for p in ["core", *PLUGINS]))
    session.install(*PIN, "./packages/datasets[mnist-5k]")  # the real digits' test runs here
    env = {"OMP_NUM_THREADS": "2"}
    session.run("pytest", "tests", "--ignore=tests/test_ddp.py",
                "--ignore=tests/test_tutorial.py", *session.posargs, env=env)  # fmt: skip
    for package in ["core", *PLUGINS]:
        session.run("pytest", f"packages/{package}/tests", *session.posargs, env=env)
    # docs/tutorial.md's one script, --quick: every command on the page runs, the page
    # it makes names its commit (regenerate the published page: python docs/make_tutorial.py)
    session.run("pytest", "tests/test_tutorial.py", *session.posargs, env=env)


@nox.session
def ddp(session):
    """Real torchrun runs with 2 gloo processes for every installed model."""
    session.install(*PIN, "pytest", *(_with_test_extra(p) for p in ["core", *PLUGINS]))
    session.run("pytest", "tests/test_ddp.py", *session.posargs, env={"OMP_NUM_THREADS": "1"})


@nox.session
def bench(session):
    """Every benchmark; rewrites docs/benchmarks.md."""
    session.install(*PIN, *(_with_test_extra(p) for p in ["core", *PLUGINS]))
    session.run("bash", "bench/run", external=True)
