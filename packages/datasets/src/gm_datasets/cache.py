"""The decoded-dataset cache: one folder of fixed-shape arrays per source + preprocessing.

A dataset is decoded once (PNG/JPEG bytes, ``.amat`` text, XML strokes, ...) into plain
numpy arrays, saved as ``.npy`` files in::

    $GM_CACHE_DIR/<name>-v<version>-<hash of the preprocessing>/   (default ~/.cache/gm/datasets)
        meta.json            name, version, preprocessing, where the source came from, arrays
        <array>.npy          e.g. train.npy (uint8 N,C,H,W), train.labels.npy (int64 N)

``meta.json`` is written last, and the folder is built under a temporary name and renamed
into place, so a half-written entry is never read. Training then holds one tensor per
split in memory. This module imports neither torch nor ``datasets`` (``gm list-datasets``
uses :func:`is_cached`); numpy is imported when arrays are read or written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMAT = 1  # layout of a cache folder; bump if it changes
META = "meta.json"


def cache_root() -> Path:
    """``$GM_CACHE_DIR``, else ``~/.cache/gm/datasets``."""
    env = os.environ.get("GM_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gm" / "datasets"


def key(preprocessing: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able preprocessing description."""
    blob = json.dumps({"format": FORMAT, **preprocessing}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def entry(name: str, version: int, preprocessing: dict[str, Any]) -> Path:
    """The cache folder of ``name`` decoded with ``preprocessing`` (it may not exist yet)."""
    return cache_root() / f"{name}-v{version}-{key(preprocessing)}"


def is_cached(name: str, version: int, preprocessing: dict[str, Any]) -> bool:
    return (entry(name, version, preprocessing) / META).is_file()


def read(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(arrays by name, metadata) of a complete cache folder."""
    import numpy as np

    meta = json.loads((folder / META).read_text())
    arrays = {a: np.load(folder / f"{a}.npy", allow_pickle=False) for a in meta["arrays"]}
    return arrays, meta


def write(folder: Path, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
    """Save ``arrays`` and ``meta`` as a complete cache folder (atomically replaced)."""
    import numpy as np

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for a, value in arrays.items():
            np.save(tmp / f"{a}.npy", np.ascontiguousarray(value), allow_pickle=False)
        described = {a: {"shape": list(v.shape), "dtype": str(v.dtype)} for a, v in arrays.items()}
        full = {
            **meta,
            "arrays": described,
            "format": FORMAT,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        (tmp / META).write_text(json.dumps(full, indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def cached(
    name: str,
    version: int,
    preprocessing: dict[str, Any],
    build: Callable[[], tuple[dict[str, Any], dict[str, Any]]],
    *,
    refresh: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read the cache entry, or ``build()`` -> (arrays, source description), store and return it.

    The key is the preprocessing, not where the source came from (MNIST is MNIST); an
    explicit source folder (``refresh=True``: ``--from PATH``) decodes again and replaces it.
    """
    folder = entry(name, version, preprocessing)
    if not refresh and (folder / META).is_file():
        return read(folder)
    arrays, source = build()
    write(
        folder,
        arrays,
        {"name": name, "version": version, "preprocessing": preprocessing, "source": source},
    )
    return arrays, json.loads((folder / META).read_text())
