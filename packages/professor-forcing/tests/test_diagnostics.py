"""Professor forcing's training diagnostics, the adversarial cap and the never-opened line."""

import math

import pytest
import torch

from gm import progress
from gm.build import resolve
from gm.builtins.toy import markov_chain
from gm.engine import seed_everything
from gm_professor_forcing.trainers import NEVER_OPENED

SMALL = {"hidden": 8, "embed": 4, "d_hidden": 8, "d_mlp": 8, "batch_size": 8}


def _pf(data, **over):
    cls, cfg = resolve("professor-forcing", data.info, overrides={**SMALL, **over})
    return cls(cfg, data.info)


@pytest.fixture(scope="module")
def data():
    return markov_chain(n=64, length=12)


@pytest.mark.parametrize("cap", [0.0, 0.5, 1e6])  # off, binding, far above the ratio
def test_ratio_cosine_and_cap_on_known_gradients(data, cap):
    """NLL = a . w and the adversarial term = b . w on one weight: the gradients are a and
    b exactly, so the ratio is scale |b| / |a|, the cosine a.b / |a||b|, and the surrogate's
    gradient a + factor scale b with factor min(1, cap / ratio) (1 without a cap)."""
    tr = _pf(data, adversarial_cap=cap)
    w = tr.generator.readout.weight
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(w.shape, generator=g), torch.randn(w.shape, generator=g)
    scale = tr.adversarial_scale()
    assert scale == pytest.approx(1 / 12)  # the thesis: C_f beside the whole-sequence NLL
    b = b * 30  # the adversarial gradient larger than the NLL's even after 1/L
    surrogate, d = tr.generator_gradient((a * w).sum(), (b * w).sum(), torch.tensor(True))
    ratio = scale * b.norm() / a.norm()
    assert d["grad_ratio"].item() == pytest.approx(ratio.item(), rel=1e-5)
    cosine = (a * b).sum() / (a.norm() * b.norm())
    assert d["grad_cosine"].item() == pytest.approx(cosine.item(), rel=1e-5, abs=1e-7)
    factor = min(1.0, cap / ratio.item()) if cap else 1.0
    assert d["adversarial_factor"].item() == pytest.approx(factor, rel=1e-5)
    tr.generator.zero_grad()
    surrogate.backward()
    torch.testing.assert_close(w.grad, a + factor * scale * b)
    other = [p.grad for p in tr.generator.parameters() if p is not w]
    assert all(q is None or not q.any() for q in other)
    # a closed gate keeps the diagnostics (the pressure it holds back) and applies nothing
    tr.generator.zero_grad()
    surrogate, d = tr.generator_gradient((a * w).sum(), (b * w).sum(), torch.tensor(False))
    assert d["grad_ratio"].item() == pytest.approx(ratio.item(), rel=1e-5)
    surrogate.backward()
    torch.testing.assert_close(w.grad, a)


def _steps(tr, data, n, seed=0):
    batches = data.batches("train", tr.config.batch_size, seed=seed)
    seed_everything(seed)
    out = []
    for step in range(n):
        tr.step = step
        out.append(tr.training_step(next(batches)))
    return out


def test_diagnosed_steps_make_the_same_update_as_plain_ones(data):
    """The surrogate path (every step with log_every=1) moves G as the one loss does."""
    seed_everything(3)
    every = _pf(data, log_every=1, gate_g=0.0, steps=4)
    seed_everything(3)
    once = _pf(data, log_every=1000, gate_g=0.0, steps=4)
    m_every, m_once = _steps(every, data, 4), _steps(once, data, 4)
    for p, q in zip(every.generator.parameters(), once.generator.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    # the once-per-window diagnostics are held through the window
    assert all(m["grad_ratio"] == m_once[0]["grad_ratio"] for m in m_once)
    assert m_every[1]["grad_ratio"] != m_every[0]["grad_ratio"]
    assert all(m["grad_ratio"] > 0 and -1 <= m["grad_cosine"] <= 1 for m in m_every)
    assert m_every[-1]["g_gate_ever_open"] == 1


def test_diagnostics_with_the_teacher_term(data):
    """C_t shares the teacher-forced graph with the NLL: both gradients taken apart."""
    seed_everything(6)
    tr = _pf(data, gate_g=0.0, teacher_term=True, log_every=1, steps=2)
    m = _steps(tr, data, 2)
    assert all("c_t" in r and r["grad_ratio"] > 0 for r in m)


def test_the_cap_bounds_the_applied_adversarial_gradient(data):
    seed_everything(4)
    tr = _pf(data, gate_g=0.0, adversarial_weight=1e4, adversarial_cap=0.2, steps=3)
    for m in _steps(tr, data, 3):
        assert m["grad_ratio"] > 0.2  # the heavy weight: far past the cap ...
        assert m["adversarial_factor"] * m["grad_ratio"] == pytest.approx(0.2, rel=1e-4)


def test_a_run_whose_gate_never_opened_says_it_was_teacher_forcing(data, capsys):
    seed_everything(5)
    shut = _pf(data, gate_g=1.0, steps=3)  # the smoothed accuracy never exceeds 1
    with progress.enabled(True):
        metrics = _steps(shut, data, 3)
    err = capsys.readouterr().err
    assert NEVER_OPENED.format(gate=1.0) in err and "this run was teacher forcing" in err
    assert metrics[-1]["g_gate_ever_open"] == 0
    assert shut.extra_state() == {"gate_open_steps": 0}
    seed_everything(5)
    opened = _pf(data, gate_g=0.0, steps=3)
    with progress.enabled(True):
        _steps(opened, data, 3)
    assert "never opened" not in capsys.readouterr().err
    assert opened.extra_state() == {"gate_open_steps": 3}
    shut.load_extra_state({"gate_open_steps": 2})  # resumed: the count goes on
    assert math.isclose(float(shut.open_steps), 2)
