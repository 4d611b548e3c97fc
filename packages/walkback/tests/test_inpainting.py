"""gm inpaint's logic (inpainting.inpaint_run) on the one mask grammar of gm.masks: the
entries a mask marks missing are filled, every other entry comes back exactly as given, the
mask depends on the seed alone, and vectors get their half / block masks."""

import numpy as np
import pytest
import torch

from gm import checkpoint, masks
from gm.build import resolve
from gm.data import load_dataset
from gm.engine import seed_everything
from gm.errors import GMError
from gm_walkback.inpainting import inpaint_run


def saved_run(path, dataset, options, **overrides):
    """An untrained walkback run folder (inpainting needs no training to clamp)."""
    data = load_dataset(dataset, options=options)
    cls, cfg = resolve("walkback", data.info, overrides={"hidden": 16, **overrides})
    seed_everything(0)
    trainer = cls(cfg, data.info, "cpu")
    path.mkdir(parents=True)
    record = checkpoint.run_record("walkback", dataset, trainer, seed=0, data_options=options)
    checkpoint.write_json(path / checkpoint.CONFIG, record)
    checkpoint.save(path, trainer, 0)
    return path, data


@pytest.mark.parametrize("mask", ["bottom-half", "mar:3", "mcar:0.4"])
def test_missing_entries_are_filled_and_the_rest_kept(tmp_path, mask):
    run, data = saved_run(tmp_path / "run", "wb-tiny-images", {}, tmax=8.0)
    out = tmp_path / "out.npy"
    inpaint_run(run, dataset=None, mask=mask, out=out, n=6, seed=3)
    filled = torch.from_numpy(np.load(out))
    x = data.decode(data.raw("test")[:6]).float()
    gen = torch.Generator().manual_seed(3)
    missing = masks.parse(mask).sample(6, (1, 8, 8), modality="image", generator=gen)
    assert missing.any() and (~missing).any()
    assert torch.equal(filled[~missing], x[~missing])  # known = ~missing, byte for byte
    assert not torch.equal(filled[missing], x[missing])  # the missing ones were redrawn
    inpaint_run(run, dataset=None, mask=mask, out=tmp_path / "again.npy", n=6, seed=3)
    again = torch.from_numpy(np.load(tmp_path / "again.npy"))
    assert torch.equal(again[~missing], x[~missing])  # the same mask for the same seed


def test_vectors_lose_their_last_half_or_a_block(tmp_path):
    run, data = saved_run(tmp_path / "run", "swiss-roll", {"n": 64}, tmax=4.0)
    x = data.decode(data.raw("test")[:5]).float()
    inpaint_run(run, dataset=None, mask="bottom-half", out=tmp_path / "h.npy", n=5)
    half = torch.from_numpy(np.load(tmp_path / "h.npy"))
    assert torch.equal(half[:, 0], x[:, 0]) and not torch.equal(half[:, 1], x[:, 1])
    inpaint_run(run, dataset=None, mask="mar:1", out=tmp_path / "b.npy", n=5, seed=1)
    block = torch.from_numpy(np.load(tmp_path / "b.npy"))
    assert ((block == x).sum(1) == 1).all()  # one of the two entries replaced in each row
    with pytest.raises(GMError):
        inpaint_run(run, dataset=None, mask="mar:3", out=tmp_path / "c.npy", n=5)
