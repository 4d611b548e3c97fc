"""Registries that compose: a third-party distribution registers its own transition
operator and its own sequence generator, and the walkback, NET and professor-forcing
trainers train them by name (``--set operator=`` / ``generator=``) without a line of
either plugin changing. The distribution is real: a dist-info folder with a ``gm``
entry point, found by importlib.metadata as an installed one would be.

Skips unless the plugins are installed (the full workspace, as CI's integration session).
"""

import textwrap

import pytest
import torch

pytest.importorskip("gm_walkback")
pytest.importorskip("gm_professor_forcing")

from gm import (  # noqa: E402
    checkpoint,
    plugins,
    testing,
    train,  # noqa: E402
)
from gm.data import DataInfo  # noqa: E402
from gm.run import Run

PLUGIN = """
import gm
from gm.specs import SequenceGeneratorSpec, TransitionOperatorSpec


@gm.hookimpl
def gm_transition_operators():
    return [TransitionOperatorSpec("acme-gauss", "acme_parts:AcmeOperator", "a residual MLP")]


@gm.hookimpl
def gm_sequence_generators():
    return [SequenceGeneratorSpec("acme-lstm", "acme_parts:AcmeLSTM", "an LSTM token model")]
"""

PARTS = '''
"""Written against gm's documented contracts only: nothing here imports a gm plugin."""

import math

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from gm.trainer import Behaviour


class AcmeOperator(nn.Module):
    """p_T(s'|s) = N(s + f(s), T sigma^2): only distribution(), none of walkback's extras."""

    @classmethod
    def build(cls, config, info):
        return cls(math.prod(info.shape))

    def __init__(self, dim):
        super().__init__()
        self.f = nn.Sequential(nn.Linear(dim, 32), nn.Tanh(), nn.Linear(32, 2 * dim))
        self.register_buffer("acme_marker", torch.ones(1))

    def distribution(self, s, temperature, step):
        flat = s.reshape(len(s), -1)
        mean, log_std = self.f(flat).chunk(2, -1)
        std = log_std.clamp(-4, 2).exp() * torch.as_tensor(temperature).sqrt()
        normal = D.Normal((flat + mean).view_as(s), std.view_as(s))
        return D.Independent(normal, s.dim() - 1)


class AcmeLSTM(nn.Module):
    """Tokens through an LSTM: teacher-forced, scheduled and free-running passes."""

    @classmethod
    def build(cls, config, info):
        return cls(info.vocab_size, 24)

    def __init__(self, vocab, hidden):
        super().__init__()
        self.vocab, self.hidden_size = vocab, hidden
        self.embedding = nn.Embedding(vocab + 1, hidden)  # the last id is the start token
        self.cell = nn.LSTMCell(hidden, hidden)
        self.readout = nn.Linear(hidden, vocab)
        self.register_buffer("acme_marker", torch.ones(1))

    def _run(self, inputs):
        b = len(inputs)
        h = c = self.readout.weight.new_zeros(b, self.hidden_size)
        hidden = []
        for t in range(inputs.shape[1]):
            h, c = self.cell(self.embedding(inputs[:, t]), (h, c))
            hidden.append(h)
        hidden = torch.stack(hidden, 1)
        return Behaviour(hidden, self.readout(hidden))

    def _shifted(self, x):
        start = torch.full((len(x), 1), self.vocab, dtype=torch.long, device=x.device)
        return torch.cat([start, x[:, :-1]], 1)

    def teacher_forced(self, x):
        return self._run(self._shifted(x))

    def scheduled(self, x, p_true):
        with torch.no_grad():
            guess = torch.distributions.Categorical(logits=self.teacher_forced(x).outputs).sample()
        keep = torch.rand(x.shape, device=x.device) < p_true
        return self._run(self._shifted(torch.where(keep, x, guess)))

    def nll(self, behaviour, x):
        logits = behaviour.outputs
        return F.cross_entropy(logits.transpose(1, 2), x, reduction="none")

    def free_running(self, batch_size, steps, temperature=1.0):
        w = self.readout.weight
        h = c = w.new_zeros(batch_size, self.hidden_size)
        token = torch.full((batch_size,), self.vocab, dtype=torch.long, device=w.device)
        tokens, hidden = [], []
        for _ in range(steps):
            h, c = self.cell(self.embedding(token), (h, c))
            logits = self.readout(h) / max(temperature, 1e-6)
            token = torch.distributions.Categorical(logits=logits.detach()).sample()
            tokens.append(token)
            hidden.append(h)
        hidden = torch.stack(hidden, 1)
        return torch.stack(tokens, 1), Behaviour(hidden, self.readout(hidden))
'''

KW = dict(device="cpu", progress=False)


@pytest.fixture
def acme(tmp_path, monkeypatch):
    """The `acme-parts` distribution, installed on sys.path for this test only."""
    root = tmp_path / "site"
    info = root / "acme_parts-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-parts\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[gm]\nacme = acme_plugin\n")
    (root / "acme_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (root / "acme_parts.py").write_text(textwrap.dedent(PARTS))
    monkeypatch.syspath_prepend(str(root))
    plugins.reset()
    yield
    plugins.reset()


def _uses(run, class_name: str) -> bool:
    trainer = Run.open(run, "cpu").trainer
    parts = [m for top in trainer.modules().values() for m in top.modules()]
    return any(type(m).__name__ == class_name for m in parts)


def test_the_third_party_parts_keep_the_contracts(acme):
    op_cls = plugins.component("transition_operators", "acme-gauss")
    gen_cls = plugins.component("sequence_generators", "acme-lstm")
    assert op_cls.__module__ == gen_cls.__module__ == "acme_parts"
    testing.check_transition_operator(
        op_cls.build(None, DataInfo("toy", "vector", (2,))), torch.randn(5, 2)
    )
    gen = gen_cls.build(None, DataInfo("tok", "sequence", (12,), vocab_size=7))
    testing.check_sequence_generator(gen, torch.randint(0, 7, (3, 12)))


@pytest.mark.parametrize("model", ["walkback", "diffusion"])
def test_walkback_and_net_train_and_sample_a_third_party_operator(acme, tmp_path, model):
    run = train(
        model,
        "swiss-roll",
        steps=6,
        out=tmp_path / model,
        **{"operator": "acme-gauss", "batch_size": 32},
        **KW,
    ).path
    assert _uses(run, "AcmeOperator")
    assert (run / "samples.png").exists()  # sampling ran through the operator too
    record = checkpoint.read_record(run)
    assert record["config"]["operator"] == "acme-gauss"


@pytest.mark.parametrize("model", ["teacher-forcing", "scheduled-sampling", "professor-forcing"])
def test_the_sequence_trainers_train_a_third_party_generator(acme, tmp_path, model):
    run = train(
        model,
        "regime-switch",
        steps=4,
        out=tmp_path / model,
        **{"generator": "acme-lstm", "batch_size": 8},
        data_options={"length": 24, "n": 64},
        **KW,
    ).path
    assert _uses(run, "AcmeLSTM")
    assert (run / "samples.png").exists()
