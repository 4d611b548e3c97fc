"""What guided policy search must guarantee: the primary policy never reads a missing value,
the guide does, the NLL counts missing values only, and the bound is NLL_T + sum KL(q||p)."""

import math

import pytest
import torch
from conftest import close, image_dataset, make_trainer, train_steps, vector_dataset

from gm.masks import split_known
from gm_imputation import evaluation

BERN = {"observation": "bernoulli"}  # the hand-computed cases below score as the paper does
MODELS = ["gpsi-add", "gpsi-jump", "lstm-add", "lstm-jump"]
SMALL = {
    "gpsi-add": {"hidden": 32, "z_dim": 4},
    "gpsi-jump": {"hidden": 32, "z_dim": 4},
    "lstm-add": {"hidden": 16, "z_dim": 4, "refine_steps": 5},
    "lstm-jump": {"hidden": 16, "z_dim": 4, "refine_steps": 5},
}


def masked_batch(dim=8, n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, dim, generator=g)
    missing = torch.rand(n, dim, generator=g) < 0.5
    return split_known(x, missing)


@pytest.mark.parametrize("model", MODELS)
def test_primary_policy_never_sees_the_missing_values(model):
    data = vector_dataset(100)
    tr = make_trainer(model, data, batch_size=20, **SMALL[model])
    train_steps(tr, data, 3)  # trained weights, not the initial ones
    tr.train(False)
    x, known, target = masked_batch()
    other = x.clone()
    other[target.bool()] = torch.rand(int(target.sum()))  # change every missing value
    assert not torch.equal(x, other)
    runs = {}
    for name, values in (("x", x), ("other", other)):
        seen = []
        hook = tr.net.primary if hasattr(tr.net, "primary") else tr.net.p_head
        handle = hook.register_forward_hook(lambda m, i, o, seen=seen: seen.append(o))
        torch.manual_seed(5)
        with torch.no_grad():
            primary = tr.net.rollout(values, known, known, tr.refine_steps, guided=False)["c"]
            guide_seen = len(seen)
            torch.manual_seed(5)
            guided = tr.net.rollout(values, known, known + target, tr.refine_steps, guided=True)[
                "c"
            ]
        handle.remove()
        runs[name] = (primary, seen[:guide_seen], guided)
    assert torch.equal(runs["x"][0], runs["other"][0])  # same imputation
    for a, b in zip(runs["x"][1], runs["other"][1], strict=True):  # same policy output each step
        a = a if isinstance(a, tuple) else (a,)
        b = b if isinstance(b, tuple) else (b,)
        assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(runs["x"][2], runs["other"][2])  # the guide does read the truth


@pytest.mark.parametrize("model", MODELS + ["vae-imputer", "template-matching"])
def test_imputation_copies_known_values_and_ignores_missing_truth(model):
    data = vector_dataset(100)
    extra = SMALL.get(model, {"hidden": 16} if model == "vae-imputer" else {"max_templates": 100})
    tr = make_trainer(model, data, batch_size=20, **extra)
    train_steps(tr, data, 5)
    x, known, target = masked_batch(seed=2)
    x_nan = x.masked_fill(target.bool(), float("nan"))
    torch.manual_seed(1)
    a = tr.impute(x_nan, samples=3)
    # the same cells hidden by ``missing`` while their (wrong) values are still in x: the
    # imputation must not read them, whatever they are
    for fake in (0.123, 0.987):
        torch.manual_seed(1)
        b = tr.impute(x.masked_fill(target.bool(), fake), 3, missing=target.bool())
        assert a.shape == (3, *x.shape) and torch.equal(a, b), fake
    assert torch.equal(a[:, known.bool()], x[known.bool()].expand(3, -1))
    assert not torch.isnan(a).any() and a.min() >= 0 and a.max() <= 1


def hand_set_gpsi(tr, c0, write_bias, guide_mu):
    """Zero every weight; p = N(0, 1), q = N(guide_mu, 1), writer output = write_bias."""
    net = tr.net
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.c0.copy_(c0)
        net.guide.net[-1].bias[: tr.config.z_dim] = guide_mu
        net.writer[-1].bias.copy_(write_bias)


def bce(p, x):
    return -(x * math.log(p) + (1 - x) * math.log(1 - p))


@pytest.mark.parametrize("update", ["add", "jump"])
def test_bound_is_nll_t_plus_the_kls_on_a_hand_computable_case(update):
    data = vector_dataset(40, dim=4)
    tr = make_trainer(
        f"gpsi-{update}", data, hidden=8, z_dim=2, refine_steps=3, scale_columns=False, **BERN
    )
    c0 = torch.tensor([0.0, 1.0, -1.0, 0.5])
    b = torch.tensor([0.5, -0.25, 0.0, 1.0])
    hand_set_gpsi(tr, c0, b, guide_mu=1.0)
    x = torch.tensor([[0.2, 0.9, 0.4, 0.7], [1.0, 0.0, 0.5, 0.3]])
    known = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    target = 1 - known
    c_final = c0 + 3 * b if update == "add" else b
    p = torch.sigmoid(c_final)
    nll = [
        sum(bce(p[j].item(), x[i, j].item()) for j in range(4) if target[i, j]) for i in range(2)
    ]
    kl = 3 * 2 * 0.5  # 3 steps x 2 dims x KL(N(1,1) || N(0,1))
    (scores,) = tr.score_batch(x, known, target, 3, samples=4)
    for i in range(2):
        assert close(scores.nll_term[i].item(), nll[i])
        assert close(scores.kl[i].item(), kl)
        assert close(scores.bound[i].item(), nll[i] + kl)
    # only missing values count: changing a known value leaves the NLL alone (the policy's
    # output here does not depend on its input), changing a missing one does not
    x2 = x.clone()
    x2[0, 0] = 0.77
    assert close(tr.score_batch(x2, known, target, 3, 2)[0].nll_term[0].item(), nll[0])
    x2[0, 1] = 0.11
    assert not close(tr.score_batch(x2, known, target, 3, 2)[0].nll_term[0].item(), nll[0])


def test_evaluate_normalises_the_bound_by_missing_values(tmp_path):
    data = vector_dataset(40, dim=4)
    tr = make_trainer(
        "gpsi-add", data, hidden=8, z_dim=2, refine_steps=2, scale_columns=False, **BERN
    )
    c0 = torch.tensor([0.3, -0.2, 0.1, 0.0])
    hand_set_gpsi(tr, c0, torch.zeros(4), guide_mu=0.5)
    opts = tr.EvaluateOptions(mask="mcar:0.6", samples=2, mask_seed=4)
    out = tr.evaluate(data, "test", opts)
    x = data.tensor("test")
    missing = evaluation.draw_masks(tr, len(x), "mcar:0.6", 4)
    p = torch.sigmoid(c0).expand_as(x).double()
    xd = x.double()
    nll = (-(xd * p.log() + (1 - xd) * (1 - p).log()) * missing).sum().item()
    kl = len(x) * 2 * 2 * 0.5 * 0.25  # examples x steps x dims x KL(N(.5,1)||N(0,1))
    n_missing = missing.sum().item()
    assert out["n_missing"] == n_missing
    assert close(out["nll_per_value"], (nll + kl) / n_missing)
    assert close(out["nll_paper"], (nll + kl) / len(x) / (n_missing / x.numel()))
    assert close(out["nll_per_value"], out["nll_term_per_value"] + out["kl_per_value"])
    sq = ((p - xd) ** 2 * missing).sum().item()  # every roll-out imputes sigmoid(c0)
    assert close(out["rmse_missing"], math.sqrt(sq / n_missing))


def test_lstm_bound_adds_the_initial_state_kl():
    data = vector_dataset(40, dim=4)
    tr = make_trainer(
        "lstm-add", data, hidden=8, z_dim=2, refine_steps=0, scale_columns=False, **BERN
    )
    with torch.no_grad():
        for p in tr.net.parameters():
            p.zero_()
        tr.net.q0.net[-1].bias[:2] = 2.0  # q(z0) = N(2, 1), p(z0) = N(0, 1)
    x, known, target = masked_batch(dim=4, n=3)
    (scores,) = tr.score_batch(x, known, target, 0, samples=2)
    assert torch.allclose(scores.kl, torch.full((3,), 2 * 0.5 * 4.0))
    p = 0.5  # guess logits stay 0
    nll = (target * -(x * math.log(p) + (1 - x) * math.log(1 - p))).sum(-1)
    assert torch.allclose(scores.nll_term, nll.float(), atol=1e-5)


def test_image_models_flatten_and_train():
    data = image_dataset(60)
    tr = make_trainer("gpsi-jump", data, hidden=16, z_dim=4, batch_size=20, mask="mar:3")
    metrics = train_steps(tr, data, 2)
    assert all(torch.isfinite(v) for m in metrics for v in m.values())
    out = tr.evaluate(data, "test", tr.EvaluateOptions(samples=2))
    assert out["drop_rate"] == 9 / 36
