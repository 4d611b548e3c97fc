"""Every fast path gives the eager path's results to float tolerance: the hand-written
teacher-forced loop against ``nn.GRU``, the fused discriminator GRU against ``nn.GRU``
(values and every gradient, frozen and detached), whole training steps with all fast
paths on (the CPU defaults) against all off, with the gates open and closed, and the
compiled sampling step against the eager sampling loop."""

import copy

import pytest
import torch

from gm.build import resolve
from gm.builtins.toy import markov_chain
from gm_professor_forcing import sampling
from gm_professor_forcing.discriminators import BiGRUDiscriminator
from gm_professor_forcing.generators import ContinuousGRU, TokenGRU
from gm_professor_forcing.trainers import frozen

DATA = markov_chain(n=64, length=16)
SMALL = {"hidden": 24, "embed": 8, "batch_size": 16, "d_hidden": 12, "d_mlp": 12}
EAGER = {"fused_teacher_forced": "off", "fused_discriminator": "off", "skip_closed_gates": "off"}


def test_the_plugin_s_own_rows_are_the_ones_core_reads():
    """fused_rnn and host_gates are this plugin's vocabulary, declared by its hook: "auto"
    turns them on on CPU (measured faster there), off on CUDA (cuDNN wins)."""
    from gm import fastpath

    table = fastpath.faster_on()
    assert table["fused_rnn"] == table["host_gates"] == ("cpu",)
    assert "fused_rnn" not in fastpath.FASTER_ON and "host_gates" not in fastpath.FASTER_ON
    assert fastpath.use("auto", "fused_rnn", "cpu") and not fastpath.use(
        "auto", "host_gates", "cuda"
    )


def _grads(module):
    return {k: p.grad.clone() for k, p in module.named_parameters() if p.grad is not None}


def _close(a: dict, b: dict, atol=1e-5):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=atol, rtol=1e-4), k


def test_fused_teacher_forced_pass_matches_nn_gru():
    torch.manual_seed(0)
    fused = TokenGRU(vocab_size=7, hidden=20, layers=1, embed=6)
    fused.fused_teacher_forced = "on"
    eager = copy.deepcopy(fused)
    eager.fused_teacher_forced = "off"
    x = torch.randint(0, 7, (5, 18), generator=torch.Generator().manual_seed(1))
    prev = torch.tensor([0, 3, 6, 1, 2])
    results = []
    for g in (fused, eager):
        state = torch.linspace(-1, 1, 5 * 20).view(1, 5, 20).requires_grad_()
        a = g.teacher_forced(x)  # from the start symbol and a zero state
        b, last = g.teacher_forced_with_state(x, state, prev)  # continuing a stream
        loss = (a.hidden * b.hidden).sum() + a.outputs.sin().sum() + (last * last).sum()
        loss.backward()
        results.append((a, b, last, state.grad, _grads(g)))
    (a1, b1, s1, d1, g1), (a2, b2, s2, d2, g2) = results
    for u, v in [(a1.hidden, a2.hidden), (a1.outputs, a2.outputs), (b1.hidden, b2.hidden)]:
        assert torch.allclose(u, v, atol=1e-5)
    assert torch.allclose(s1, s2, atol=1e-5) and torch.allclose(d1, d2, atol=1e-5)
    assert "gru.weight_hh_l0" in g1 and "embedding.weight" in g1
    _close(g1, g2)


@pytest.mark.parametrize("layers", [1, 2])
def test_fused_discriminator_matches_nn_gru(layers):
    torch.manual_seed(0)
    fused = BiGRUDiscriminator(features=7, hidden=9, mlp=11, layers=layers)
    fused.fused = "on"
    eager = copy.deepcopy(fused)
    eager.fused = "off"
    x = torch.randn(6, 13, 7)
    w = torch.linspace(-1, 1, 6)
    results = []
    for d in (fused, eager):
        # both the input's and the weights' gradients
        xi = x.clone().requires_grad_()
        logits = d(xi)
        (logits * w).sum().backward()
        both = (logits.detach(), xi.grad, _grads(d))
        d.zero_grad(set_to_none=True)
        # D's update: a detached input, weight gradients only
        (d(x) * w).sum().backward()
        weights_only = _grads(d)
        d.zero_grad(set_to_none=True)
        # C_f: a frozen D, the input's gradient only
        xi = x.clone().requires_grad_()
        with frozen(d):
            (d(xi) * w).sum().backward()
        assert all(p.grad is None for p in d.parameters())
        results.append((both, weights_only, xi.grad))
    (b1, w1, x1), (b2, w2, x2) = results
    assert torch.allclose(b1[0], b2[0], atol=1e-5)
    assert torch.allclose(b1[1], b2[1], atol=1e-6) and torch.allclose(x1, x2, atol=1e-6)
    assert len(b1[2]) == len(list(fused.parameters()))
    _close(b1[2], b2[2])
    _close(w1, w2)
    _close(w1, b1[2], atol=0)  # the input's gradient changes nothing in the weights'


def _trainer(model, **over):
    overrides = {**SMALL, **over}
    if model != "professor-forcing":
        overrides = {k: v for k, v in overrides.items() if not k.startswith("d_")}
    cls, cfg = resolve(model, DATA.info, overrides=overrides)
    torch.manual_seed(0)
    return cls(cfg, DATA.info)


def _run(trainer, steps=3):
    metrics = []
    for i in range(steps):
        torch.manual_seed(10 + i)  # the same draws for both trainers
        metrics.append(trainer.training_step(DATA.raw("train")[16 * i : 16 * (i + 1)]))
    return metrics


@pytest.mark.parametrize(
    "gates",
    [
        {"gate_g": -1.0},  # both open: the full step
        {"gate_g": 2.0},  # D -> G closed
        {"gate_g": 2.0, "gate_d": -1.0},  # both closed
        {"gate_g": -1.0, "teacher_term": True, "behaviour": "both"},
    ],
)
def test_professor_forcing_steps_match_the_eager_path(gates):
    fast, eager = (
        _trainer("professor-forcing", **gates),
        _trainer("professor-forcing", **EAGER, **gates),
    )
    assert fast.discriminator.fused == "auto" and fast.generator.fused_teacher_forced == "auto"
    m_fast, m_eager = _run(fast), _run(eager)
    for a, b in zip(m_fast, m_eager, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.allclose(a[k], b[k], atol=1e-5), k
    for name in ("generator", "discriminator"):
        pa = dict(getattr(fast, name).named_parameters())
        pb = dict(getattr(eager, name).named_parameters())
        _close({k: p.detach() for k, p in pa.items()}, {k: p.detach() for k, p in pb.items()})
    for opt in ("opt_g", "opt_d"):
        sa, sb = getattr(fast, opt).state_dict()["state"], getattr(eager, opt).state_dict()["state"]
        for i in sa:
            assert torch.equal(sa[i]["step"], sb[i]["step"])
            assert torch.allclose(sa[i]["exp_avg"], sb[i]["exp_avg"], atol=1e-6)
    if gates.get("gate_d") == -1.0:  # D never moved, on either path
        assert all(s["step"] == 0 for s in fast.opt_d.state_dict()["state"].values())


def test_teacher_forcing_step_matches_the_eager_path():
    fast = _trainer("teacher-forcing")
    eager = _trainer("teacher-forcing", fused_teacher_forced="off")
    for a, b in zip(_run(fast), _run(eager), strict=True):
        assert torch.allclose(a["loss"], b["loss"], atol=1e-6)
    _close(
        {k: p.detach() for k, p in fast.generator.named_parameters()},
        {k: p.detach() for k, p in eager.generator.named_parameters()},
    )


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gru_layer_matches_nn_gru(bidirectional):
    from gm_professor_forcing.fused import GRULayer

    torch.manual_seed(0)
    gru = torch.nn.GRU(5, 8, batch_first=True, bidirectional=bidirectional)
    x = torch.randn(4, 9, 5, requires_grad=True)
    out = []
    for fused in (True, False):
        if fused:
            y = GRULayer.apply(x, True, *gru.parameters())  # nn.GRU's parameter order
        else:
            y = gru(x)[0]
        (y * torch.linspace(-1, 1, y.shape[-1])).sum().backward()
        out.append((y.detach(), x.grad.clone(), _grads(gru)))
        x.grad = None
        gru.zero_grad(set_to_none=True)
    (y1, x1, g1), (y2, x2, g2) = out
    assert y1.shape == (4, 9, 16 if bidirectional else 8)
    assert torch.allclose(y1, y2, atol=1e-6) and torch.allclose(x1, x2, atol=1e-6)
    _close(g1, g2)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TokenGRU(vocab_size=7, hidden=16, layers=2, embed=4),
        lambda: ContinuousGRU(3, hidden=16, layers=2, output="mixture", components=3),
    ],
    ids=["tokens-2-layers", "mixture"],
)
def test_compiled_sampling_draws_the_eager_samples(make):
    """The sampling fast path, compiled (one graph per model), draws for a seed what the
    eager loop (``free_running``) draws: the noise is drawn outside the compiled step by the
    eager calls. The one-layer fused token GRU: test_sample_options_reach_the_sampler."""
    torch.manual_seed(0)
    g = make()
    runs = {}
    for name, seed, compile in [("eager", 3, "off"), ("compiled", 3, "on"), ("other", 4, "on")]:
        torch.manual_seed(seed)
        runs[name] = sampling.sample(g, 5, 12, 0.8, compile=compile)
    eager, compiled, other = runs["eager"], runs["compiled"], runs["other"]
    assert compiled.shape[:2] == eager.shape[:2] == (5, 12)
    if eager.is_floating_point():  # (dx, dy, pen bit)
        assert torch.allclose(compiled, eager, atol=1e-5)
        assert torch.equal(compiled[..., 2], eager[..., 2])  # the pen bits exactly
        assert set(eager[..., 2].unique().tolist()) == {0.0, 1.0}
        assert not torch.allclose(other, eager, atol=1e-2)  # the comparison can fail
    else:
        assert torch.equal(compiled, eager)
        assert not torch.equal(other, eager)
    assert not torch.equal(compiled[:, :6], compiled[:, 6:])  # the chain moves
