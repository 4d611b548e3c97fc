"""Where each dataset's source files are, and how to get them: torch-free, ``datasets``-free.

A source is looked for, in order, in

1. ``source_dir`` (``gm datasets prepare NAME --from PATH``): the dataset's own folder;
2. ``DATA_DIR/<name>/`` where ``DATA_DIR`` is ``--data-dir`` or ``$GM_DATA_DIR``
   (for example a ``hf download ... --local-dir DATA_DIR/mnist`` folder);
3. the Hugging Face Hub cache (``$HF_HUB_CACHE``), where an earlier download left it;
4. the Hub itself, unless ``HF_HUB_OFFLINE=1`` — and when that fails too, a :class:`GMError`
   in one line saying what to download and where to put it.

Split names are read from the file paths (``train-00000-of-00001.parquet``,
``penn_treebank/valid/0000.parquet``, ``ptb.test.txt``), as the Hub's own layout does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gm.errors import GMError

SPLIT_WORDS = {
    "train": "train",
    "training": "train",
    "test": "test",
    "testing": "test",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "dev": "valid",
    "extra": "extra",
}


@dataclass(frozen=True)
class Source:
    name: str  # gm's name, also the folder name under the data dir
    repo: str = ""  # Hub dataset id ('' when the data is not on the Hub)
    config: str = ""  # the Hub repo's folder holding this config's files
    revision: str | None = None
    patterns: tuple[str, ...] = ("*.parquet",)  # file names that make up a local copy
    version: int = 1  # of gm's decoding; bump when the cached arrays would change
    howto: str = ""  # for sources not on the Hub: where they come from


SOURCES = {
    s.name: s
    for s in [
        Source("mnist", "ylecun/mnist", "mnist"),
        Source("cifar10", "uoft-cs/cifar10", "plain_text"),
        Source("svhn", "ufldl-stanford/svhn", "cropped_digits"),
        Source("celeba", "nielsr/CelebA-faces", "data", patterns=("*.parquet", "*.jpg")),
        Source(
            "ptb-char",
            "ptb-text-only/ptb_text_only",
            "penn_treebank",
            revision="refs/convert/parquet",
            patterns=("*.parquet", "ptb.*.txt"),
        ),
        Source(
            "binarized-mnist",
            patterns=("binarized_mnist_*.amat",),
            howto="the Larochelle-Murray files binarized_mnist_{train,valid,test}.amat "
            "(e.g. from http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/)",
        ),
        Source(
            "tfd",
            patterns=("TFD_48x48.mat",),
            howto="TFD_48x48.mat from the Toronto Face Database (not public: ask its authors)",
        ),
        Source(
            "iam-ondb",
            patterns=("lineStrokes-all.tar.gz", "*.xml"),
            howto="lineStrokes-all.tar.gz (and ascii-all.tar.gz) from "
            "https://fki.tic.heia-fr.ch/databases/iam-on-line-handwriting-database "
            "(free registration)",
        ),
    ]
}


def data_root(data_dir: str | None) -> Path | None:
    root = data_dir or os.environ.get("GM_DATA_DIR")
    return Path(root).expanduser() if root else None


def hub_cache() -> Path:
    """The Hugging Face Hub cache folder, resolved from the environment as huggingface_hub does."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")),
        "huggingface",
    )
    return Path(home).expanduser() / "hub"


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def files_in(folder: Path, source: Source) -> list[Path]:
    """The source files under ``folder`` (only its ``config`` subfolder when it has one)."""
    if not folder.is_dir():
        return []
    if source.config and (folder / source.config).is_dir():
        folder = folder / source.config
    found = {p for pattern in source.patterns for p in folder.rglob(pattern) if p.is_file()}
    return sorted(
        p for p in found if not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def split_of(path: Path, root: Path) -> str | None:
    """``train``/``valid``/``test``/``extra`` from the words of the path below ``root``."""
    parts = path.relative_to(root).parts if path.is_relative_to(root) else (path.name,)
    for part in reversed(parts):  # the file name first, then its folders, nearest first
        for word in reversed(re.split(r"[._\-\s]+", part.lower())):
            if word in SPLIT_WORDS:
                return SPLIT_WORDS[word]
    return None


def hub_snapshot(source: Source) -> Path | None:
    """A snapshot of ``source.repo`` already in the Hub cache that holds its files, if any."""
    if not source.repo:
        return None
    snapshots = hub_cache() / ("datasets--" + source.repo.replace("/", "--")) / "snapshots"
    if not snapshots.is_dir():
        return None
    for snap in sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        if files_in(snap, source):
            return snap
    return None


def local(
    source: Source, data_dir: str | None, source_dir: str | None = None
) -> tuple[Path, list[Path], str] | None:
    """(folder, files, where) of a local copy, without touching the network; None if none."""
    if source_dir:
        folder = Path(source_dir).expanduser().resolve()
        files = files_in(folder, source)
        if not files:
            raise GMError(
                f"found no {source.name} source files ({', '.join(source.patterns)}) "
                f"in {folder}; point --from at the folder that holds them."
            )
        return folder, files, "from"
    root = data_root(data_dir)
    if root is not None and (files := files_in(root / source.name, source)):
        return root / source.name, files, "data-dir"
    snap = hub_snapshot(source)
    return (snap, files_in(snap, source), "hub-cache") if snap else None


def missing_message(source: Source, data_dir: str | None, why: str = "") -> str:
    where = data_root(data_dir)
    dest = f"{where}/{source.name}" if where else f"DIR/{source.name}"
    reason = f" ({why})" if why else ""
    if source.repo:
        rev = f" --revision {source.revision}" if source.revision else ""
        inc = f" --include '{source.config}/*'" if source.config else ""
        return (
            f"dataset {source.name!r} is not available offline{reason}: on a machine with network run "
            f"`hf download {source.repo} --repo-type dataset{rev}{inc} --local-dir {dest}` (or "
            f"`gm datasets prepare {source.name}` there and copy its cache), then pass "
            f"--data-dir {dest.rsplit('/', 1)[0]} or set GM_DATA_DIR."
        )
    return (
        f"dataset {source.name!r} needs local files{reason}: put {source.howto} in {dest}, "
        f"then pass --data-dir {dest.rsplit('/', 1)[0]} or set GM_DATA_DIR."
    )


def locate(
    name: str, data_dir: str | None, source_dir: str | None = None
) -> tuple[Path, list[Path], str]:
    """(folder, files, how it was found) of ``name``'s source, downloading it when online."""
    source = SOURCES[name]
    found = local(source, data_dir, source_dir)
    if found:
        return found
    if not source.repo:
        raise GMError(missing_message(source, data_dir))
    if offline():
        raise GMError(
            missing_message(
                source, data_dir, "HF_HUB_OFFLINE is set and it is not in the Hub cache"
            )
        )
    try:
        from huggingface_hub import snapshot_download

        snap = Path(
            snapshot_download(
                source.repo,
                repo_type="dataset",
                revision=source.revision,
                cache_dir=hub_cache(),
                allow_patterns=[f"{source.config}/*"] if source.config else None,
            )
        )
    except Exception as err:  # noqa: BLE001 - no network, no such repo, ...: one clear line
        raise GMError(
            missing_message(source, data_dir, f"download failed: {type(err).__name__}")
        ) from None
    files = files_in(snap, source)
    if not files:
        raise GMError(
            f"the Hub download of {source.repo} holds no {', '.join(source.patterns)} files."
        )
    return snap, files, "hub"


def by_split(name: str, folder: Path, files: list[Path]) -> dict[str, list[Path]]:
    """Group source files by the split their path names; an error for a file with none."""
    groups: dict[str, list[Path]] = {}
    for f in files:
        split = split_of(f, folder)
        if split is None:
            raise GMError(
                f"cannot tell which split {f} of {name} belongs to; name it like the Hub "
                f"does (train-00000-of-00001.parquet, test-...)."
            )
        groups.setdefault(split, []).append(f)
    return groups


# What the cached arrays of each source depend on (the cache key); loaders with options
# that change the decoding extend these. Kept here so availability checks stay torch-free.
PREP: dict[str, dict[str, Any]] = {
    "mnist": {"mode": "L", "shape": [1, 28, 28]},
    "cifar10": {"mode": "RGB", "shape": [3, 32, 32]},
    "svhn": {"mode": "RGB", "shape": [3, 32, 32], "splits": ["test", "train"]},
    "celeba": {
        "mode": "RGB",
        "resize": "width to 64, height in proportion (178x218 -> 64x78), bilinear",
        "crop": "centre 64x64",
        "size": 64,
        "shape": [3, 64, 64],
    },
    "binarized-mnist": {"amat": "784 0/1 per line", "shape": [1, 28, 28]},
    "ptb-char": {"sentence": "strip, then ' ' + sentence + '\\n'"},
    "iam-ondb": {"points": "(dx, dy, end of stroke) per point, first offset of a line 0"},
}


def celeba_prep(size: int) -> dict:
    return {
        **PREP["celeba"],
        "size": size,
        "shape": [3, size, size],
        "resize": f"width to {size}, height in proportion (178x218 -> {size}x{round(218 * size / 178)}), bilinear",
        "crop": f"centre {size}x{size}",
    }
