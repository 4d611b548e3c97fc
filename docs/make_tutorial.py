"""Makes docs/tutorial.md: the three lines of gm walked with the real command line, their
real outputs and pictures. One command: python docs/make_tutorial.py

    --quick     a few steps per model (CI's integration session runs it): the commands
                and the page are checked, the models learn nothing worth showing
    --out DIR   where the page and its pictures go (default: docs/, the published page)

Every command is run for real (``python -m gm ...`` in a scratch folder) and its output
pasted as it came; the page names the commit it was made at, the time each step took and
the machine's load, because this machine is shared.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# (full, quick) sizes: the full ones fit a few minutes each on one CPU thread
SIZES = {
    "walkback": (300, 3),
    "text": (300, 3),
    "impute": (1500, 30),
}


class Page:
    """The page as it is written: text, commands with their outputs, pictures."""

    def __init__(self, work: Path, pictures: Path, prefix: str):
        self.work, self.pictures, self.prefix = work, pictures, prefix
        self.parts: list[str] = []
        self.seconds: dict[str, float] = {}

    def text(self, markdown: str) -> None:
        self.parts.append(markdown.strip() + "\n")

    def gm(self, *args: str, show: str = "both", keep: int = 12) -> str:
        """Run ``gm ARGS`` in the scratch folder; paste the command and its output."""
        env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "100", "PYTHONWARNINGS": "ignore"}
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "gm", *args], cwd=self.work, env=env, text=True,
            capture_output=True, timeout=1800,
        )  # fmt: skip
        spent = time.perf_counter() - began
        command = "gm " + " ".join(shlex.quote(a) for a in args)
        if done.returncode != 0:
            raise SystemExit(f"{command} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        self.seconds[command] = spent
        out = done.stdout if show == "stdout" else _progress(done.stderr) + "\n" + done.stdout
        lines = [ln.rstrip() for ln in out.strip().splitlines()]
        if len(lines) > keep:
            lines = [*lines[: keep - 3], f"... ({len(lines) - keep + 1} lines more)", *lines[-2:]]
        self.parts.append(
            f"```console\n$ {command}\n" + "\n".join(lines) + f"\n```\n\n*({spent:.0f} s)*\n"
        )
        return done.stdout

    def picture(self, made: Path, alt: str) -> None:
        shutil.copy(made, self.pictures / made.name)
        self.parts.append(f"![{alt}]({self.prefix}{made.name})\n")


def _progress(stderr: str) -> str:
    """The lines a person sees in a log: timestamps dropped, the bar's many lines thinned."""
    lines = [re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", ln) for ln in stderr.splitlines()]
    bar = [i for i, ln in enumerate(lines) if re.match(r"train \d+/\d+", ln)]
    keep = set(bar[:2] + bar[-2:])
    return "\n".join(ln for i, ln in enumerate(lines) if i not in bar or i in keep)


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    return head + (" (with uncommitted changes)" if dirty else "")


def walkback(page: Page, quick: bool) -> None:
    steps = SIZES["walkback"][quick]
    page.text(
        f"""
## 1. Variational Walkback on digits

`digits` is scikit-learn's 1,797 handwritten digits, 8x8 grey levels (`gm list-datasets`
says where each dataset comes from and under which licence). Walkback learns a transition
operator that walks noise back to the data; here a narrowed net (`hidden=256`, the paper's
is 1200) for {steps} steps, so that it runs in minutes on one CPU thread:
"""
    )
    page.gm("train", "walkback", "--dataset", "digits", "--steps", str(steps), "--out",
            "runs/digits", "--set", "hidden=256", "--set", "lr=1e-3", "--set", "log_every=50",
            "--threads", "1", "--device", "cpu")  # fmt: skip
    page.text(
        """
The bar shows the running mean of the loss as it trains; `metrics.jsonl` gets a row every
`log_every` steps (and at the step a Ctrl-C stops at). The curve, and 64 samples:
"""
    )
    page.gm("plot", "runs/digits", "--out", "digits-loss.png")
    page.picture(page.work / "digits-loss.png", "walkback loss by step")
    page.gm("sample", "runs/digits", "-n", "64", "--out", "digits-samples.png", "--device", "cpu")
    page.picture(page.work / "digits-samples.png", "64 walkback samples")
    page.text(
        """
Inpainting: the bottom half of 16 test digits is hidden and the chain fills it with the
known half clamped at every step (rows: the digit, what the model saw, its fill):
"""
    )
    page.gm("inpaint", "runs/digits", "--mask", "bottom-half", "--out", "digits-inpaint.png",
            "--device", "cpu")  # fmt: skip
    page.picture(page.work / "digits-inpaint.png", "walkback inpainting")
    page.gm("evaluate", "runs/digits", "--device", "cpu", show="stdout", keep=20)
    page.text(
        """
`gm evaluate` keeps what it measured in `runs/digits/evaluation.json`, so the model card
`gm push` writes states it under *Limitations* with the licence of the data (digits:
CC BY 4.0) and the paper's BibTeX.
"""
    )


def professor_forcing(page: Page, quick: bool) -> None:
    steps = SIZES["text"][quick]
    shutil.copy(ROOT / "README.md", page.work / "readme.txt")
    page.text(
        f"""
## 2. Professor forcing on a text file

Any UTF-8 file is a dataset: `text:FILE` reads it as characters (its own alphabet, windows
of fixed length). Here gm's own README, {(page.work / "readme.txt").stat().st_size:,}
characters, and professor forcing: a GRU trained by likelihood plus a discriminator that
makes its free-running behaviour match its teacher-forced behaviour; narrowed (GRU 128
wide, discriminator 64; the thesis uses 1024 and 2048) for {steps} steps:
"""
    )
    page.gm("train", "professor-forcing", "--dataset", "text:readme.txt", "--steps", str(steps),
            "--out", "runs/readme", "--set", "hidden=128", "--set", "embed=32", "--set",
            "d_hidden=64", "--set", "d_mlp=64", "--set", "log_every=50", "--threads", "1",
            "--device", "cpu")  # fmt: skip
    page.text(
        """
Text samples print as text (`--out samples.txt` or `.npy` saves them instead), so the
indentation and line breaks are the model's own:
"""
    )
    page.gm("sample", "runs/readme", "-n", "2", "--steps", "300", "--temperature", "0.8",
            "--device", "cpu", show="stdout", keep=30)  # fmt: skip
    page.gm("evaluate", "runs/readme", "--device", "cpu", show="stdout", keep=20)


def impute(page: Page, quick: bool) -> None:
    from sklearn.datasets import load_wine

    steps = SIZES["impute"][quick]
    wine = load_wine()
    table = wine.data
    rng = np.random.default_rng(0)
    holes = table.copy()
    missing = rng.random(table.shape) < 0.2
    holes[missing] = np.nan
    names = [n.replace(",", " ") for n in wine.feature_names]
    np.savetxt(page.work / "wine-holes.csv", holes, delimiter=",", header=",".join(names),
               comments="", fmt="%.6g")  # fmt: skip
    page.text(
        f"""
## 3. `gm impute` on a table

scikit-learn's wine table ({table.shape[0]} rows, {table.shape[1]} columns) with 20% of
its cells punched out at random (empty in the CSV: `nan`). `gm impute` fits a GPSI policy
on the observed cells of the file itself (early stopping on held-out observed cells, at
most {steps} steps) and writes the file filled:
"""
    )
    page.gm("impute", "wine-holes.csv", "--out", "wine-filled.csv", "--train-steps", str(steps),
            "--save-run", "runs/wine", "--device", "cpu", keep=16)  # fmt: skip
    filled = np.loadtxt(page.work / "wine-filled.csv", delimiter=",", skiprows=1)
    sd = table.std(0)
    rmse = float(np.sqrt((((filled - table) / sd)[missing] ** 2).mean()))
    means = np.nanmean(holes, 0)
    mean_rmse = float(np.sqrt((((means - table) / sd)[missing] ** 2).mean()))
    page.text(
        f"""
Against the true values of the punched-out cells (known here, never in real use), in
units of each column's standard deviation: **RMSE {rmse:.3f}**, where filling each
column's mean gives {mean_rmse:.3f}. (The imputation results page compares gm with
scikit-learn's imputers on several tables: they are better there.) The saved run fills
other files with the same columns: `gm impute runs/wine --input more.csv --out done.csv`.
"""
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps per model (CI)")
    parser.add_argument("--out", type=Path, default=DOCS, help="folder of tutorial.md")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    pictures = out / "tutorial"
    pictures.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        page = Page(Path(tmp), pictures, "tutorial/")
        mode = (
            "quick mode (`--quick`): too few steps to learn; CI runs it"
            if args.quick
            else "full mode"
        )
        page.text(
            f"""
# Tutorial: the three lines of gm, run for real

Made by `python docs/make_tutorial.py{" --quick" if args.quick else ""}` at commit
`{commit()}`, {mode}, on {os.cpu_count()} CPU cores shared with other jobs (load average
{load:.1f} at the start; no GPU), one thread per model. Every command below ran as shown,
in a scratch folder; its output is pasted as it came (the progress bar's lines thinned),
with the time it took. The models are small and briefly trained: this page shows how to
use gm, not what the methods can reach (the results pages under docs/results/ do that).

Install first, from a clone: `pip install -c constraints.txt ./packages/core
./packages/walkback ./packages/professor-forcing ./packages/imputation
"./packages/datasets[sklearn]"`.
"""
        )
        walkback(page, args.quick)
        professor_forcing(page, args.quick)
        impute(page, args.quick)
        total = time.perf_counter() - began
        page.text(f"*The whole page took {total / 60:.1f} minutes to make.*")
        (out / "tutorial.md").write_text("\n".join(page.parts))
    print(f"wrote {out / 'tutorial.md'} and {pictures}/ in {total:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
