"""The thesis's objective, pinned: the weighting of C_f, the direction of every term, a
discriminator that keeps a gradient when saturated, and an honest ``d_updated``."""

import pytest
import torch
from torch import nn

from gm.build import resolve
from gm.builtins.toy import markov_chain
from gm.errors import GMError
from gm_professor_forcing.discriminators import BiGRUDiscriminator

DATA = markov_chain(n=64, length=16)
L = 16
SMALL = {"hidden": 24, "embed": 8, "batch_size": 16, "d_hidden": 12, "d_mlp": 12}
SMALL.update(grad_clip=0.0)


def make(seed=0, **over):
    cls, cfg = resolve("professor-forcing", DATA.info, overrides={**SMALL, **over})
    torch.manual_seed(seed)
    return cls(cfg, DATA.info)


def batch():
    return DATA.raw("train")[:16]


def sgd(trainer, lr):
    """Plain SGD for G, so a step moves G by exactly -lr * the gradient of its loss."""
    trainer.opt_g = torch.optim.SGD(trainer.generator.parameters(), lr=lr)


def draws(trainer, seed):
    """The tokens the next training step draws when seeded with ``seed``."""
    torch.manual_seed(seed)
    with torch.no_grad():
        return trainer.generator.free_running(16, trainer.free_steps)[0]


@torch.no_grad()
def d_logits(trainer, tokens):
    """D's logits on the behaviour of G run on ``tokens`` (teacher forcing on a draw gives
    exactly that draw's free-running behaviour)."""
    return trainer.discriminator(trainer.features(trainer.generator.teacher_forced(tokens), tokens))


def g_flat(trainer):
    return torch.cat([p.detach().flatten() for p in trainer.generator.parameters()])


# --- weighting -------------------------------------------------------------------------------
@pytest.mark.parametrize("weighting, scale", [("sequence", 1 / L), ("token", 1.0)])
def test_generator_gradient_is_per_token_nll_plus_c_f_over_length(weighting, scale):
    """Default (thesis): whole-sequence NLL + C_f, i.e. NLL/token + C_f / L; ``token``: + C_f."""
    tr = make(gate_g=-1.0, gate_d=-1.0, weighting=weighting)  # G gate open, D frozen
    assert tr.adversarial_scale() == pytest.approx(scale)
    torch.manual_seed(3)
    x = tr.prepare(batch())
    tf = tr.generator.teacher_forced(x)
    nll = tr.generator.nll(tf, x).mean()
    samples, free = tr.generator.free_running(16, tr.free_steps)
    c_f, _ = tr.adversarial_costs(tr.features(tf, x), tr.features(free, samples))
    want = torch.autograd.grad(nll + scale * c_f, list(tr.generator.parameters()))
    want = torch.cat([g.flatten() for g in want])
    sgd(tr, 1.0)
    before = g_flat(tr)
    torch.manual_seed(3)
    metrics = tr.training_step(batch())
    assert metrics["loss"].item() == pytest.approx((nll + scale * c_f).item(), rel=1e-5)
    torch.testing.assert_close(before - g_flat(tr), want, atol=1e-6, rtol=1e-4)


def test_thesis_weighting_is_the_default():
    cls, cfg = resolve("professor-forcing", DATA.info)
    assert cfg.weighting == "sequence" and cfg.behaviour == "both"


# --- directions ------------------------------------------------------------------------------
def _twin_steps(lr, seed=7, **over):
    """One SGD step of G from the same start and the same draws: the adversarial gate open
    (``a``) and closed (``b``), D frozen; the difference is the adversarial term alone."""
    out = []
    for gate_g in (-1.0, 2.0):
        tr = make(gate_g=gate_g, gate_d=-1.0, **over)
        sgd(tr, lr)
        tokens = draws(tr, seed)
        torch.manual_seed(seed)
        tr.training_step(batch())
        out.append((tr, tokens))
    return out


def test_generator_step_on_c_f_raises_d_of_free_running_behaviour():
    (a, tokens), (b, _) = _twin_steps(lr=0.5, adversarial_weight=100.0)
    start = make()
    before = d_logits(start, tokens).mean()
    after_open, after_closed = d_logits(a, tokens).mean(), d_logits(b, tokens).mean()
    # the adversarial part moved D(B_free) up, against the NLL-only step from the same start
    assert after_open > after_closed + 1e-4, (before, after_open, after_closed)


def test_generator_step_on_c_t_lowers_d_of_teacher_forced_behaviour():
    x = batch()
    (a, _), _ = _twin_steps(lr=0.5, teacher_term=True, adversarial_weight=100.0)
    (c, _), _ = _twin_steps(lr=0.5, teacher_term=False, adversarial_weight=100.0)
    # C_t pushes D(B_tf) down: lower with C_f + C_t than with C_f alone, same start and draws
    tf_a, tf_c = d_logits(a, x).mean(), d_logits(c, x).mean()
    assert tf_a < tf_c - 1e-4, (tf_a, tf_c)


def test_adversarial_costs_point_the_right_way():
    """Gradient steps on C_f and on C_t taken by hand, on the trainer's own costs."""
    tr = make(teacher_term=True)
    x = tr.prepare(batch())
    tokens = draws(tr, 1)
    params = list(tr.generator.parameters())
    for which, rows, sign in (("c_f", tokens, +1), ("c_t", x, -1)):
        g = make(teacher_term=True)
        tf = g.generator.teacher_forced(x)
        free = g.generator.teacher_forced(tokens)  # the draw's free-running behaviour
        c_f, c_t = g.adversarial_costs(g.features(tf, x), g.features(free, tokens))
        cost = c_f if which == "c_f" else c_t
        grads = torch.autograd.grad(cost, list(g.generator.parameters()), allow_unused=True)
        before = d_logits(g, rows).mean()
        with torch.no_grad():
            for p, gr in zip(g.generator.parameters(), grads, strict=True):
                if gr is not None:
                    p -= 0.5 * gr
        after = d_logits(g, rows).mean()
        assert sign * (after - before) > 1e-4, (which, before, after)
    assert len(params) > 0


def test_discriminator_step_lowers_c_d():
    tr = make(lr=0.0, gate_d=1.0, d_lr=1e-3)
    x = tr.prepare(batch())
    tokens = draws(tr, 4)
    with torch.no_grad():
        f_tf = tr.features(tr.generator.teacher_forced(x), x)
        f_free = tr.features(tr.generator.teacher_forced(tokens), tokens)
        before = tr.discriminator_loss(f_tf, f_free)[0]
    torch.manual_seed(4)
    metrics = tr.training_step(batch())
    assert metrics["d_updated"] == 1
    with torch.no_grad():
        after = tr.discriminator_loss(f_tf, f_free)[0]
    assert after < before - 1e-5, (before, after)


# --- the discriminator -----------------------------------------------------------------------
@pytest.mark.parametrize("fused", ["on", "off"])
def test_discriminator_is_the_papers_mean_over_time_of_a_three_layer_mlp(fused):
    torch.manual_seed(0)
    d = BiGRUDiscriminator(5, 6, 7)
    d.fused = fused
    layers = [type(m) for m in d.mlp]
    assert layers == [nn.Linear, nn.ReLU] * 3
    x = torch.randn(4, 9, 5)
    states, _ = d.gru(x)
    raw = d.out(d.mlp(states).mean(1)).squeeze(-1)
    torch.testing.assert_close(d(x), 10 * torch.tanh(raw / 10), atol=1e-5, rtol=1e-5)


def test_saturated_discriminator_keeps_a_gradient():
    """The issue's dead D: logits near +17 on both classes. The soft saturation stays below 10
    and still passes a gradient to every layer of D and to its input (hence to G)."""
    torch.manual_seed(0)
    d = BiGRUDiscriminator(5, 6, 7)
    x = torch.randn(8, 9, 5, requires_grad=True)
    with torch.no_grad():
        d.out.bias.fill_(17.0 - d.out(d.mlp(d.gru(x)[0]).mean(1)).mean().item())
    logits = d(x)
    assert (logits < 10).all() and (logits > 9).all()
    c_d = torch.nn.functional.softplus(logits[4:]).mean()  # "free-running" half, labelled 0
    c_d.backward()
    for name, p in d.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0
    huge = BiGRUDiscriminator(5, 6, 7)
    with torch.no_grad():
        huge.out.bias.fill_(1e4)
    assert huge(x).max() <= 10.0  # bounded, as the thesis's clip


def test_d_updated_means_the_weights_moved():
    tr = make(gate_d=1.0, d_lr=0.0)  # the gate lets the step through, but lr 0 moves nothing
    d0 = [p.detach().clone() for p in tr.discriminator.parameters()]
    assert tr.training_step(batch())["d_updated"] == 0
    assert all(torch.equal(a, p) for a, p in zip(d0, tr.discriminator.parameters(), strict=True))
    tr = make(gate_d=1.0, d_lr=1e-3)
    assert tr.training_step(batch())["d_updated"] == 1


def test_embeddings_behaviour_feeds_hidden_states_and_emitted_token_embeddings():
    tr = make(behaviour="embeddings")
    x = tr.prepare(batch())
    tf = tr.generator.teacher_forced(x)
    f = tr.features(tf, x)
    assert f.shape == (16, L, 24 + 8)
    torch.testing.assert_close(f[..., 24:], tr.generator.embedding(x))
    torch.testing.assert_close(f[..., :24], tf.hidden)
    assert torch.isfinite(tr.training_step(batch())["loss"])
    with pytest.raises(GMError):
        from gm.data import DataInfo
        from gm_professor_forcing.trainers import ProfessorForcingTrainer

        info = DataInfo("reals", "sequence", (8, 2))
        cfg = ProfessorForcingTrainer.default_config(info)
        cfg.behaviour, cfg.hidden = "embeddings", 8
        ProfessorForcingTrainer(cfg, info)


# --- what the mutation check found the tests could not see ------------------------------------
def test_documented_defaults():
    """The defaults the README and docstrings state (paper's gates, the authors' D optimiser)."""
    _, cfg = resolve("professor-forcing", DATA.info)
    assert (cfg.gate_g, cfg.gate_d, cfg.gate_momentum) == (0.75, 0.99, 0.9)
    assert (cfg.d_lr, cfg.d_beta1, cfg.hidden, cfg.layers) == (1e-4, 0.5, 1024, 1)
    from gm.data import DataInfo

    _, cfg = resolve("professor-forcing", DataInfo("pen", "strokes", (20, 3)))
    assert (cfg.hidden, cfg.layers) == (400, 3)  # the Graves-style handwriting net
    assert (cfg.free_steps, cfg.segment) == (0, 0)  # 20-step windows: no 50-step segments
    # the thesis's handwriting setup from 50-step windows on: free-run 1000, D on 50-step pieces
    _, cfg = resolve("professor-forcing", DataInfo("pen", "strokes", (50, 3)))
    assert (cfg.free_steps, cfg.segment) == (1000, 50)
    _, cfg = resolve("professor-forcing", DataInfo("t", "sequence", (64,), vocab_size=3))
    assert (cfg.free_steps, cfg.segment) == (0, 0)


def test_one_feature_real_sequences_keep_their_time_axis():
    from gm.data import DataInfo

    info = DataInfo("wave", "sequence", (12,))
    cls, cfg = resolve("teacher-forcing", info, overrides={"hidden": 4})
    tr = cls(cfg, info)
    assert tr.prepare(torch.zeros(3, 12)).shape == (3, 12, 1)


def test_metrics_carry_no_graph_and_scheduled_sampling_at_p1_is_teacher_forcing():
    """A scheduled-sampling step with eps = 1 reports the per-token NLL of teacher forcing."""
    cls, cfg = resolve(
        "scheduled-sampling", DATA.info, overrides={"hidden": 8, "embed": 4, "min_true": 1.0}
    )
    torch.manual_seed(0)
    ss = cls(cfg, DATA.info)
    cls, cfg = resolve("teacher-forcing", DATA.info, overrides={"hidden": 8, "embed": 4})
    torch.manual_seed(0)
    tf = cls(cfg, DATA.info)
    a, b = ss.training_step(batch()), tf.training_step(batch())
    assert a["p_true"] == 1 and a["nll"].item() == pytest.approx(b["nll"].item(), rel=1e-5)
    assert a["loss"].item() == pytest.approx(b["loss"].item(), rel=1e-5)
    opened = make(gate_g=-1.0, teacher_term=True)  # C_f, C_t with their graphs built
    for m in (a, b, make().training_step(batch()), opened.training_step(batch())):
        assert not any(v.requires_grad for v in m.values())


def test_sample_accepts_one_step_and_low_temperatures():
    from gm_professor_forcing.trainers import SampleOptions

    tr = make()
    assert tr.sample(2, SampleOptions(steps=1, temperature=0.5)).shape == (2, 1)
    with pytest.raises(GMError):
        tr.sample(2, SampleOptions(steps=1, temperature=-0.1))


def test_scheduled_sampling_probability_is_capped_at_one():
    cls, cfg = resolve(
        "scheduled-sampling",
        DATA.info,
        overrides={"hidden": 8, "decay": "linear", "decay_k": 2.0, "decay_c": 0.01},
    )
    assert cls(cfg, DATA.info).p_true(0) == 1.0
    cls, cfg = resolve("scheduled-sampling", DATA.info, overrides={"hidden": 8, "decay_k": 1.0})
    assert 0 < cls(cfg, DATA.info).p_true(10) < 1  # k = 1 is allowed (k >= 1)


def test_registry_discriminator_defaults_are_the_trainers():
    """``bigru`` built from the registry with only its input width is the trainer's default D
    (512 units per direction, 512-unit MLP, one GRU layer, logits within ±10)."""
    from gm_professor_forcing.trainers import ProfessorForcingConfig

    cfg, d = ProfessorForcingConfig(), BiGRUDiscriminator(5)
    assert (d.gru.hidden_size, d.gru.num_layers, d.clip) == (cfg.d_hidden, cfg.d_layers, 10.0)
    assert [m.out_features for m in d.mlp if isinstance(m, nn.Linear)] == [cfg.d_mlp] * 3


def _constant_d(trainer, logit):
    """D's output layer made constant: every logit 10 tanh(logit / 10), whatever it sees."""
    with torch.no_grad():
        trainer.discriminator.out.weight.zero_()
        trainer.discriminator.out.bias.fill_(logit)
    return 10 * torch.tanh(torch.tensor(logit) / 10)


def test_c_d_and_accuracy_on_known_logits():
    """Every logit l > 0: teacher-forced rows right, free-running rows wrong (accuracy 1/2),
    C_d = softplus(-l) + softplus(l); every logit < 0: the other way round."""
    tr = make()
    f = torch.randn(6, L, tr.discriminator.gru.input_size)
    for logit in (0.5, -0.5, 3.0):
        want = _constant_d(tr, logit)
        c_d, accuracy = tr.discriminator_loss(f[:4], f[4:])
        assert accuracy.item() == 0.5
        expect = torch.nn.functional.softplus(-want) + torch.nn.functional.softplus(want)
        assert c_d.item() == pytest.approx(expect.item(), rel=1e-5)
        # C_f = -log D(B_free) = softplus(-l), C_t = -log(1 - D(B_tf)) = softplus(l): means
        # over the batch (not sums), whatever the batch size
        tr.config.teacher_term = True
        c_f, c_t = tr.adversarial_costs(f[:4], f[4:])
        sp = torch.nn.functional.softplus
        assert c_f.item() == pytest.approx(sp(-want).item(), rel=1e-5)
        assert c_t.item() == pytest.approx(sp(want).item(), rel=1e-5)
    _constant_d(tr, 0.0)  # logit exactly 0: neither side counted right
    assert tr.discriminator_loss(f[:4], f[4:])[1].item() == 0.0


def test_gates_at_their_thresholds():
    """The thesis's gates are strict for G (accuracy above gate_g) and inclusive for D (updated
    unless above gate_d): at an accuracy of exactly 1/2, gate_g = 1/2 keeps G's gate closed and
    gate_d = 1/2 still updates D."""
    tr = make(gate_g=0.5, gate_d=0.5, gate_momentum=0.0, d_lr=1e-3)
    _constant_d(tr, 0.5)
    m = tr.training_step(batch())
    assert m["d_accuracy_ema"].item() == 0.5
    assert m["g_gate_open"].item() == 0 and m["d_updated"].item() == 1


def test_sample_defaults_to_four_training_lengths():
    from gm_professor_forcing.trainers import SampleOptions

    assert make().sample(2, SampleOptions()).shape == (2, 4 * L)


@pytest.mark.parametrize("steps", [1, 3])
def test_inverse_sigmoid_reaches_one_half_at_the_end_of_short_runs(steps):
    """k ln k = steps has a root below 2 for steps < 2 ln 2: the Newton solve must find it."""
    cls, cfg = resolve("scheduled-sampling", DATA.info, overrides={"hidden": 8, "steps": steps})
    assert cls(cfg, DATA.info).p_true(steps) == pytest.approx(0.5, abs=1e-9)


def test_scheduled_sampling_reads_the_engines_step_and_old_checkpoints():
    """eps follows the engine's step count (``trainer.step``), not a counter of its own; an
    old checkpoint's ``{"updates": N}`` extra state loads without error and changes nothing."""
    cls, cfg = resolve("scheduled-sampling", DATA.info, overrides={"hidden": 8, "steps": 10})
    torch.manual_seed(0)
    ss = cls(cfg, DATA.info)
    assert ss.step == 0 and ss.training_step(batch())["p_true"] == pytest.approx(ss.p_true(0))
    assert ss.training_step(batch())["p_true"] == pytest.approx(ss.p_true(0))  # step not set
    ss.step = 7
    assert ss.p_true(7) < ss.p_true(0)
    assert ss.training_step(batch())["p_true"] == pytest.approx(ss.p_true(7))
    ss.load_extra_state({"updates": 3})
    assert ss.step == 7 and ss.extra_state() == {}
