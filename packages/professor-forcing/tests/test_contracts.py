"""gm.testing's contracts for the three models, the generators and the discriminator."""

import torch

from gm.testing import DiscriminatorContract, SequenceGeneratorContract, TrainerContract
from gm_professor_forcing.discriminators import BiGRUDiscriminator
from gm_professor_forcing.generators import ContinuousGRU, TokenGRU

SMALL = {"hidden": 32, "embed": 16, "batch_size": 16}


class TestTeacherForcing(TrainerContract):
    model = "teacher-forcing"
    dataset = "markov-chain"
    data_options = {"n": 256, "length": 16}
    overrides = SMALL


class TestScheduledSampling(TrainerContract):
    model = "scheduled-sampling"
    dataset = "markov-chain"
    data_options = {"n": 256, "length": 16}
    overrides = {**SMALL, "steps": 4}  # a schedule short enough that the model's draws are fed


class TestProfessorForcing(TrainerContract):
    model = "professor-forcing"
    dataset = "markov-chain"
    data_options = {"n": 256, "length": 16}
    overrides = {**SMALL, "d_hidden": 16, "d_mlp": 16, "free_steps": 32, "segment": 8}


class TestTokenGRU(SequenceGeneratorContract):
    def make_generator(self):
        return TokenGRU(vocab_size=7, hidden=24, layers=2, embed=8)

    def make_batch(self):
        return torch.randint(0, 7, (5, 12), generator=torch.Generator().manual_seed(0))


class TestStrokeGRU(SequenceGeneratorContract):
    def make_generator(self):
        return ContinuousGRU(dim=3, hidden=24, layers=1, output="mixture", components=3)

    def make_batch(self):
        g = torch.Generator().manual_seed(0)
        return torch.cat(
            [torch.randn(5, 12, 2, generator=g), (torch.rand(5, 12, 1, generator=g) < 0.2).float()],
            -1,
        )


class TestBernoulliGRU(TestStrokeGRU):
    def make_generator(self):
        return ContinuousGRU(dim=3, hidden=24, layers=1, output="bernoulli")


class TestBiGRUDiscriminator(DiscriminatorContract):
    def make_discriminator(self):
        return BiGRUDiscriminator(features=10, hidden=8, mlp=12)

    def make_behaviour(self):
        return torch.randn(4, 9, 10, generator=torch.Generator().manual_seed(0))


def test_thesis_recipes_carry_its_stated_settings():
    from gm.build import resolve
    from gm.data import DataInfo
    from gm_professor_forcing.recipes import RECIPES

    tokens = DataInfo("ptb-char", "sequence", (500,), vocab_size=50)
    _, cfg = resolve("pf-char-ptb", tokens)
    assert (cfg.hidden, cfg.layers, cfg.lr, cfg.d_hidden, cfg.d_mlp) == (1024, 1, 1e-4, 2048, 2048)
    assert cfg.behaviour == "embeddings" and cfg.weighting == "sequence"
    assert (cfg.gate_g, cfg.gate_d) == (0.75, 0.99)
    strokes = DataInfo("iam-ondb", "strokes", (50, 3))
    _, cfg = resolve("pf-handwriting", strokes)
    assert (cfg.free_steps, cfg.segment, cfg.hidden, cfg.layers) == (1000, 50, 400, 3)
    _, cfg = resolve("pf-sequential-mnist", DataInfo("s", "sequence", (784,), vocab_size=2))
    assert cfg.behaviour == "both" and cfg.hidden == 1024
    for recipe in RECIPES.values():
        assert "soft" in recipe["differs"] and recipe["data"].startswith("--dataset")
