"""``iam-ondb``: IAM On-Line Handwriting lines as pen offsets (dx, dy, pen_lift).

Read from ``lineStrokes-all.tar.gz`` (or its extracted ``lineStrokes/**.xml``) in the data
folder. Each line's strokes are joined: point t gives ``(x_t - x_{t-1}, y_t - y_{t-1},
pen_lift_t)`` with ``pen_lift = 1`` on the last point of each stroke and the first offset of a
line 0; pen coordinates keep the tablet's orientation (y grows downwards). Parsed once into
the cache as all points (M, 3) float32 plus line boundaries and form ids.

Loading cuts every line into non-overlapping windows of ``seq_len`` points (shorter tails
dropped) -> float32 (N, seq_len, 3). With ``normalize=true`` dx and dy are divided by the
standard deviation of the train offsets (``info.meta["scale"]``, multiply to get tablet
units back). The split is by form (``a01-000u``): a form is ``test`` when the first 8 hex
digits of its SHA-1, as a fraction of 2^32, are below ``test_fraction`` (default 0.1),
so the split never depends on file order and a writer's form never straddles it.
"""

from __future__ import annotations

import hashlib
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from gm.errors import GMError
from gm_datasets import cache
from gm_datasets.common import LabelledDataset, make_dataset, provenance


def parse_line(data: bytes, where: str) -> np.ndarray | None:
    """One lineStrokes XML -> (T, 3) float32 offsets, or None when it has no points."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise GMError(f"{where} is not valid XML ({err}).") from None
    strokes = root.find("StrokeSet")
    if strokes is None:
        return None
    pts: list[tuple[float, float, float]] = []
    for stroke in strokes.iter("Stroke"):
        points = stroke.findall("Point")
        for j, p in enumerate(points):
            try:
                pts.append(
                    (
                        float(p.attrib["x"]),
                        float(p.attrib["y"]),
                        1.0 if j == len(points) - 1 else 0.0,
                    )
                )
            except (KeyError, ValueError):
                raise GMError(f"{where} has a Point without numeric x and y.") from None
    if not pts:
        return None
    a = np.array(pts, dtype=np.float64)
    out = np.empty_like(a)
    out[0, :2] = 0.0
    out[1:, :2] = np.diff(a[:, :2], axis=0)
    out[:, 2] = a[:, 2]
    return out.astype(np.float32)


def _form(line_id: str) -> str:
    return line_id.rsplit("-", 1)[0] if line_id.count("-") >= 2 else line_id


def _xml_sources(files: list[Path]):
    """(line id, bytes, where) for each stroke XML, from the archive if there is one."""
    archives = [f for f in files if f.name.endswith(".tar.gz")]
    if archives:
        for archive in archives:
            try:
                with tarfile.open(archive, "r:gz") as tar:
                    for m in tar:
                        if m.isfile() and m.name.endswith(".xml"):
                            fh = tar.extractfile(m)
                            yield Path(m.name).stem, fh.read() if fh else b"", f"{archive}:{m.name}"
            except (tarfile.TarError, OSError, EOFError) as err:
                raise GMError(
                    f"{archive} is not a readable .tar.gz archive ({err}); it may be truncated."
                ) from None
    else:
        for f in files:
            yield f.stem, f.read_bytes(), str(f)


def iam_arrays(data_dir: str | None, source_dir: str | None) -> tuple[dict[str, np.ndarray], dict]:
    def build(folder, files, where):
        ids, lines = [], []
        for line_id, data, loc in _xml_sources(files):
            a = parse_line(data, loc)
            if a is not None:
                ids.append(line_id)
                lines.append(a)
        if not lines:
            raise GMError(f"found no stroke lines in {folder}.")
        order = np.argsort(ids)
        ids = [ids[i] for i in order]
        lines = [lines[i] for i in order]
        starts = np.zeros(len(lines) + 1, dtype=np.int64)
        starts[1:] = np.cumsum([len(a) for a in lines])
        return (
            {
                "points": np.concatenate(lines),
                "starts": starts,
                "ids": np.array(ids, dtype=np.str_),
            },
            {"found": where, "folder": str(folder), "lines": len(lines)},
        )

    return cache.cached_source("iam-ondb", build, data_dir=data_dir, source_dir=source_dir)


def is_test_form(form: str, test_fraction: float) -> bool:
    return int(hashlib.sha1(form.encode()).hexdigest()[:8], 16) / 2**32 < test_fraction


def iam_ondb(
    data_dir: str | None = None,
    source_dir: str | None = None,
    seq_len: int = 300,
    normalize: bool = True,
    test_fraction: float = 0.1,
) -> LabelledDataset:
    """IAM-OnDB pen strokes, float32 windows (N, seq_len, 3) of (dx, dy, pen_lift)."""
    if seq_len < 2:
        raise GMError(f"seq_len must be at least 2, got {seq_len}.")
    arrays, meta = iam_arrays(data_dir, source_dir)
    points, starts, ids = arrays["points"], arrays["starts"], arrays["ids"]
    test = np.array([is_test_form(_form(str(i)), test_fraction) for i in ids])
    chunks: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for k in range(len(ids)):
        line = points[starts[k] : starts[k + 1]]
        n = len(line) // seq_len
        if n:
            chunks["test" if test[k] else "train"].append(
                line[: n * seq_len].reshape(n, seq_len, 3)
            )
    if not chunks["train"]:
        raise GMError(f"no iam-ondb line has {seq_len} points in the train split; lower seq_len.")
    splits = {s: np.concatenate(c) for s, c in chunks.items() if c}
    train_points = np.concatenate(
        [points[starts[k] : starts[k + 1]] for k in np.flatnonzero(~test)]
    )
    scale = train_points[:, :2].std(0).astype(np.float64) if normalize else np.ones(2)
    scale = np.where(scale > 0, scale, 1.0)
    for s in splits:
        splits[s] = splits[s].copy()
        splits[s][..., :2] /= scale.astype(np.float32)
    return make_dataset(
        "iam-ondb",
        "strokes",
        splits,
        meta={
            "scale": scale.tolist(),
            # tablet units back for gm sample / gm evaluate (dx, dy times the std; pen as is)
            **({"affine": {"scale": [*scale.tolist(), 1.0], "shift": 0.0}} if normalize else {}),
            "seq_len": seq_len,
            "columns": ["dx", "dy", "pen_lift"],
            "y_axis": "down",
            "lines": {"train": int((~test).sum()), "test": int(test.sum())},
            "source": meta["source"].get("folder"),
            "provenance": provenance(meta),
        },
    )
