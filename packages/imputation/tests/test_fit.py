"""``gm impute FILE --out FILLED``: fit on the file's own observed cells, then fill it; and a
known answer: on multivariate-Gaussian data the law of the missing values given the observed
ones is closed form, so the point imputation can be held to the Bayes RMSE and the draws'
90% intervals to 90% coverage."""

import csv

import numpy as np
import pytest
import torch
from test_cli import gm

from gm_imputation import fit


def holed_gaussian(n: int, seed: int = 0, rate: float = 0.3):
    """Rows of a 4-d Gaussian (unequal variances, correlated), MCAR holes, and for each hole
    its conditional mean and sd given the row's observed values."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T / 4 + 0.2 * np.eye(4)
    mu = np.array([1.0, -2.0, 0.5, 3.0])
    x = rng.multivariate_normal(mu, cov, size=n)
    hole = rng.random(x.shape) < rate
    hole[hole.all(1), 0] = False
    mean, sd = x.copy(), np.zeros_like(x)
    for i in range(n):
        m, o = hole[i], ~hole[i]
        k = cov[np.ix_(m, o)] @ np.linalg.inv(cov[np.ix_(o, o)])
        mean[i, m] = mu[m] + k @ (x[i, o] - mu[o])
        sd[i, m] = np.sqrt(np.diag(cov[np.ix_(m, m)] - k @ cov[np.ix_(o, m)]))
    return x, hole, mean, sd


@pytest.mark.slow  # the default budget on 1,000 rows: about 30 s alone
def test_known_answer_on_gaussian_data():
    torch.manual_seed(0)
    x, hole, bayes_mean, _ = holed_gaussian(1000)
    holed = np.where(hole, np.nan, x)
    trainer, report = fit.fit(holed, seed=0)  # the defaults of gm impute FILE
    assert report.observation == "gaussian"
    point, draws = {}, []
    fit.fill(trainer, holed, lambda k, a, r: point.__setitem__(k, r))
    fit.fill(trainer, holed, lambda k, a, r: draws.append(r), samples=60)
    bayes = np.sqrt(((bayes_mean - x)[hole] ** 2).mean())
    rmse = np.sqrt(((point[0] - x)[hole] ** 2).mean())
    lo, hi = np.quantile(np.stack(draws), [0.05, 0.95], axis=0)
    coverage = ((x >= lo) & (x <= hi))[hole].mean()
    # 1.10 held with the old fixed 600 steps of a wider net; the defaults now trade some of
    # it for speed (0.975 vs Bayes 0.882 here, 1.105x): reported with issue 24
    assert rmse < 1.12 * bayes, (rmse, bayes)
    assert 0.85 <= coverage <= 0.95, coverage
    # the draws are draws: their spread is the conditional sd, not zero
    assert np.stack(draws).std(0)[hole].mean() > 0.3 * np.sqrt(((bayes_mean - x)[hole] ** 2).mean())


def test_held_out_cells_never_reach_training():
    """The cells held out for early stopping are hidden from every training step: change
    their values (inside each column's range, so the scale stays) and the weights trained
    before the first held-out check are the same, bit for bit."""
    x, hole, _, _ = holed_gaussian(300, seed=1)
    holed = np.where(hole, np.nan, x)
    hold = fit.held_out_cells(~hole, seed=0)
    assert hold.sum() >= fit.MIN_HELD_OUT
    lo, hi = np.nanmin(holed, 0), np.nanmax(holed, 0)
    other = holed.copy()
    inner = hold & (holed > lo) & (holed < hi)
    other[inner] = np.broadcast_to((lo + hi) / 2, holed.shape)[inner]
    assert not np.array_equal(other, holed, equal_nan=True)
    steps = fit.CHECK_EVERY_MIN - 1  # the only check runs after the last step
    weights = []
    for values in (holed, other):
        trainer, _ = fit.fit(values, seed=0, max_steps=steps, overrides={"refine_steps": 2})
        weights.append(torch.cat([p.flatten() for p in trainer.net.parameters()]))
    assert torch.equal(weights[0], weights[1])


def write_rows(path, header, rows, delimiter=","):
    with path.open("w", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)


def table_file(tmp_path, n=150):
    x, hole, _, _ = holed_gaussian(n, seed=2)
    rows = [["" if hole[i, j] else f"{x[i, j]:.4f}" for j in range(4)] for i in range(n)]
    rows[3] = ["", "", "", ""]  # an all-empty row
    for i, r in enumerate(rows):
        r.insert(2, f"id-{i}")  # a text column
    path = tmp_path / "t.csv"
    write_rows(path, ["a", "b", "id", "c", "d"], rows)
    return path, rows


def test_fit_and_fill_a_file_in_one_command(tmp_path, capsys):
    src, rows = table_file(tmp_path)
    out = tmp_path / "filled.csv"
    args = ["impute", src, "--out", out, "--train-steps", "40", "--save-run", tmp_path / "run"]
    code, stdout, err = gm(args, capsys)
    assert code == 0, err
    got = list(csv.reader(out.open(newline="")))
    assert got[0] == ["a", "b", "id", "c", "d"] and len(got) == len(rows) + 1
    for row_in, row_out in zip(rows, got[1:], strict=True):
        for a, b in zip(row_in, row_out, strict=True):
            assert a == b if a else np.isfinite(float(b))
    assert "filled" in stdout and "1 of them empty" in stdout and "id" in stdout
    assert "held-out" in stdout and "fit 40/40" in err  # a summary and progress
    # the saved run fills another file, its columns in another order, matched by name
    shuffled = tmp_path / "s.tsv"
    write_rows(
        shuffled, ["d", "id", "c", "b", "a"], [[r[4], r[2], r[3], r[1], r[0]] for r in rows], "\t"
    )
    code, _, err = gm(
        ["impute", tmp_path / "run", "-i", shuffled, "-o", tmp_path / "s.csv"], capsys
    )
    assert code == 0, err
    back = list(csv.reader((tmp_path / "s.csv").open(newline="")))
    assert back[0] == ["d", "id", "c", "b", "a"] and len(back) == len(rows) + 1
    # a column the run needs is absent: one clear line
    write_rows(tmp_path / "m.csv", ["a", "b", "c"], [[r[0], r[1], r[3]] for r in rows])
    code, _, err = gm(
        ["impute", tmp_path / "run", "-i", tmp_path / "m.csv", "-o", tmp_path / "x.csv"], capsys
    )
    assert code == 2 and "no column 'd'" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "content,extra,message",
    [
        ("a,b\n1,2\n3,4\n", [], "no missing values"),
        ("a,b\n1,\n", [], "one row"),
        ("a,b\n1,\n2,\n", [], "'b' \\(column 2\\) is missing in every row"),
        ("a,b\n1,\n2,3\n", ["--model", "vae"], "--model must be one of"),
        ("a,b\n1,\n2,3\n", ["--out", "o.json"], "use a .csv, .tsv or .npy"),
    ],
)
def test_a_failed_start_writes_nothing(tmp_path, capsys, monkeypatch, content, extra, message):
    import re

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.csv").write_text(content)
    before = set(tmp_path.iterdir())
    out = ["--out", "o.csv"] if "--out" not in extra else []
    code, _, err = gm(["impute", "in.csv", *out, *extra, "--save-run", "run"], capsys)
    assert code == 2 and re.search(message, err), err
    assert set(tmp_path.iterdir()) == before  # no output, no run folder, no config.json
