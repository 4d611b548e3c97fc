"""Progress on the plugins' long loops, from their own code: walkback's sampling chain and
evaluation, professor forcing's free runs, the imputation fit and fill. Each loop is run
in-process inside ``progress.enabled()`` with a line at every step (``HEARTBEAT_S = 0``),
so the lines a log would get over minutes are seen in a second.

Skips unless the plugins are installed (the full workspace, as CI's integration session).
"""

import re

import numpy as np
import pytest
import torch

pytest.importorskip("gm_walkback")
pytest.importorskip("gm_imputation")
pytest.importorskip("gm_professor_forcing")

from gm import (
    progress,  # noqa: E402
    train,  # noqa: E402
)
from gm.data import load_dataset  # noqa: E402
from gm.run import Run

KW = dict(device="cpu", progress=False)


@pytest.fixture
def lines(monkeypatch, capsys):
    """The progress lines a log gets from the code run inside ``with lines() as got:``."""
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.0)

    class Seen:
        def __enter__(self):
            capsys.readouterr()
            self.ctx = progress.enabled()
            self.ctx.__enter__()
            return self

        def __exit__(self, *exc):
            self.ctx.__exit__(*exc)
            self.text = capsys.readouterr().err

        def counts(self, desc: str) -> list[tuple[int, int]]:
            found = re.findall(rf"\d\d:\d\d:\d\d {re.escape(desc)} (\d+)/(\d+)", self.text)
            return [(int(a), int(b)) for a, b in found]

    return Seen


def test_walkback_chain_and_evaluation_show_their_steps(tmp_path, lines):
    from gm_walkback.walkback import WalkbackEvaluateOptions, WalkbackSampleOptions

    run = train("walkback", "swiss-roll", steps=2, out=tmp_path / "r", **KW).path
    trainer = Run.open(run, "cpu").trainer
    with lines() as got:
        trainer.sample(16, WalkbackSampleOptions(extra_steps=250))
    chain = got.counts("chain")
    total = chain[-1][1]
    assert total >= 250 and [a for a, _ in chain] == list(range(1, total + 1))
    options = WalkbackEvaluateOptions(
        trajectories=4, examples=64, chunk=32, chains=8, burn_in=5, chain_steps=200, samples=64
    )
    data = load_dataset("swiss-roll", None, {})
    with lines() as got:
        trainer.evaluate(data, "test", options)
    assert got.counts("log-likelihood")[-1] == (8, 8)  # 64 examples, 8 a chunk
    assert got.counts("reversibility chain")[-1] == (200, 200)


def test_free_running_draws_show_their_steps(tmp_path, lines):
    from gm_professor_forcing.trainers import SampleOptions

    sets = {"hidden": 16, "embed": 8}
    run = train("teacher-forcing", "markov-chain", steps=2, out=tmp_path / "r", **KW,
                **sets).path  # fmt: skip
    trainer = Run.open(run, "cpu").trainer
    with lines() as got:
        trainer.sample(2, SampleOptions(steps=250))
    assert got.counts("free-running")[-1] == (250, 250)
    with lines() as got:
        trainer.sample(2, SampleOptions(steps=50))  # short: no bar
    assert got.counts("free-running") == []


def test_imputation_fit_and_fill_show_their_steps(lines):
    from gm_imputation import fit

    rng = np.random.default_rng(0)
    values = rng.normal(size=(120, 3))
    values[rng.random(values.shape) < 0.2] = np.nan
    with lines() as got:
        trainer, report = fit.fit(values, max_steps=30, seed=0)
        rows = []
        fit.fill(trainer, values, lambda k, a, r: rows.append(r), samples=1)
    steps = got.counts("fit")
    assert steps[-1] == (report.steps_run, 30) and len(steps) >= report.steps_run  # every step
    assert got.counts("impute")[-1][0] == got.counts("impute")[-1][1] >= 1
    assert sum(map(len, rows)) == len(values) and torch.isfinite(torch.tensor(rows[0])).all()
