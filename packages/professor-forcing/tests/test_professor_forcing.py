"""The porting bugs ALGORITHMS.md lists, each checked on the real trainer."""

import pytest
import torch

from gm.build import resolve
from gm.builtins.toy import markov_chain
from gm.data import DataInfo
from gm.errors import GMError

DATA = markov_chain(n=128, length=16)
SMALL = {"hidden": 24, "embed": 8, "batch_size": 16, "d_hidden": 12, "d_mlp": 12}


def make(model="professor-forcing", seed=0, **over):
    cls, cfg = resolve(
        model,
        DATA.info,
        overrides={**SMALL, **over}
        if model == "professor-forcing"
        else {k: v for k, v in {**SMALL, **over}.items() if not k.startswith("d_")},
    )
    torch.manual_seed(seed)
    return cls(cfg, DATA.info)


def batch():
    return DATA.raw("train")[:16]


def passes(trainer):
    x = trainer.prepare(batch())
    tf = trainer.generator.teacher_forced(x)
    _, free = trainer.generator.free_running(len(x), trainer.free_steps)
    return x, tf, free


def g_params(trainer):
    return list(trainer.generator.parameters())


BOTH_DS = pytest.mark.parametrize("d_path", ["on", "off"])  # fused.GRULayer, nn.GRU


@BOTH_DS
def test_discriminator_loss_never_reaches_the_generator(d_path):
    tr = make(fused_discriminator=d_path)
    _, tf, free = passes(tr)
    c_d, _ = tr.discriminator_loss(tr.features(tf), tr.features(free))
    grads = torch.autograd.grad(c_d, g_params(tr), allow_unused=True, retain_graph=True)
    assert all(g is None for g in grads)
    c_d.backward()
    assert all(p.grad is None for p in g_params(tr))
    assert all(p.grad is not None for p in tr.discriminator.parameters())


@BOTH_DS
def test_generator_loss_never_reaches_the_discriminator(d_path):
    tr = make(teacher_term=True, fused_discriminator=d_path)
    _, tf, free = passes(tr)
    f_tf, f_free = tr.features(tf), tr.features(free)
    c_f, c_t = tr.adversarial_costs(f_tf, f_free)
    (c_f + c_t).backward()
    assert all(p.grad is None for p in tr.discriminator.parameters())
    assert all(p.requires_grad for p in tr.discriminator.parameters())  # unfrozen afterwards
    assert tr.generator.gru.weight_hh_l0.grad.abs().sum() > 0  # but it does reach G


@BOTH_DS
def test_teacher_forced_behaviour_is_held_fixed_in_c_f(d_path):
    tr = make(teacher_term=True, fused_discriminator=d_path)
    _, tf, free = passes(tr)
    f_tf, f_free = tr.features(tf), tr.features(free)
    c_f, c_t = tr.adversarial_costs(f_tf, f_free)
    assert torch.autograd.grad(c_f, tf.hidden, allow_unused=True, retain_graph=True)[0] is None
    assert torch.autograd.grad(c_f, free.hidden, retain_graph=True)[0].abs().sum() > 0
    assert torch.autograd.grad(c_t, tf.hidden)[0].abs().sum() > 0  # C_t, when asked, does use it


def _after_one_step(trainer):
    torch.manual_seed(5)
    metrics = trainer.training_step(batch())
    return [p.detach().clone() for p in g_params(trainer)], metrics


@pytest.mark.parametrize("skip", ["on", "off"])  # CPU's host branch, the device-side where
def test_closed_gate_stops_the_adversarial_gradient(skip):
    """With D's accuracy below gate_g, a professor-forcing step updates G exactly as a
    teacher-forcing step does; with the gate forced open, it does not."""
    tf_trainer = make("teacher-forcing")
    closed, metrics = _after_one_step(make(gate_g=2.0, skip_closed_gates=skip))
    assert metrics["g_gate_open"] == 0
    want, _ = _after_one_step(tf_trainer)
    for a, b in zip(closed, want, strict=True):
        assert torch.allclose(a, b, atol=1e-7, rtol=0)
    opened, metrics = _after_one_step(make(gate_g=-1.0))
    assert metrics["g_gate_open"] == 1
    assert any(not torch.allclose(a, b, atol=1e-6) for a, b in zip(opened, want, strict=True))


def test_closed_gate_gives_exactly_the_nll_gradient():
    """The .grad check: NLL + where(closed, C_f, 0) backpropagates exactly NLL's gradient."""
    tr = make()
    x, tf, free = passes(tr)
    nll = tr.generator.nll(tf, x).mean()
    c_f, _ = tr.adversarial_costs(tr.features(tf), tr.features(free))
    want = torch.autograd.grad(nll, g_params(tr), retain_graph=True, allow_unused=True)
    for is_open in (False, True):
        gate = torch.tensor(is_open)
        loss = nll + torch.where(gate, c_f, torch.zeros_like(c_f))
        for p in g_params(tr):
            p.grad = None
        loss.backward(retain_graph=True)
        same = all(
            (w is None and p.grad is None) or (w is not None and torch.equal(p.grad, w))
            for p, w in zip(g_params(tr), want, strict=True)
        )
        assert same is (not is_open)


@pytest.mark.parametrize("fused", ["on", "off"])  # fused Adam's found_inf, the where restore
def test_discriminator_update_skipped_above_gate_d(fused):
    tr = make(gate_d=-1.0, fused_optimizer=fused)  # accuracy always above: D frozen
    assert bool(tr.opt_d.defaults["fused"]) is (fused == "on")
    d0 = {k: v.clone() for k, v in tr.discriminator.state_dict().items()}
    g0 = [p.detach().clone() for p in g_params(tr)]
    for _ in range(2):
        metrics = tr.training_step(batch())
        assert metrics["d_updated"] == 0
    for k, v in tr.discriminator.state_dict().items():
        assert torch.equal(v, d0[k]), k
    state = tr.opt_d.state_dict()["state"]
    assert all(s["step"].item() == 0 and s["exp_avg"].abs().sum() == 0 for s in state.values())
    assert any(not torch.equal(a, p) for a, p in zip(g0, g_params(tr), strict=True))
    tr.config.gate_d = 1.0  # the gate opens: D moves
    assert tr.training_step(batch())["d_updated"] == 1
    assert any(not torch.equal(v, d0[k]) for k, v in tr.discriminator.state_dict().items())


def test_accuracy_moving_average_is_logged_and_drives_the_gates():
    tr = make(gate_momentum=0.8)
    metrics = tr.training_step(batch())
    acc, ema = metrics["d_accuracy"].item(), metrics["d_accuracy_ema"].item()
    assert 0 <= acc <= 1
    assert ema == pytest.approx(0.8 * 0.5 + 0.2 * acc, abs=1e-6)
    assert tr.gate.accuracy.item() == pytest.approx(ema)
    assert metrics["g_gate_open"].item() == float(ema > 0.75)
    assert metrics["d_updated"].item() == float(ema <= 0.99)


@pytest.mark.slow  # 4 s (durations run, 1 thread, load 4-7)
def test_discriminator_learns_to_tell_an_untrained_generator_apart():
    """D's accuracy rises above chance on real vs free-running behaviour of a fixed G (and the
    G -> D gate then opens), so the adversarial signal is real, not a constant."""
    torch.manual_seed(0)
    tr = make(gate_g=0.6, gate_momentum=0.5, d_lr=1e-2, lr=0.0, d_hidden=16, d_mlp=16)
    history = [
        tr.training_step(DATA.raw("train")[16 * (i % 8) : 16 * (i % 8 + 1)]) for i in range(60)
    ]
    late = torch.stack([m["d_accuracy"] for m in history[-10:]]).mean().item()
    assert late > 0.75, late
    assert history[-1]["g_gate_open"] == 1


def test_free_running_longer_than_training_with_segments():
    tr = make(free_steps=40, segment=8)
    x, tf, free = passes(tr)
    assert free.hidden.shape[1] == 40
    width = 24 + 8  # behaviour "both": hidden states and the 8 pre-softmax logits
    assert tr.features(tf).shape == (16 * 2, 8, width)
    assert tr.features(free).shape == (16 * 5, 8, width)
    metrics = tr.training_step(batch())
    assert torch.isfinite(metrics["loss"])
    with pytest.raises(GMError):
        make(free_steps=40, segment=20)  # longer than the 16-step training windows


def test_professor_forcing_on_pen_strokes():
    from gm_professor_forcing.trainers import ProfessorForcingTrainer

    info = DataInfo("toy-strokes", "strokes", (20, 3))
    cfg = ProfessorForcingTrainer.default_config(info)
    assert cfg.output == "auto" and cfg.free_steps == 0  # (1000/50 applies to >= 50-step data)
    import dataclasses

    cfg = dataclasses.replace(
        cfg,
        hidden=16,
        layers=1,
        components=3,
        d_hidden=8,
        d_mlp=8,
        free_steps=30,
        segment=10,
        behaviour="both",
    )
    torch.manual_seed(0)
    tr = ProfessorForcingTrainer(cfg, info)
    x = torch.cat([torch.randn(8, 20, 2), (torch.rand(8, 20, 1) < 0.1).float()], -1)
    for _ in range(2):
        metrics = tr.training_step(x)
    assert all(torch.isfinite(v) for v in metrics.values())
    strokes = tr.sample(3, tr.SampleOptions(steps=50))
    assert strokes.shape == (3, 50, 3)


@pytest.mark.parametrize("model", ["professor-forcing", "scheduled-sampling"])
def test_steps_run_under_bf16_autocast(model):
    """The engine autocasts steps to bf16 on GPUs; the fused node and the losses keep float32."""
    tr = make(model, behaviour="both") if model == "professor-forcing" else make(model, steps=10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        metrics = tr.training_step(batch())
    assert all(torch.isfinite(v) for v in metrics.values())
    assert all(p.dtype == torch.float32 for p in tr.parameters())
