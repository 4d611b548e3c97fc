"""Every user mistake these loaders know: one line on stderr, exit 2, no traceback
(through the real CLI entry point, in-process so the table stays fast)."""

import numpy as np
import pytest
from PIL import Image

from gm.cli import main


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)


def _npy(path, a):
    np.save(path, a)
    return str(path)


def _folder(tmp, *rels):
    for rel in rels:
        _png(tmp / "d" / rel) if rel.endswith(".png") else _write(tmp / "d" / rel)
    return f"images:{tmp / 'd'}"


def _write(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")


ROWS = np.arange(8 * 784).reshape(8, 784) % 256

CASES = {
    "image beside split folders": (
        lambda t: [_folder(t, "train/a.png", "test/b.png", "c.png")],
        "also the image c.png beside them",
    ),
    "other folder beside split folders": (
        lambda t: [_folder(t, "train/a.png", "cats/b.png")],
        "also a folder cats/ of images",
    ),
    "test/ without train/": (lambda t: [_folder(t, "test/a.png")], "but no train/ folder"),
    "val/ and valid/": (
        lambda t: [_folder(t, "train/a.png", "val/b.png", "valid/c.png")],
        "both mean the valid split",
    ),
    "no images at all": (lambda t: [_folder(t, "notes.txt")], "found no images in"),
    "corrupt image file": (
        lambda t: [_folder(t, "a.png", "b.png")] and _bad(t),
        "b.png is not a readable image",
    ),
    "shape not CxHxW": (
        lambda t: [f"array:{_npy(t / 'x.npy', ROWS)}", "--data-option", "shape=28by28"],
        "shape must look like CxHxW",
    ),
    "shape of the wrong size": (
        lambda t: [f"array:{_npy(t / 'x.npy', ROWS)}", "--data-option", "shape=1x28x27"],
        "needs 756 values a row",
    ),
    "no square shape": (
        lambda t: [f"array:{_npy(t / 'x.npy', ROWS[:, :780])}", "--data-option", "shape=square"],
        "not S*S (grey) nor 3*S*S",
    ),
    "two channels": (
        lambda t: [f"array:{_npy(t / 'x.npy', ROWS)}", "--data-option", "shape=4x14x14"],
        "1 (grey) or 3 (RGB) channels",
    ),
    "per-column scaling of images": (
        lambda t: [
            f"array:{_npy(t / 'x.npy', ROWS)}",
            "--data-option",
            "shape=28x28",
            "--data-option",
            "scale=true",
        ],
        "image arrays are not scaled per column",
    ),
    "image values out of range": (
        lambda t: [f"array:{_npy(t / 'x.npy', ROWS * 2.0)}", "--data-option", "shape=28x28"],
        "image arrays hold 0-255 or 0-1 values",
    ),
    "values outside the stated range": (
        lambda t: [
            f"array:{_npy(t / 'x.npy', ROWS)}",
            "--data-option",
            "shape=28x28",
            "--data-option",
            "pixels=0-1",
        ],
        "outside pixels=0-1",
    ),
    "missing values in images": (
        lambda t: [
            f"array:{_npy(t / 'x.npy', np.where(ROWS == 3, np.nan, ROWS))}",
            "--data-option",
            "shape=28x28",
        ],
        "an image array must be complete",
    ),
    "five-dimensional array": (
        lambda t: [f"array:{_npy(t / 'x.npy', np.zeros((2, 1, 2, 2, 2)))}"],
        "(N, D) vectors, or (N, H, W) / (N, C, H, W) images",
    ),
    "unknown pixels choice": (
        lambda t: [f"array:{_npy(t / 'x.npy', ROWS)}", "--data-option", "pixels=0-65535"],
        "dataset option 'pixels' of 'array' got '0-65535'",
    ),
}


def _bad(t):
    (t / "d" / "b.png").write_text("not a png")
    return [f"images:{t / 'd'}"]


@pytest.mark.parametrize("case", list(CASES))
def test_one_line_exit_2_no_traceback(case, tmp_path, capsys):
    make, message = CASES[case]
    args = make(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(["datasets", "prepare", *args])
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert err.count("\n") == 1 and err.startswith("gm: error:") and message in err, err
