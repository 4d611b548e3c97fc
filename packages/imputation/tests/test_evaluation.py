"""The one evaluation protocol: batches add up to the whole split, and the VAE's reported
pass is the best of its passes (oracular) with the last one beside it."""

import torch
from conftest import close, make_trainer, train_steps, vector_dataset
from test_policies import BERN, hand_set_gpsi


def test_batches_add_up_to_the_whole_split():
    data = vector_dataset(60, dim=4)
    tr = make_trainer("gpsi-add", data, hidden=8, z_dim=2, refine_steps=2, **BERN)
    # zero weights: the roll-outs do not depend on their noise, so batching cannot matter
    # (but for the importance-weighted bound, whose log p(z)/q(z) is of the drawn z)
    hand_set_gpsi(tr, torch.tensor([0.3, -0.2, 0.1, 0.0]), torch.full((4,), 0.2), 0.5)
    one = tr.evaluate(data, "test", tr.EvaluateOptions(samples=2, batch_size=500))
    many = tr.evaluate(data, "test", tr.EvaluateOptions(samples=2, batch_size=7))
    assert set(one) == set(many)
    for key, value in one.items():
        assert key.startswith("iw_") or close(value, many[key]), key


def test_vae_reports_the_best_pass_and_the_last():
    data = vector_dataset(200, dim=8)
    tr = make_trainer("vae-imputer", data, hidden=16, z_dim=2, batch_size=50, **{})
    train_steps(tr, data, 5)  # barely trained: the passes differ

    def run(k):
        torch.manual_seed(7)  # pass j draws the same noise whatever the number of passes
        return tr.evaluate(data, "test", tr.EvaluateOptions(samples=2, steps=(k,)))

    per_pass = [run(k)["final_nll_per_value"] for k in (1, 2, 3, 4)]
    out = run(4)
    best = min(range(4), key=per_pass.__getitem__)
    assert out["best_step"] == best + 1 and out["oracular"] == 1.0
    assert close(out["nll_per_value"], per_pass[best])
    assert close(out["final_nll_per_value"], per_pass[-1])
    assert close(run(1)["nll_per_value"], per_pass[0])


def test_zero_steps_are_allowed_and_a_mask_hiding_nothing_is_an_error():
    from gm.errors import GMError

    data = vector_dataset(60, dim=4)
    tr = make_trainer("gpsi-add", data, hidden=8, z_dim=2, refine_steps=2, **BERN)
    out = tr.evaluate(data, "test", tr.EvaluateOptions(samples=1, steps=(0,)))
    assert out["steps"] == 0 and out["n_missing"] > 0
    try:
        tr.evaluate(data, "test", tr.EvaluateOptions(mask="nan"))
    except GMError as err:
        assert "hides no observed value" in str(err)
    else:
        raise AssertionError("a mask that hides nothing was scored")


def test_scores_need_a_bound_and_a_squared_error():
    from gm_imputation.scores import Scores

    for given in ({"bound": torch.zeros(2)}, {"sq_err": torch.zeros(2)}):
        try:
            Scores(**given)
        except TypeError:
            continue
        raise AssertionError(f"Scores({', '.join(given)}) was accepted")
