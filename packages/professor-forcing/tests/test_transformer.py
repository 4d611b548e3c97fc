"""The causal Transformer generator: its KV-cached free run is the full causal pass over the
same draws, teacher forcing is causal, gradients reach every weight through the free run's
hidden states, it learns a source beyond its unigram law, and the three trainers train it
unchanged (it comes from the registry by name)."""

import numpy as np
import pytest
import torch

from gm import plugins
from gm.build import resolve
from gm.builtins.toy import markov_chain
from gm.errors import GMError
from gm.testing import SequenceGeneratorContract
from gm_professor_forcing.transformer import TransformerGenerator

DATA = markov_chain(n=512, length=16)
SMALL = {"generator": "transformer", "hidden": 16, "layers": 2, "heads": 2, "batch_size": 16}


def _gen(positions="sinusoidal", max_len=64):
    torch.manual_seed(0)
    return TransformerGenerator(
        7, width=16, layers=2, heads=2, max_len=max_len, positions=positions
    )


class TestTransformerContract(SequenceGeneratorContract):
    def make_generator(self):
        return TransformerGenerator(7, width=16, layers=2, heads=4, max_len=32, positions="learned")

    def make_batch(self):
        return torch.randint(0, 7, (5, 12), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_cached_free_run_is_the_full_pass_over_its_draws(positions, monkeypatch):
    """The KV-cached run's states equal one causal pass over the inputs it fed itself
    (start, draw_0, ..., draw_{T-2}); the cached run never runs the parallel pass."""
    g = _gen(positions)
    torch.manual_seed(1)
    with torch.no_grad(), monkeypatch.context() as m:
        m.setattr(TransformerGenerator, "_causal", None)  # a prefix recompute would fail
        tokens, cached = g.free_running(6, 40, 0.9)
    assert tokens.shape == (6, 40) and cached.hidden.shape == (6, 40, 16)
    with torch.no_grad():
        full = g.teacher_forced(tokens)  # the same inputs: start, then the draws
    assert torch.allclose(cached.hidden, full.hidden, atol=1e-5)
    assert torch.allclose(cached.outputs, full.outputs, atol=1e-5)
    assert not torch.equal(tokens[:, :20], tokens[:, 20:])  # the run moves
    # under autograd: the same draws (same seed) and the same behaviour, with a graph
    torch.manual_seed(1)
    tokens2, graphed = g.free_running(6, 40, 0.9)
    assert torch.equal(tokens2, tokens) and graphed.hidden.requires_grad
    assert torch.allclose(graphed.hidden, cached.hidden, atol=1e-5)


def test_teacher_forcing_is_causal():
    """Position t predicts x[t] from x[:t]: changing x[t0:] leaves positions 0..t0 as they
    were and changes the later ones."""
    g = _gen()
    x = torch.randint(0, 7, (4, 20), generator=torch.Generator().manual_seed(2))
    t0 = 9
    y = x.clone()
    y[:, t0:] = (x[:, t0:] + 1 + torch.randint(0, 5, x[:, t0:].shape)) % 7  # every one differs
    with torch.no_grad():
        a, b = g.teacher_forced(x), g.teacher_forced(y)
    assert torch.allclose(a.hidden[:, : t0 + 1], b.hidden[:, : t0 + 1], atol=1e-6)
    assert torch.allclose(a.outputs[:, : t0 + 1], b.outputs[:, : t0 + 1], atol=1e-6)
    assert (a.hidden[:, t0 + 1 :] - b.hidden[:, t0 + 1 :]).abs().amax(-1).min() > 1e-4


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_gradient_reaches_every_weight_through_free_run_states(positions):
    g = _gen(positions)
    torch.manual_seed(3)
    tokens, behaviour = g.free_running(4, 24)
    assert not tokens.requires_grad
    w = torch.linspace(-1, 1, 16)
    (behaviour.hidden * w).pow(2).sum().backward()  # the states only, not the logits
    for name, p in g.named_parameters():
        if name.startswith("readout"):
            assert p.grad is None  # off the states' path
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_scheduled_with_no_true_tokens_is_free_running():
    g = _gen()
    x = torch.randint(0, 7, (3, 15), generator=torch.Generator().manual_seed(4))
    torch.manual_seed(5)
    behaviour = g.scheduled(x, 0.0)
    torch.manual_seed(5)
    torch.rand(3, 15)  # the coins scheduled() draws first
    _, free = g.free_running(3, 15)
    assert torch.allclose(behaviour.hidden, free.hidden, atol=1e-6)
    assert torch.allclose(g.scheduled(x, 1.0).hidden, g.teacher_forced(x).hidden)
    torch.manual_seed(5)
    mixed = g.scheduled(x, 0.5)  # half true tokens: neither pass
    assert not torch.allclose(mixed.hidden, free.hidden, atol=1e-4)


def test_past_max_len_is_a_clear_error():
    g = _gen(max_len=10)
    with pytest.raises(GMError, match="max_len"):
        g.free_running(2, 11)
    with pytest.raises(GMError, match="max_len"):
        g.teacher_forced(torch.zeros(2, 11, dtype=torch.long))
    assert g.free_running(2, 10)[0].shape == (2, 10)
    with pytest.raises(GMError, match="carry-state"):
        g.teacher_forced_with_state(torch.zeros(2, 5, dtype=torch.long))


def test_registry_builds_it_by_name():
    assert plugins.component("sequence_generators", "transformer") is TransformerGenerator
    cls, cfg = resolve("teacher-forcing", DATA.info, overrides={**SMALL, "max_len": 0})
    g = cls(cfg, DATA.info).generator
    assert isinstance(g, TransformerGenerator)
    assert (g.hidden_size, g.num_layers, g.max_len) == (16, 2, 16 * 16)  # 16 training lengths
    cls, cfg = resolve("teacher-forcing", DATA.info, overrides={"generator": "no-such"})
    with pytest.raises(GMError, match="no-such"):
        cls(cfg, DATA.info)


def _unigram_nll(train, test, vocab):
    p = np.bincount(train.numpy().ravel(), minlength=vocab) + 1.0
    p /= p.sum()
    return float(-np.log(p)[test.numpy().ravel()].mean())


@pytest.mark.slow  # 5 s (durations run, 1 thread, load 4-7)
def test_teacher_forcing_learns_beyond_the_unigram_law():
    """A few hundred teacher-forced updates: test NLL well under the unigram baseline (the
    source is order-1 Markov: its entropy rate is far below the unigram entropy)."""
    torch.manual_seed(0)
    cls, cfg = resolve("teacher-forcing", DATA.info, overrides={**SMALL, "hidden": 32, "lr": 3e-3})
    tr = cls(cfg, DATA.info)
    train, test = DATA.raw("train"), DATA.raw("test")
    g = torch.Generator().manual_seed(0)
    for step in range(300):
        tr.step = step
        tr.training_step(train[torch.randint(0, len(train), (16,), generator=g)])
    with torch.no_grad():
        nll = tr.generator.nll(tr.generator.teacher_forced(test), test).mean().item()
    unigram = _unigram_nll(train, test, DATA.info.vocab_size)
    floor = DATA.info.meta["true_nll"] / 16
    assert floor < unigram - 0.2  # the source leaves room to beat the unigram law
    assert nll < unigram - 0.5 * (unigram - floor), (nll, unigram, floor)


@pytest.mark.parametrize("model", ["professor-forcing", "scheduled-sampling"])
def test_the_trainers_train_it_unchanged(model):
    over = {**SMALL, "steps": 4}
    if model == "professor-forcing":
        over.update(d_hidden=8, d_mlp=8, gate_g=-1.0, behaviour="embeddings")  # G gate open
    cls, cfg = resolve(model, DATA.info, overrides=over)
    torch.manual_seed(0)
    tr = cls(cfg, DATA.info)
    g0 = [p.detach().clone() for p in tr.generator.parameters()]
    for step in range(3):
        tr.step = step
        metrics = tr.training_step(DATA.raw("train")[16 * step : 16 * (step + 1)])
        assert all(torch.isfinite(v).all() for v in metrics.values())
    assert all(not torch.equal(a, p) for a, p in zip(g0, tr.generator.parameters(), strict=True))
    if model == "professor-forcing":
        assert metrics["d_updated"] == 1 and metrics["g_gate_open"] == 1
        assert (
            tr.features(
                tr.generator.teacher_forced(DATA.raw("test")[:2]), DATA.raw("test")[:2]
            ).shape[-1]
            == 32
        )


def test_sinusoids_are_vaswanis():
    from gm_professor_forcing.transformer import sinusoids

    t = sinusoids(50, 8)
    pos = torch.arange(50.0)
    for i in range(4):  # pair i: sin and cos of pos / 10000^(2i / width)
        angle = pos / 10000 ** (2 * i / 8)
        assert torch.allclose(t[:, 2 * i], torch.sin(angle), atol=1e-5)
        assert torch.allclose(t[:, 2 * i + 1], torch.cos(angle), atol=1e-5)


def test_sample_tokens_are_the_free_runs_draws():
    g = _gen()
    torch.manual_seed(6)
    a = g.sample_tokens(4, 30)  # temperature 1 by default
    torch.manual_seed(6)
    with torch.no_grad():
        b, _ = g.free_running(4, 30, 1.0)
    assert torch.equal(a, b) and a.dtype == torch.long


def test_scheduled_feeds_the_true_token_where_its_coin_says():
    """The input at step t is x[t-1] where keep[:, t] (the coins, drawn first). The model
    cannot draw the data's tokens (their logits pushed to -1e4), so a state equals teacher
    forcing's exactly when every input so far was a true token."""
    g = _gen()
    with torch.no_grad():
        g.readout.bias[:3] = -1e4  # draws only 3..6
    x = torch.randint(0, 3, (64, 15), generator=torch.Generator().manual_seed(7))
    torch.manual_seed(8)
    keep = torch.rand(64, 15) < 0.7
    torch.manual_seed(8)
    with torch.no_grad():
        behaviour, tf = g.scheduled(x, 0.7), g.teacher_forced(x)
    all_true = keep[:, 1:].cumprod(1).bool()  # inputs 1..t all true tokens
    same = (behaviour.hidden - tf.hidden).abs().amax(-1) < 1e-5
    assert same[:, 0].all() and all_true.any() and not all_true.all()
    assert torch.equal(same[:, 1:], all_true)
