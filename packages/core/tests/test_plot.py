"""gm plot: curves of several runs overlaid, with ticks, a title and a legend."""

import json

import numpy as np
import pytest
from conftest import gm_run
from PIL import Image

from gm import plotting
from gm.errors import GMError


def write_rows(folder, rows):
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_ticks_are_round_and_cover_the_range():
    assert plotting.ticks(0, 0.93) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    t = plotting.ticks(-3.7, 12.2)
    assert t[0] <= -3.7 and t[-1] >= 12.2 and len(set(np.diff(t).round(9))) == 1


def test_each_run_is_a_line_of_its_own_colour(tmp_path):
    a = write_rows(
        tmp_path / "a", [{"step": s, "loss": 3 - s / 50, "time": s / 10} for s in range(1, 101, 10)]
    )
    b = write_rows(
        tmp_path / "b", [{"step": s, "loss": 2.5, "time": s / 5} for s in range(1, 101, 10)]
    )
    img = np.asarray(plotting.plot_runs([str(a), str(b)], "loss", labels=["fast", "flat"]))
    for colour in plotting.COLOURS[:2]:
        assert (img == colour).all(-1).sum() > 100, colour  # both lines drawn
    assert (img == plotting.COLOURS[2]).all(-1).sum() == 0  # and no third
    flat = (img == plotting.COLOURS[1]).all(-1)
    rows = np.nonzero(flat[:, 200:700].any(1))[0]  # the flat run: one horizontal band
    assert rows.max() - rows.min() < 30


def test_unknown_metric_names_the_columns(tmp_path):
    a = write_rows(tmp_path / "a", [{"step": 1, "loss": 1.0, "lr": 0.1}])
    with pytest.raises(GMError, match="no run has metric 'acc'.*loss, lr"):
        plotting.plot_runs([str(a)], "acc")


def test_gm_plot_writes_the_png(tmp_path):
    a = write_rows(tmp_path / "a", [{"step": s, "loss": 1 / s, "time": s} for s in range(1, 30)])
    out = gm_run(
        "plot", str(a), str(a), "--metric", "loss", "--x", "time", "--out", str(tmp_path / "c.png")
    )
    assert out.returncode == 0, out.stderr
    assert Image.open(tmp_path / "c.png").size == (900, 540)
    bad = gm_run("plot", str(a), "--out", str(tmp_path / "c.jpg"))
    assert bad.returncode == 2 and ".png" in bad.stderr
