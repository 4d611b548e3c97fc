"""Mixed-type tables: the categorical observation model against a hand-computed case, the
schema's round trip, the selection rule, and a real fit where a text column carries the
information (the trial's penguins: two species, two bill lengths)."""

import csv
import math

import numpy as np
import pytest
import torch
from test_cli import gm

from gm_imputation import fit, mixed
from gm_imputation.observation import Mixed


def mixed_obs():
    """One Gaussian value, then a category of 3 levels, then another Gaussian value."""
    return Mixed(5, [(1, 3)])


def canvas(mu0=0.3, logits=(0.0, math.log(2.0), 0.0), mu4=0.9, lv=(math.log(0.04), 0.0)):
    # heads (D = 5), then one log-variance per Gaussian value, pre-bound: 8 atanh(v / 8)
    raw = [8 * math.atanh(v / 8) for v in lv]
    return torch.tensor([[mu0, *logits, mu4, *raw]])


def test_the_categorical_likelihood_by_hand():
    obs = mixed_obs()
    assert obs.width(5) == 7 and obs.name == "gaussian+categorical"
    x = torch.tensor([[0.5, 0.0, 1.0, 0.0, 0.4]])  # level 2 of 3 (probability 2/4)
    c = canvas()
    assert torch.equal(obs.train_nll(c, x, torch.ones(1, 5)), obs.nll(c, x, torch.ones(1, 5)))
    gauss0 = 0.5 * (math.log(2 * math.pi) + math.log(0.04) + 0.2**2 / 0.04)
    gauss4 = 0.5 * (math.log(2 * math.pi) + 0.0 + 0.5**2)
    cat = -math.log(0.5)
    only = lambda *dims: torch.tensor([[float(d in dims) for d in range(5)]])  # noqa: E731
    assert obs.nll(c, x, only(1, 2, 3)).item() == pytest.approx(cat, rel=1e-5)
    assert obs.nll(c, x, only(0)).item() == pytest.approx(gauss0, rel=1e-5)
    assert obs.nll(c, x, only(4)).item() == pytest.approx(gauss4, rel=1e-5)
    assert obs.nll(c, x, only(0, 1, 2, 3, 4)).item() == pytest.approx(
        gauss0 + gauss4 + cat, rel=1e-5
    )
    # another level observed: its own probability (1/4)
    y = torch.tensor([[0.5, 1.0, 0.0, 0.0, 0.4]])
    assert obs.nll(c, y, only(1, 2, 3)).item() == pytest.approx(math.log(4), rel=1e-5)
    # the guess the policies see: the mean for numbers, the level probabilities
    assert torch.allclose(obs.canvas(c), torch.tensor([[0.3, 0.25, 0.5, 0.25, 0.9]]))


def test_beta_nll_weights_the_gaussian_terms_by_their_variance_only():
    obs = Mixed(5, [(1, 3)], beta=0.5)
    x = torch.tensor([[0.5, 0.0, 1.0, 0.0, 0.4]])
    c = canvas()
    w = torch.ones(1, 5)
    gauss0 = 0.5 * (math.log(2 * math.pi) + math.log(0.04) + 1.0) * 0.04**0.5
    gauss4 = 0.5 * (math.log(2 * math.pi) + 0.25)
    assert obs.train_nll(c, x, w).item() == pytest.approx(gauss0 + gauss4 + math.log(2), rel=1e-5)
    assert obs.nll(c, x, w).item() == pytest.approx(  # the reported NLL is the NLL
        0.5 * (math.log(2 * math.pi) + math.log(0.04) + 1.0) + gauss4 + math.log(2), rel=1e-5
    )


def test_draws_are_levels_at_their_probabilities_and_numbers_at_their_spread():
    torch.manual_seed(0)
    obs = mixed_obs()
    c = canvas(mu0=0.5).repeat(20000, 1)  # 2.5 sd inside [0, 1], where draws are clamped
    d = obs.draw(c)
    hot = d[:, 1:4]
    assert torch.all(hot.sum(1) == 1) and torch.all((hot == 0) | (hot == 1))  # one level
    assert torch.allclose(hot.mean(0), torch.tensor([0.25, 0.5, 0.25]), atol=0.015)
    assert d[:, 0].mean().item() == pytest.approx(0.5, abs=0.01)
    assert d[:, 0].std().item() == pytest.approx(0.2, abs=0.01)  # sd = sqrt(0.04)


def test_the_schema_round_trip():
    schema = mixed.Schema(
        [
            mixed.Column("a", "real"),
            mixed.Column("s", "category", ["x", "y", "z"]),
            mixed.Column("n", "integer"),
        ]
    )
    codes = np.array([[1.5, 2, 3], [np.nan, 0, np.nan], [0.25, np.nan, 7]])
    enc = schema.encode(codes)
    assert enc.shape == (3, 5) and schema.groups() == [(1, 3)]
    assert np.array_equal(enc[0], [1.5, 0, 0, 1, 3]) and np.isnan(enc[2, 1:4]).all()
    assert list(schema.dim_column()) == [0, 1, 1, 1, 2]
    back = schema.decode(np.array([[1.5, 0.1, 0.2, 0.7, 3.4], [2.0, 0.6, 0.3, 0.1, 6.6]]))
    assert np.array_equal(back, [[1.5, 2, 3], [2.0, 0, 7]])  # the likeliest level; integers
    assert mixed.Schema.from_meta(schema.to_meta()) == schema


def test_index_and_name_columns():
    assert mixed.is_index("", None) and mixed.is_index("rownames", np.arange(1.0, 11))
    assert mixed.is_index("id", np.arange(0.0, 5)) and not mixed.is_index("x", np.arange(2.0, 9))
    assert not mixed.is_index("x", np.array([1.0, 2, 4])) and not mixed.is_index("x", None)
    assert mixed.text_levels([f"n{i}" for i in range(40)]) is None  # a name per row
    assert mixed.text_levels(["b", "a", None, "b"] * 5) == ["a", "b"]
    at_most = [f"l{i % mixed.MAX_LEVELS}" for i in range(4 * mixed.MAX_LEVELS)]
    assert len(mixed.text_levels(at_most)) == mixed.MAX_LEVELS  # the most levels: a category
    assert mixed.text_levels(at_most + ["one more"]) is None
    assert mixed.is_index("x", np.arange(1.0, 4)) and not mixed.is_index("x", np.arange(1.0, 3))


def test_selection_keeps_the_least_imputation_error_not_the_best_bound():
    picked = fit.Best("error")
    picked.offer(100, error=0.50, bound=-2.0, weights=lambda: "step 100")  # better bound
    picked.offer(200, error=0.40, bound=-1.0, weights=lambda: "step 200")  # better error
    picked.offer(300, error=0.45, bound=-3.0, weights=lambda: "step 300")
    assert (picked.weights, picked.step, picked.since) == ("step 200", 200, 1)
    by_bound = fit.Best("bound")
    for step, e, b in ((100, 0.5, -2.0), (200, 0.4, -1.0), (300, 0.45, -3.0)):
        by_bound.offer(step, e, b, lambda s=step: f"step {s}")
    assert by_bound.weights == "step 300"


def species_table(n=160, seed=0):
    """Two species, bill lengths 38.8 vs 47.5 mm (sd 2), body mass tied to the bill."""
    rng = np.random.default_rng(seed)
    species = rng.choice(["Adelie", "Gentoo"], n)
    bill = np.where(species == "Adelie", 38.8, 47.5) + rng.normal(0, 2, n)
    mass = np.rint(100 * bill + rng.normal(0, 150, n)).astype(int)
    return species, bill, mass


@pytest.mark.slow  # a real fit: about 15 s alone, more on a shared CPU
def test_a_text_column_is_used_and_imputed(tmp_path, capsys):
    species, bill, mass = species_table()
    rng = np.random.default_rng(1)
    hide_bill = rng.random(len(bill)) < 0.25
    hide_species = ~hide_bill & (rng.random(len(bill)) < 0.15)
    path = tmp_path / "penguins.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", "species", "bill_length_mm", "body_mass_g"])  # R's row names
        for i in range(len(bill)):
            w.writerow(
                [
                    str(i + 1),
                    "NA" if hide_species[i] else species[i],
                    "" if hide_bill[i] else f"{bill[i]:.1f}",
                    str(mass[i]),
                ]
            )
    out = tmp_path / "filled.csv"
    code, stdout, err = gm(["impute", path, "--out", out, "--train-steps", "800"], capsys)
    assert code == 0, err
    assert "left out of the model as a row index or names: column 1" in stdout
    rows = list(csv.reader(out.open(newline="")))[1:]
    assert [r[0] for r in rows] == [str(i + 1) for i in range(len(bill))]  # the index, as is
    got_species = np.array([r[1] for r in rows])
    assert set(got_species) == {"Adelie", "Gentoo"}  # every hole a level of the column
    assert (got_species[hide_species] == species[hide_species]).mean() >= 0.9
    filled = np.array([float(r[2]) for r in rows])
    for s, mean in (("Adelie", 38.8), ("Gentoo", 47.5)):
        pick = hide_bill & (species == s)
        assert abs(filled[pick].mean() - mean) < 2.0, (s, filled[pick].mean())
    assert all(r[3].lstrip("-").isdigit() for r in rows)  # the integer column stays integer


def tiny_fit():
    rng = np.random.default_rng(0)
    codes = np.column_stack([rng.normal(5, 2, 40), rng.integers(0, 3, 40).astype(float)])
    codes[rng.random(codes.shape) < 0.2] = np.nan
    schema = mixed.Schema(
        [mixed.Column("a", "real"), mixed.Column("s", "category", ["x", "y", "z"])]
    )
    return codes, fit.fit(codes, schema=schema, max_steps=1)[0]


def test_a_runs_column_ranges_are_per_column():
    codes, trainer = tiny_fit()
    lo, hi = fit.column_range(trainer)
    assert lo.tolist() == pytest.approx([np.nanmin(codes[:, 0]), 0.0])
    assert hi.tolist() == pytest.approx([np.nanmax(codes[:, 0]), 2.0])  # levels 0..2


def test_the_weight_average_warms_up_from_the_first_updates():
    """After k updates the average weighs the initial weights by prod (1 - k/(k+9))-ish,
    not by 0.99^k: one update leaves 1/10 of the start (with decay 0.99: 99/100)."""
    _, trainer = tiny_fit()
    avg = fit.WeightAverage(trainer, 0.99)
    before = trainer.net.c0.detach().clone()
    with torch.no_grad():
        trainer.net.c0.add_(1.0)
    avg.update(trainer)
    assert torch.allclose(avg.avg["net"]["c0"], before + 0.9)
    with torch.no_grad():
        trainer.net.c0.add_(1.0)
    avg.update(trainer)  # decay 2/11 now: 2/11 of the average, 9/11 of the live weights
    assert torch.allclose(avg.avg["net"]["c0"], (2 / 11) * (before + 0.9) + (9 / 11) * (before + 2))
