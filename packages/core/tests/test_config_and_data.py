"""Config coercion and the in-memory dataset abstraction."""

import dataclasses
from typing import Literal, Optional

import numpy as np
import pytest
import torch

from gm import config as configs
from gm.builtins import toy
from gm.data import DataInfo, Dataset
from gm.errors import GMError


@dataclasses.dataclass
class Cfg(configs.TrainConfig):
    hidden: tuple[int, ...] = (8, 8)
    mode: Literal["add", "jump"] = "add"
    beta: Optional[float] = None


def test_override_coerces_cli_strings():
    cfg = configs.override(
        Cfg(),
        {
            "hidden": "4,5,6",
            "mode": "jump",
            "beta": "0.5",
            "compile": "true",
            "steps": "1e3",
            "lr": "3e-4",
        },
    )
    assert cfg.hidden == (4, 5, 6) and cfg.mode == "jump" and cfg.beta == 0.5
    assert cfg.compile == "on" and cfg.steps == 1000 and cfg.lr == 3e-4
    assert configs.override(cfg, {"beta": "none"}).beta is None


def test_override_errors_name_the_key_and_the_fix():
    with pytest.raises(GMError, match="'hiden' in --set. Did you mean 'hidden'\\?$"):
        configs.override(Cfg(), {"hiden": "3"})
    with pytest.raises(
        GMError, match=r"No valid key is close; gm list-models MODEL lists all \d+\.$"
    ):
        configs.override(Cfg(), {"nonexistent": "3"})
    with pytest.raises(GMError, match="'mode' expects one of 'add', 'jump'"):
        configs.override(Cfg(), {"mode": "skip"})
    with pytest.raises(GMError, match="'steps' expects an integer"):
        configs.override(Cfg(), {"steps": "2.5"})


def test_json_round_trip():
    cfg = configs.override(Cfg(), {"hidden": "3,4"})
    back = configs.from_dict(Cfg, configs.to_dict(cfg), source="test")
    assert back == cfg


def test_batches_are_deterministic_sharded_and_cover_each_epoch():
    data = Dataset(DataInfo("x", "vector", (1,)), {"train": torch.arange(12.0)[:, None]})
    first = [b.squeeze(1) for _, b in zip(range(3), data.batches("train", 4, seed=1), strict=False)]
    assert sorted(torch.cat(first).tolist()) == list(range(12))  # one epoch, no repeats
    again = next(data.batches("train", 4, seed=1, start_step=2)).squeeze(1)
    assert torch.equal(again, first[2])
    halves = [next(data.batches("train", 4, seed=1, rank=r, world=2)).squeeze(1) for r in (0, 1)]
    assert torch.equal(torch.stack(halves, 1).reshape(-1), first[0])
    with pytest.raises(GMError, match="fewer than the batch size"):
        next(data.batches("train", 64))
    with pytest.raises(GMError, match="multiple of 3"):
        next(data.batches("train", 4, world=3))


def test_uint8_images_decode_to_unit_interval():
    imgs = torch.tensor([[[[0, 255]]]], dtype=torch.uint8).repeat(4, 1, 1, 1)
    data = Dataset(DataInfo("im", "image", (1, 1, 2)), {"train": imgs})
    batch = next(data.batches("train", 2))
    assert batch.dtype == torch.float32 and batch.min() == 0 and batch.max() == 1


def test_mog_log_density_is_normalised():
    # integrate exp(log p) on a fine grid over [-1.5, 1.5]^2
    g = torch.linspace(-1.5, 1.5, 601, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    p = toy.mog_log_density(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)).exp()
    assert abs(p.sum().item() * (g[1] - g[0]).item() ** 2 - 1) < 1e-3


def test_markov_chain_entropy_rate_matches_the_empirical_nll():
    data = toy.markov_chain(n=2048, length=64, vocab=8, seed=0)
    P = torch.tensor(data.info.meta["transitions"], dtype=torch.float64)
    x = data.raw("train")
    empirical = -P[x[:, :-1], x[:, 1:]].log().mean().item()
    assert abs(empirical - data.info.meta["entropy_rate"]) < 0.02
    counts = np.bincount(x[:, 0].numpy(), minlength=8) / len(x)
    assert np.abs(counts - np.array(data.info.meta["stationary"])).max() < 0.04
