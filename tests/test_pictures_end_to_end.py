"""Pictures a person can read, drawn by the plugins' own code: inpainting and imputation
rows labelled, small images upscaled, hidden-state clouds titled with a legend, token ids
written as text. Tiny runs of 2 steps: the pictures' layout is tested, not the models.

Skips unless the plugins are installed (the full workspace, as CI's integration session).
"""

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("gm_walkback")
pytest.importorskip("gm_imputation")
pytest.importorskip("gm_professor_forcing")

from gm import (
    pictures,  # noqa: E402
    train,  # noqa: E402
)

KW = dict(device="cpu", progress=False)
K = pictures.scale_for(8)  # digits are 8x8: drawn at 12x


def ink(img: Image.Image, box) -> bool:
    """Whether there is dark (text) ink in ``box`` of a white-background picture."""
    return bool((np.asarray(img.convert("L").crop(box)) < 100).any())


def test_inpainting_rows_are_labelled_titled_and_upscaled(tmp_path):
    from gm_walkback.inpainting import inpaint_run

    run = train("walkback", "digits", steps=2, out=tmp_path / "r", **KW).path
    out = tmp_path / "inpaint.png"
    inpaint_run(run, dataset=None, mask="bottom-half", out=out, n=4, device="cpu")
    img = Image.open(out)
    grid_h = 3 * (8 + 2) * K + 2 * K  # three rows of 8x8 tiles at 12x, 2 px padding
    grid_w = 4 * (8 + 2) * K + 2 * K
    assert img.height == 24 + grid_h  # a title strip over the grid
    label_w = img.width - grid_w
    assert label_w > 60 and ink(img, (0, 0, img.width, 20))  # the title
    row = (8 + 2) * K
    for r in range(3):  # "input (grey: unknown)", "inpainted", "original"
        assert ink(img, (0, 24 + r * row, label_w, 24 + (r + 1) * row)), r


def test_image_imputations_come_in_labelled_truth_masked_imputed_rows(tmp_path):
    run = train("gpsi-add", "digits", steps=2, out=tmp_path / "r", **KW).path
    img = Image.open(run / "samples.png")  # 64 samples: the first 32, 4 blocks of 3 rows
    grid_h = 12 * (8 + 2) * K + 2 * K
    grid_w = 8 * (8 + 2) * K + 2 * K
    assert img.height == grid_h and img.width > grid_w + 40
    label_w, row = img.width - grid_w, (8 + 2) * K
    assert all(ink(img, (0, r * row, label_w, (r + 1) * row)) for r in range(12))


def test_hidden_state_clouds_are_titled_with_a_legend(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    from gm_professor_forcing import evaluation

    seen = []
    real = pictures.scatter

    def spy(*a, **kw):  # the real scatter, its arguments kept
        seen.append(kw)
        return real(*a, **kw)

    monkeypatch.setattr(pictures, "scatter", spy)
    g = torch.Generator().manual_seed(0)
    ref, free = torch.randn(60, 8, generator=g), torch.randn(60, 8, generator=g) + 1
    evaluation.projection_picture(ref, free, str(tmp_path / "clouds.png"))
    assert [kw["labels"] for kw in seen] == [("free-running", "teacher-forced")] * 2
    assert all("hidden states" in kw["title"] for kw in seen)
    img = Image.open(tmp_path / "clouds.png")
    assert ink(img, (0, 0, img.width // 2, 24)) and ink(img, (img.width // 2, 0, img.width, 24))


def test_token_samples_are_written_as_text(tmp_path):
    from gm.data import DataInfo
    from gm_professor_forcing import drawing

    info = DataInfo("markov-chain", "sequence", (12,), vocab_size=10)
    tokens = torch.arange(24).reshape(2, 12) % 10
    got = drawing.picture(tokens, info, 12)
    want = drawing.text_picture([" ".join(map(str, r)) for r in tokens.tolist()])
    assert np.array_equal(np.asarray(got), np.asarray(want))  # the ids, as text
    drawing.write(tokens, tmp_path / "s.txt", info, 12)
    assert (tmp_path / "s.txt").read_text().splitlines()[0] == "0 1 2 3 4 5 6 7 8 9 0 1"


def test_walkback_chains_are_titled_and_28px_tiles_upscaled():
    from gm.data import DataInfo
    from gm_walkback import figures

    info = DataInfo("mnist", "image", (1, 28, 28))
    frames = torch.rand(3, 2, 1, 28, 28)  # 3 frames of 2 chains
    img = figures.chain_strip(frames, info, every=5)
    k = pictures.scale_for(28)
    assert k == 3 and img.height == 24 + 2 * (28 + 2) * k + 2 * k
    assert ink(img, (0, 0, img.width, 20))
