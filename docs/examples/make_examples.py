"""Renders the examples the README points at: `gm plot` curves of two runs and the model
card `gm push` would upload. One command: python docs/examples/make_examples.py

Two Variational Walkback runs on the swiss roll (the quickstart's model, 400 steps each,
a pilot, not the paper's 1000-minibatch schedule), Adam at 1e-4 (the paper's rate) and 3e-4.
Uploads nothing: the card is built by gm.hub.prepare, the function `gm push` calls.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import gm
from gm import hub
from gm.plotting import plot_runs

HERE = Path(__file__).parent


def main() -> None:
    torch.set_num_threads(1)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for lr in (1e-4, 3e-4):
            runs.append(
                gm.train(
                    "walkback",
                    data="swiss-roll",
                    steps=400,
                    out=Path(tmp) / f"lr{lr:g}",
                    device="cpu",
                    lr=lr,
                    log_every=20,
                    progress=True,
                )
            )
        image = plot_runs([str(r) for r in runs], "loss", labels=["lr 1e-4", "lr 3e-4"])
        image.save(HERE / "curves.png")
        staged = Path(tmp) / "push"
        files = hub.prepare(runs[0], "your-name/walkback-swiss-roll", staged, license="mit")
        card = (staged / "README.md").read_text()
        note = (
            f"\n<!-- example made by python docs/examples/make_examples.py at commit {commit}; "
            f"`gm push` would upload: {', '.join(files)} -->\n"
        )
        (HERE / "model-card.md").write_text(card + note)  # the card's YAML header stays first
        shutil.copy(staged / "samples.png", HERE / "samples.png")
    print(
        f"wrote {HERE / 'curves.png'}, {HERE / 'model-card.md'}, {HERE / 'samples.png'}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
