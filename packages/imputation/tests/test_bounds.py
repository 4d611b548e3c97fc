"""The loss and bound pieces against closed forms, with cases that tell the plausible
mistakes apart: unequal variances (a swapped KL direction), several samples (a mean taken
where a log-mean-exp belongs), the log-variance of the Gaussian observations."""

import math

import pytest
import torch
from conftest import close, make_trainer, vector_dataset

from gm_imputation import observation
from gm_imputation.nets import gaussian_kl, gaussian_log_prob
from gm_imputation.policy import guided_scores


def kl_1d(m1, v1, m2, v2):
    """KL(N(m1, v1) || N(m2, v2)) by hand."""
    return 0.5 * (math.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)


def test_gaussian_kl_has_the_right_direction_with_unequal_variances():
    mu_a, lv_a = torch.tensor([[0.3, -1.0]]), torch.log(torch.tensor([[0.25, 4.0]]))
    mu_b, lv_b = torch.tensor([[1.0, 0.5]]), torch.log(torch.tensor([[2.0, 0.5]]))
    want = kl_1d(0.3, 0.25, 1.0, 2.0) + kl_1d(-1.0, 4.0, 0.5, 0.5)
    other = kl_1d(1.0, 2.0, 0.3, 0.25) + kl_1d(0.5, 0.5, -1.0, 4.0)
    got = gaussian_kl(mu_a, lv_a, mu_b, lv_b).item()
    assert close(got, want) and not close(got, other, 1e-2)


def test_gaussian_log_prob_is_the_normal_density():
    z, mu, lv = torch.tensor([[0.7, -0.2]]), torch.tensor([[0.1, 0.3]]), torch.tensor([[0.4, -1]])
    want = sum(
        -0.5 * math.log(2 * math.pi * math.exp(v)) - (a - m) ** 2 / (2 * math.exp(v))
        for a, m, v in zip([0.7, -0.2], [0.1, 0.3], [0.4, -1], strict=True)
    )
    assert close(gaussian_log_prob(z, mu, lv).item(), want)


def test_guided_scores_bound_and_importance_weighted_bound():
    # 3 samples of 2 examples, sample-major
    nll = torch.tensor([1.0, 2.0, 1.5, 0.5, 3.0, 1.0])
    kl = torch.tensor([0.2, 0.1, 0.4, 0.3, 0.6, 0.2])
    log_w = torch.tensor([-0.1, 0.3, -0.5, 0.2, 0.4, -0.2])
    out = guided_scores(nll, kl, log_w, 3)
    for i in range(2):
        n = [nll[i + 2 * s].item() for s in range(3)]
        k = [kl[i + 2 * s].item() for s in range(3)]
        w = [log_w[i + 2 * s].item() for s in range(3)]
        assert close(out["bound"][i].item(), sum(a + b for a, b in zip(n, k, strict=True)) / 3)
        iw = -math.log(sum(math.exp(-a + b) for a, b in zip(n, w, strict=True)) / 3)
        assert close(out["iw_bound"][i].item(), iw)
        assert close(out["nll_term"][i].item(), sum(n) / 3) and close(
            out["kl"][i].item(), sum(k) / 3
        )


def hand_set(tr, c0, write_bias, guide_mu, guide_lv, primary_lv):
    """Every weight zero: p = N(0, e^primary_lv), q = N(guide_mu, e^guide_lv), writer = bias."""
    net, z = tr.net, tr.config.z_dim
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.c0.copy_(c0)
        net.guide.net[-1].bias[:z] = guide_mu
        # split_gaussian bounds log-variances as 8 tanh(v / 8): invert it
        net.guide.net[-1].bias[z:] = 8 * math.atanh(guide_lv / 8)
        net.primary.net[-1].bias[z:] = 8 * math.atanh(primary_lv / 8)
        net.writer[-1].bias.copy_(write_bias)


@pytest.mark.parametrize("direction", ["qp", "pq"])
def test_rollout_kls_have_their_directions_with_unequal_variances(direction):
    tr = make_trainer(
        "gpsi-add",
        vector_dataset(40, 4),
        hidden=8,
        z_dim=2,
        refine_steps=2,
        observation="bernoulli",
    )
    hand_set(tr, torch.zeros(4), torch.zeros(4), 0.7, guide_lv=-1.0, primary_lv=0.5)
    x = torch.rand(3, 4)
    known = torch.tensor([[1.0, 0, 1, 0]]).expand(3, -1)
    r = tr.net.rollout(x, known, torch.ones_like(x), 2, guided=True)
    qp = 2 * 2 * kl_1d(0.7, math.exp(-1.0), 0.0, math.exp(0.5))  # steps x dims
    pq = 2 * 2 * kl_1d(0.0, math.exp(0.5), 0.7, math.exp(-1.0))
    want = qp if direction == "qp" else pq
    got = r[f"kl_{direction}"]
    assert torch.allclose(got, torch.full_like(got, want), atol=1e-4), (got, qp, pq)


def test_training_loss_weights_each_kl_direction(monkeypatch):
    tr = make_trainer(
        "gpsi-add",
        vector_dataset(40, 4),
        hidden=8,
        z_dim=2,
        refine_steps=2,
        observation="bernoulli",
        lambda_q=1.0,
        lambda_p=0.05,
        clip=1e9,
        scale_columns=False,  # unit data in, unit data seen: training_step's batch is x
    )
    hand_set(tr, torch.zeros(4), torch.zeros(4), 0.7, guide_lv=-1.0, primary_lv=0.5)
    x = torch.rand(5, 4)
    known = (torch.rand(5, 4) < 0.5).float()
    target = 1 - known
    torch.manual_seed(0)
    r = tr.net.rollout(x, known, known + target, 2, guided=True)
    nll = observation.Bernoulli().nll(r["c"], x, target)
    want = (nll + 1.0 * r["kl_qp"] + 0.05 * r["kl_pq"]).mean()
    torch.manual_seed(0)
    got = tr.training_step(x, missing=~known.bool())
    assert close(got["loss"].item(), want.item(), 1e-4)
    assert close(got["bound"].item(), (nll + r["kl_qp"]).mean().item(), 1e-4)
    assert close(got["nll"].item(), nll.mean().item(), 1e-4)  # logged as means per example
    assert close(got["kl_qp"].item(), r["kl_qp"].mean().item(), 1e-4)


def test_log_w_is_log_p_minus_log_q_of_the_sampled_z():
    tr = make_trainer(
        "gpsi-add",
        vector_dataset(40, 4),
        hidden=8,
        z_dim=2,
        refine_steps=1,
        observation="bernoulli",
    )
    hand_set(tr, torch.zeros(4), torch.zeros(4), 0.7, guide_lv=-1.0, primary_lv=0.5)
    x = torch.rand(4, 4)
    known = torch.zeros_like(x)
    torch.manual_seed(3)
    r = tr.net.rollout(x, known, torch.ones_like(x), 1, guided=True)
    torch.manual_seed(3)
    z = 0.7 + math.exp(-0.5) * torch.randn(4, 2)  # the guide's draw, same noise
    lp = -0.5 * (0.5 + z**2 / math.exp(0.5) + math.log(2 * math.pi)).sum(-1)
    lq = -0.5 * (-1.0 + (z - 0.7) ** 2 / math.exp(-1.0) + math.log(2 * math.pi)).sum(-1)
    assert torch.allclose(r["log_w"], lp - lq, atol=1e-5)


def test_primary_bound_is_the_nll_under_the_primary_roll_out():
    tr = make_trainer(
        "gpsi-add",
        vector_dataset(40, 4),
        hidden=8,
        z_dim=2,
        refine_steps=3,
        observation="bernoulli",
    )
    c0, b = torch.tensor([0.2, -0.4, 1.0, 0.0]), torch.tensor([0.1, 0.3, -0.2, 0.5])
    # the writer ignores z (zero weights), so the primary roll-out is c0 + 3 b, noise or not
    hand_set(tr, c0, b, 0.7, guide_lv=-1.0, primary_lv=0.5)
    x = torch.rand(3, 4)
    known = torch.tensor([[1.0, 0, 0, 1]]).expand(3, -1)
    target = 1 - known
    (out,) = tr.score_batch(x, known, target, 3, samples=2)
    p = torch.sigmoid(c0 + 3 * b)
    want = (target * -(x * p.log() + (1 - x) * (1 - p).log())).sum(-1)
    assert torch.allclose(out.primary_bound, want, atol=1e-5)
    assert torch.allclose(out.sq_err, (target * (p - x) ** 2).sum(-1), atol=1e-6)
    assert torch.allclose(out.single_sq_err, (target * (p - x) ** 2).sum(-1), atol=1e-6)


def test_gaussian_observation_nll_mean_and_draws():
    obs = observation.Gaussian()
    mu, lv = torch.tensor([[0.2, 0.6, 0.5]]), torch.tensor([[-2.0, 0.5, -4.0]])
    raw = 8 * torch.atanh(lv / 8)  # the canvas stores the unbounded log-variance
    c = torch.cat([mu, raw], -1)
    x = torch.tensor([[0.3, 0.1, 0.9]])
    w = torch.tensor([[1.0, 1.0, 0.0]])
    want = sum(
        0.5 * (math.log(2 * math.pi) + v + (a - m) ** 2 / math.exp(v))
        for a, m, v in [(0.3, 0.2, -2.0), (0.1, 0.6, 0.5)]
    )
    assert close(obs.nll(c, x, w).item(), want)
    assert torch.allclose(obs.mean(c), mu) and torch.equal(obs.canvas(c), mu)
    torch.manual_seed(0)
    draws = obs.draw(c.expand(20000, -1))
    inside = draws[:, 2]  # mean 0.5, sd e^-2: never clamped in practice
    assert abs(inside.mean().item() - 0.5) < 0.005
    assert abs(inside.std().item() - math.exp(-2.0)) < 0.005
    assert draws.min() >= 0 and draws.max() <= 1  # clamped to the observed range
    # the log-variance is bounded: a huge raw value cannot make the NLL run off
    huge = torch.cat([mu, torch.full_like(mu, -1e6)], -1)
    assert torch.isfinite(obs.nll(huge, x, w)).all()


def test_gaussian_canvas_starts_mid_range_with_a_unit_range_scale_of_variance():
    """Mean 0.5 and variance about 0.05 (sd 0.22 of a column's range): a variance of e^3
    would scale the mean's first gradients down some 400 times."""
    mu, lv = observation.Gaussian.split(observation.Gaussian().initial(3)[None])
    assert torch.allclose(mu, torch.full((1, 3), 0.5))
    assert ((lv.exp() > 0.04) & (lv.exp() < 0.07)).all(), lv.exp()  # 8 tanh(-3/8)


def test_auto_observation_picks_bernoulli_for_images_and_binary_data():
    assert observation.get("auto", image=True).name == "bernoulli"
    assert observation.get("auto", binary=True).name == "bernoulli"
    assert observation.get("auto").name == "gaussian"
    assert observation.get("gaussian", image=True).name == "gaussian"


def test_primary_inputs_are_known_values_and_the_guess_elsewhere():
    tr = make_trainer(
        "gpsi-add",
        vector_dataset(40, 4),
        hidden=8,
        z_dim=2,
        primary_residual=True,
        observation="bernoulli",
    )
    x, guess = torch.rand(3, 4), torch.rand(3, 4)
    known = (torch.rand(3, 4) < 0.5).float()
    inputs = []
    tr.net.primary.register_forward_pre_hook(lambda _, args: inputs.append(args[0]))
    _, _, seen_out, guess_out = tr.net.primary_step(x, known, torch.logit(guess))
    seen, residual = inputs[-1].chunk(2, -1)  # what the primary policy read
    assert torch.allclose(seen, torch.where(known.bool(), x, guess), atol=1e-6)
    assert torch.allclose(residual, known * (x - guess), atol=1e-6)
    assert torch.allclose(seen_out, seen) and torch.allclose(guess_out, guess, atol=1e-6)


def zero_lstm(tr, c_bias, p0, q0, p, q):
    """Every LSTM weight zero; (mu, logvar) of p(z0), q(z0), p(z_t), q(z_t) set by biases."""
    net, z = tr.net, tr.config.z_dim
    with torch.no_grad():
        for w in net.parameters():
            w.zero_()
        net.c_bias.copy_(c_bias)
        for head, (mu, lv) in ((net.p0.net[-1], p0), (net.q0.net[-1], q0)):
            head.bias[:z], head.bias[z:] = mu, 8 * math.atanh(lv / 8)
        for head, (mu, lv) in ((net.p_head, p), (net.q_head, q)):
            head.bias[:z], head.bias[z:] = mu, 8 * math.atanh(lv / 8)


def zeroed_lstm(
    refine_steps, c_bias=None, p0=(0.0, 0.0), q0=(0.0, 0.0), p=(0.0, 0.0), q=(0.0, 0.0)
):
    """A small Bernoulli lstm-add trainer with every weight zero (see :func:`zero_lstm`)."""
    tr = make_trainer(
        "lstm-add",
        vector_dataset(40, 4),
        hidden=8,
        z_dim=2,
        refine_steps=refine_steps,
        observation="bernoulli",
    )
    zero_lstm(tr, torch.zeros(4) if c_bias is None else c_bias, p0=p0, q0=q0, p=p, q=q)
    return tr


def test_lstm_kls_have_their_directions_with_unequal_variances():
    tr = zeroed_lstm(3, p0=(0.0, 0.6), q0=(1.0, -1.0), p=(0.2, -0.5), q=(-0.4, 1.0))
    x = torch.rand(2, 4)
    r = tr.net.rollout(x, torch.zeros_like(x), torch.ones_like(x), 3, guided=True)
    v = math.exp
    qp = 2 * kl_1d(1.0, v(-1.0), 0.0, v(0.6)) + 3 * 2 * kl_1d(-0.4, v(1.0), 0.2, v(-0.5))
    pq = 2 * kl_1d(0.0, v(0.6), 1.0, v(-1.0)) + 3 * 2 * kl_1d(0.2, v(-0.5), -0.4, v(1.0))
    assert torch.allclose(r["kl_qp"], torch.full((2,), qp), atol=1e-4), (r["kl_qp"], qp)
    assert torch.allclose(r["kl_pq"], torch.full((2,), pq), atol=1e-4), (r["kl_pq"], pq)


def test_lstm_policies_read_known_values_and_the_guess_elsewhere():
    c_bias = torch.tensor([0.5, -1.0, 2.0, 0.0])
    tr = zeroed_lstm(2, c_bias)
    x = torch.rand(3, 4)
    known = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 0]])
    guess = torch.sigmoid(c_bias)  # zero weights: the canvas never moves
    seen = torch.where(known.bool(), x, guess)
    inputs, hooks = record_inputs(tr.net, ("p0", "reader"))
    with torch.no_grad():
        tr.net.rollout(x, known, known, 2, guided=False)
    for h in hooks:
        h.remove()
    assert torch.allclose(inputs["p0"][0], seen)
    assert len(inputs["reader"]) == 2
    for got in inputs["reader"]:
        assert torch.allclose(got[:, :4], seen) and torch.allclose(got[:, 4:8], seen - guess)


def test_peephole_cell_is_an_lstm_cell_plus_the_cell_state_in_its_gates():
    from gm_imputation.lstm import PeepholeLSTMCell

    torch.manual_seed(0)
    ref, cell = torch.nn.LSTMCell(3, 5), PeepholeLSTMCell(3, 5)
    with torch.no_grad():
        cell.gates.weight.copy_(torch.cat([ref.weight_ih, ref.weight_hh], 1))
        cell.gates.bias.copy_(ref.bias_ih + ref.bias_hh)
    x, h, c = torch.randn(4, 3), torch.randn(4, 5), torch.randn(4, 5)
    for a, b in zip(cell(x, (h, c)), ref(x, (h, c)), strict=True):
        assert torch.allclose(a, b, atol=1e-6)  # zero peepholes: a plain LSTM cell
    with torch.no_grad():
        cell.peep.fill_(0.5)
    i, f, g, o = cell.gates(torch.cat([x, h], -1)).chunk(4, -1)
    c_new = torch.sigmoid(f + 0.5 * c) * c + torch.sigmoid(i + 0.5 * c) * torch.tanh(g)
    h_new = torch.sigmoid(o + 0.5 * c_new) * torch.tanh(c_new)  # the output gate sees c_t
    got = cell(x, (h, c))
    assert torch.allclose(got[0], h_new, atol=1e-6) and torch.allclose(got[1], c_new, atol=1e-6)


def test_lstm_with_peepholes_trains():
    from conftest import train_steps

    data = vector_dataset(60, 4)
    tr = make_trainer(
        "lstm-add", data, hidden=8, z_dim=2, refine_steps=3, peepholes=True, batch_size=20
    )
    metrics = train_steps(tr, data, 3)
    assert all(torch.isfinite(v) for m in metrics for v in m.values())
    assert any(p is tr.net.reader.peep for p in tr.net.parameters())


def record_inputs(net, names):
    """Each named submodule's first positional input at every call, while the block runs."""
    inputs = {n: [] for n in names}
    hooks = [
        getattr(net, n).register_forward_pre_hook(lambda m, a, n=n: inputs[n].append(a[0]))
        for n in names
    ]
    return inputs, hooks


def test_gpsi_guided_roll_out_gives_each_policy_its_own_view():
    """In training's guided roll-out the primary sees known values and the guess elsewhere
    and the guide also sees the residual on every value it may score (a mix-up of x and
    the guess, or of known and available, changes a number here)."""
    tr = make_trainer("gpsi-add", vector_dataset(40, 4), hidden=8, z_dim=2, observation="bernoulli")
    c0 = torch.tensor([0.5, -1.0, 2.0, 0.0])
    with torch.no_grad():
        for p in tr.net.parameters():
            p.zero_()
        tr.net.c0.copy_(c0)  # a zero writer: the canvas stays c0 at every step
    x = torch.rand(3, 4)
    known = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 0]])
    avail = torch.tensor([[1.0, 1, 1, 0], [0, 1, 0, 1], [1, 1, 1, 1]])
    guess = torch.sigmoid(c0).expand(3, -1)
    seen = torch.where(known.bool(), x, guess)
    inputs, hooks = record_inputs(tr.net, ("primary", "guide"))
    with torch.no_grad():
        tr.net.rollout(x, known, avail, 2, guided=True)
    for h in hooks:
        h.remove()
    assert len(inputs["primary"]) == len(inputs["guide"]) == 2
    for p_in, q_in in zip(inputs["primary"], inputs["guide"], strict=True):
        assert torch.allclose(p_in, seen)
        assert torch.allclose(q_in[:, :4], seen)
        assert torch.allclose(q_in[:, 4:], avail * (x - guess))


def test_lstm_guided_roll_out_gives_each_policy_its_own_view():
    """The same for the LSTM policies, the mixture's initial latents included: p0 and the
    reader see known values and the guess elsewhere, q0 and the guide the available truth."""
    c_bias = torch.tensor([0.5, -1.0, 2.0, 0.0])
    tr = zeroed_lstm(2, c_bias)
    x = torch.rand(3, 4)
    known = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 0]])
    avail = torch.tensor([[1.0, 1, 1, 0], [0, 1, 0, 1], [1, 1, 1, 1]])
    guess = torch.sigmoid(c_bias).expand(3, -1)
    seen = torch.where(known.bool(), x, guess)
    inputs, hooks = record_inputs(tr.net, ("p0", "q0", "reader", "guide"))
    with torch.no_grad():
        tr.net.rollout(x, known, avail, 2, guided=True)
    for h in hooks:
        h.remove()
    assert torch.allclose(inputs["p0"][0], seen)
    assert torch.allclose(inputs["q0"][0][:, :4], seen)
    assert torch.allclose(inputs["q0"][0][:, 4:8], avail * x)
    assert len(inputs["reader"]) == len(inputs["guide"]) == 2
    for r_in, g_in in zip(inputs["reader"], inputs["guide"], strict=True):
        assert torch.allclose(r_in[:, :4], seen) and torch.allclose(r_in[:, 4:8], seen - guess)
        assert torch.allclose(g_in[:, :4], avail * x)
        assert torch.allclose(g_in[:, 4:8], avail * (x - guess))


def test_lstm_initial_latent_kls_alone_with_no_refinement_steps():
    """With 0 steps only z0's terms remain: KL(q0||p0), KL(p0||q0) and log p0 - log q0 of
    the drawn z0, each with its own direction and sign."""
    tr = zeroed_lstm(1, p0=(0.3, 0.6), q0=(-1.0, -1.0))
    x = torch.rand(2, 4)
    r = tr.net.rollout(x, torch.zeros_like(x), torch.ones_like(x), 0, guided=True)
    v = math.exp
    assert torch.allclose(r["kl_qp"], torch.full((2,), 2 * kl_1d(-1.0, v(-1.0), 0.3, v(0.6))))
    assert torch.allclose(r["kl_pq"], torch.full((2,), 2 * kl_1d(0.3, v(0.6), -1.0, v(-1.0))))
    torch.manual_seed(5)
    r = tr.net.rollout(x, torch.zeros_like(x), torch.ones_like(x), 0, guided=True)
    torch.manual_seed(5)
    z0 = -1.0 + math.exp(-0.5) * torch.randn(2, 2)  # the draw of q0 = N(-1, e^-1)
    mu_p, mu_q = torch.full_like(z0, 0.3), torch.full_like(z0, -1.0)
    log_w = gaussian_log_prob(z0, mu_p, torch.full_like(z0, 0.6)) - gaussian_log_prob(
        z0, mu_q, torch.full_like(z0, -1.0)
    )
    assert torch.allclose(r["log_w"], log_w, atol=1e-5), (r["log_w"], log_w)


def test_summarise_divides_each_total_by_its_own_count():
    from gm_imputation import scores

    got = scores.metrics(
        {"bound": 60.0, "oracle_bound": 30.0, "sq_err": 40.0, "kl": 12.0},
        n_target=10.0,
        n=4,
        drop_rate=0.5,
    )
    assert close(got["nll_per_value"], 6.0) and close(got["oracle_nll_per_value"], 3.0)
    assert close(got["nll_paper"], 30.0) and close(got["oracle_nll_paper"], 15.0)
    assert close(got["rmse_missing"], 2.0) and close(got["kl_per_value"], 1.2)


def test_gpsi_with_the_mask_as_input_gives_it_to_both_policies():
    tr = make_trainer(
        "gpsi-add",
        vector_dataset(40, 4),
        hidden=8,
        z_dim=2,
        see_mask=True,
        primary_residual=True,
        observation="bernoulli",
    )
    x = torch.rand(3, 4)
    known = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 0]])
    inputs, hooks = record_inputs(tr.net, ("primary", "guide"))
    with torch.no_grad():
        tr.net.rollout(x, known, torch.ones_like(x), 1, guided=True)
    for h in hooks:
        h.remove()
    assert inputs["primary"][0].shape == (3, 12) and inputs["guide"][0].shape == (3, 12)
    assert torch.equal(inputs["primary"][0][:, 8:], known)
    assert torch.equal(inputs["guide"][0][:, 8:], known)


@pytest.mark.parametrize("guided", [False, True])
def test_lstm_reader_sees_the_writer_hidden_state_not_its_cell(guided):
    torch.manual_seed(0)
    tr = make_trainer("lstm-add", vector_dataset(40, 4), hidden=8, z_dim=2, see_mask=True)
    x = torch.rand(3, 4)
    known = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 0]])
    writes = []
    hook = tr.net.writer.register_forward_hook(lambda m, a, out: writes.append(out))
    inputs, hooks = record_inputs(tr.net, ("reader",))
    with torch.no_grad():
        tr.net.rollout(x, known, torch.ones_like(x), 3, guided=guided)
    for h in [*hooks, hook]:
        h.remove()
    reads = inputs["reader"]
    assert len(reads) == 3 and reads[0].shape == (3, 8 + 8 + 4)
    for before, read in zip(writes, reads[1:], strict=False):
        assert torch.allclose(read[:, 8:16], before[0])  # h, not the cell state
        assert not torch.allclose(read[:, 8:16], before[1])
    assert torch.equal(reads[0][:, 16:], known)  # the mask, with see_mask


def test_floor_is_the_bernoulli_entropy_per_missing_value():
    """Every pixel 0.3: whatever the mask, the floor is H(0.3) per missing value."""
    from gm.data import DataInfo, Dataset

    flat = torch.full((12, 1, 4, 4), round(0.3 * 255), dtype=torch.uint8)
    data = Dataset(DataInfo("grey", "image", (1, 4, 4)), {"train": flat, "test": flat})
    tr = make_trainer("gpsi-add", data, hidden=8, z_dim=2, batch_size=4)
    m = tr.evaluate(data, "test", tr.EvaluateOptions(mask="mcar:0.5", samples=1))
    p = round(0.3 * 255) / 255
    assert close(m["floor_per_value"], -(p * math.log(p) + (1 - p) * math.log(1 - p)), 1e-4)


def test_unit_values_map_back_to_the_raw_range():
    from gm_imputation.scaling import ColumnScaler

    state = ColumnScaler(2, running=False, raw=([2.0, -1.0], [5.0, 3.0]))
    raw = state.unit_to_raw(torch.tensor([[0.5, 0.25], [0.0, 1.0]]))
    assert torch.allclose(raw, torch.tensor([[3.5, 0.0], [2.0, 3.0]]))
    assert torch.allclose(state.raw_to_unit(raw), torch.tensor([[0.5, 0.25], [0.0, 1.0]]))


def test_lstm_log_w_sums_log_p_minus_log_q_over_z0_and_every_step():
    p0, q0, p, q = (0.3, 0.6), (-1.0, -1.0), (0.2, -0.5), (-0.4, 1.0)
    tr = zeroed_lstm(2, p0=p0, q0=q0, p=p, q=q)
    x = torch.rand(2, 4)
    torch.manual_seed(7)
    r = tr.net.rollout(x, torch.zeros_like(x), torch.ones_like(x), 2, guided=True)
    torch.manual_seed(7)
    want = torch.zeros(2)
    for prior, guide in ((p0, q0), (p, q), (p, q)):  # z0, then one z per step, drawn in turn
        z = guide[0] + math.exp(0.5 * guide[1]) * torch.randn(2, 2)
        full = torch.full_like
        want += gaussian_log_prob(z, full(z, prior[0]), full(z, prior[1]))
        want -= gaussian_log_prob(z, full(z, guide[0]), full(z, guide[1]))
    assert torch.allclose(r["log_w"], want, atol=1e-5), (r["log_w"], want)


def test_lstm_primary_roll_out_draws_z0_from_its_own_noise():
    """z0 and each step's z take their own column of the noise (z0 reusing step 1's
    would correlate them)."""
    torch.manual_seed(0)
    tr = make_trainer("lstm-add", vector_dataset(40, 4), hidden=8, z_dim=2, refine_steps=2)
    x, known = torch.rand(3, 4), torch.ones(3, 4)
    known[:, :2] = 0
    noise = tr.net.primary_noise(3, 2, "cpu")
    other = noise.clone()
    other[:, 0] += 1.0
    with torch.no_grad():
        a = tr.net.primary_logits(x, known, noise)
        b = tr.net.primary_logits(x, known, other)
    assert not torch.allclose(a, b)
