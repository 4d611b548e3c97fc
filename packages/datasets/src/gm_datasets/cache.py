"""The decoded-dataset cache: one folder of fixed-shape arrays per source + preprocessing.

A dataset is decoded once (PNG/JPEG bytes, ``.amat`` text, XML strokes, ...) into plain
numpy arrays, saved as ``.npy`` files in::

    $GM_CACHE_DIR/<name>-v<version>-<hash of preprocessing>-<hash of the source files>/
        meta.json            name, version, preprocessing, the source and its files, arrays
        <array>.npy          e.g. train.npy (uint8 N,C,H,W), train.labels.npy (int64 N)

The key holds the source's identity (every file's name, size and modification time), so
a copy decoded from other files is never served under the same name: a 64-image copy and
an 80-image copy of ``mnist`` get two entries. When no source file can be found locally
(the files were deleted, or the cache was copied to an offline machine), the newest entry
with the same preprocessing is used, and its ``meta.json`` says where it came from.

``meta.json`` is written last, and the folder is built under a temporary name and renamed
into place, so a half-written entry is never read. Folders and files get the ordinary
permissions of the user's umask (a group can share a cache). This module imports neither
torch nor ``datasets`` (``gm list-datasets`` uses :func:`is_cached`); numpy is imported
when arrays are read or written.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

FORMAT = 2  # layout of a cache folder; bump if it changes (2: the source's identity in the key)
META = "meta.json"


def cache_root() -> Path:
    """``$GM_CACHE_DIR``, else ``~/.cache/gm/datasets``."""
    env = os.environ.get("GM_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gm" / "datasets"


def key(preprocessing: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able preprocessing description."""
    blob = json.dumps({"format": FORMAT, **preprocessing}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def identity(files: Sequence[Path], root: Path | None = None) -> dict[str, Any]:
    """What a source is: its files' names (below ``root``), sizes and modification times.

    Size + mtime, not a content hash: hashing gigabytes of CelebA on every load would cost
    more than decoding a small dataset; a copied or edited file gets a new mtime, so at
    worst the same content is decoded once more, never other content served."""
    h = hashlib.sha256()
    total = 0
    for f in sorted(Path(p) for p in files):
        st = f.stat()
        total += st.st_size
        name = f.relative_to(root) if root is not None and f.is_relative_to(root) else f.name
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"files": len(files), "bytes": total, "hash": h.hexdigest()[:12]}


def entry(name: str, version: int, preprocessing: dict[str, Any], source: dict[str, Any]) -> Path:
    """The cache folder of ``name`` decoded from ``source`` (an :func:`identity`) with
    ``preprocessing`` (it may not exist yet)."""
    return cache_root() / f"{name}-v{version}-{key(preprocessing)}-{source['hash']}"


def latest(name: str, version: int, preprocessing: dict[str, Any]) -> Path | None:
    """The newest complete entry of ``name`` with this preprocessing, whatever its source."""
    root = cache_root()
    if not root.is_dir():
        return None
    found = [
        p for p in root.glob(f"{name}-v{version}-{key(preprocessing)}-*") if (p / META).is_file()
    ]
    return max(found, key=lambda p: (p / META).stat().st_mtime_ns) if found else None


def is_cached(name: str, version: int, preprocessing: dict[str, Any]) -> bool:
    return latest(name, version, preprocessing) is not None


def read(folder: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(arrays by name, metadata) of a complete cache folder; None when it is damaged
    (a deleted or truncated array file), so the caller decodes again."""
    import numpy as np

    try:
        meta = json.loads((folder / META).read_text())
        arrays = {a: np.load(folder / f"{a}.npy", allow_pickle=False) for a in meta["arrays"]}
    except (OSError, ValueError, KeyError, EOFError):
        return None
    for a, described in meta["arrays"].items():
        if list(arrays[a].shape) != described["shape"]:
            return None
    return arrays, {**meta, "cache": {"folder": str(folder), "hit": True}}


def _fresh_dir(parent: Path, stem: str) -> Path:
    """A new empty folder beside the entry; ``mkdir`` honours the umask (``mkdtemp`` would
    make it 0700, and the rename would keep that)."""
    while True:
        tmp = parent / f".{stem}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue


def write(folder: Path, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
    """Save ``arrays`` and ``meta`` as a complete cache folder (atomically replaced)."""
    import numpy as np

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_dir(folder.parent, folder.name)
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
        try:
            tmp.rename(folder)
        except OSError:  # an entry is there (a damaged one, or another rank's just now):
            # move it aside whole before ours goes in, so no reader meets half a folder and
            # no writer deletes a folder another process is still renaming into place
            aside = _fresh_dir(folder.parent, f"{folder.name}.old")
            folder.rename(aside)
            tmp.rename(folder)
            shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def cached(
    name: str,
    version: int,
    preprocessing: dict[str, Any],
    build: Callable[[], tuple[dict[str, Any], dict[str, Any]]],
    *,
    source: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read the entry of ``source`` (an :func:`identity`), or ``build()`` -> (arrays,
    description of the source), store and return it. The returned metadata's ``cache``
    says which folder and whether it was read (``hit``) or decoded now."""
    folder = entry(name, version, preprocessing, source)
    if (folder / META).is_file() and (got := read(folder)) is not None:
        return got
    arrays, described = build()
    write(
        folder,
        arrays,
        {
            "name": name,
            "version": version,
            "preprocessing": preprocessing,
            "source": {**described, "identity": source},
        },
    )
    meta = json.loads((folder / META).read_text())
    return arrays, {**meta, "cache": {"folder": str(folder), "hit": False}}


def in_use(
    name: str, data_dir: str | None, preprocessing: dict[str, Any] | None = None
) -> Path | None:
    """The complete entry a load of ``name`` would read now, decoding nothing: the one of
    the local source files, or with none found, the newest (None: it would decode)."""
    from gm.errors import GMError
    from gm_datasets.sources import PREP, SOURCES, local

    source = SOURCES[name]
    prep = PREP[name] if preprocessing is None else preprocessing
    try:
        found = local(source, data_dir)
    except (GMError, OSError):
        found = None
    if found is None:
        return latest(name, source.version, prep)
    folder = entry(name, source.version, prep, identity(found[1], found[0]))
    return folder if (folder / META).is_file() else None


WHERE: dict[str | None, str] = {
    "from": "--from",
    "data-dir": "the data dir",
    "hub-cache": "the Hub cache",
    "hub": "a Hub download",
}


def provenance(meta: dict[str, Any]) -> dict[str, Any]:
    """Where a cached dataset came from, for ``info.meta["provenance"]`` (saved with a run,
    printed by ``gm datasets prepare``), from the metadata this module returns."""
    src, where = meta.get("source", {}), meta.get("cache", {})
    ident = src.get("identity", {})
    return {
        "found": src.get("found"),
        "folder": src.get("folder"),
        "files": ident.get("files"),
        "bytes": ident.get("bytes"),
        "identity": ident.get("hash"),
        "cache": where.get("folder"),
        "decoded_now": not where.get("hit", False),
        **({"source_found_now": False} if where.get("source_found") is False else {}),
    }


def source_words(prov: dict[str, Any]) -> str:
    """Where a :func:`provenance` came from: 'the data dir /d/mnist (2 files, 1.2 MB)'."""
    size = prov.get("bytes")
    amount = f"{size / 1e6:.1f} MB" if size and size >= 1e5 else f"{size or 0:,} bytes"
    files = prov.get("files")
    what = f" ({files} file{'s' if files != 1 else ''}, {amount})" if files is not None else ""
    return (
        f"{WHERE.get(prov.get('found'), prov.get('found') or 'a file')} {prov.get('folder')}{what}"
    )


def summary(meta: dict[str, Any]) -> str:
    """What a cache entry holds, from its ``meta.json`` alone: '64 examples (train 54,
    test 10), decoded 2026-12-06 from the data dir /d/mnist (2 files, 1.2 MB)'."""
    counts = {
        a: d["shape"][0] for a, d in meta.get("arrays", {}).items() if "." not in a and d["shape"]
    }
    order = ["train", "valid", "test"]  # the usual order, whatever meta.json's is
    ranked = sorted(
        counts.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else 3, kv[0])
    )
    splits = ", ".join(f"{k} {v:,}" for k, v in ranked)
    created = str(meta.get("created", "?"))[:10]
    return (
        f"{sum(counts.values()):,} examples ({splits}), decoded {created} from "
        f"{source_words(provenance(meta))}"
    )


def describe(
    name: str, data_dir: str | None, preprocessing: dict[str, Any] | None = None
) -> str | None:
    """:func:`summary` of the entry :func:`in_use` finds, with its folder; None if none."""
    folder = in_use(name, data_dir, preprocessing)
    if folder is None:
        return None
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError):
        return None
    return f"{summary(meta)}; cached in {folder}"


def cached_source(
    name: str,
    build: Callable[[Path, list[Path], str], tuple[dict[str, Any], dict[str, Any]]],
    *,
    data_dir: str | None,
    source_dir: str | None,
    preprocessing: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`cached` for a dataset of :data:`gm_datasets.sources.SOURCES`: its local files
    (``--from``, the data dir, the Hub cache) key the entry; with none, the newest entry of
    this preprocessing (default: the dataset's own, ``PREP[name]``); with none either, the
    Hub (or the one-line error saying what to get). ``build(folder, files, where)`` decodes
    the files found."""
    from gm_datasets.sources import PREP, SOURCES, local, locate

    version = SOURCES[name].version
    preprocessing = PREP[name] if preprocessing is None else preprocessing

    found = local(SOURCES[name], data_dir, source_dir)
    if found is None:
        old = latest(name, version, preprocessing)
        if old is not None and (got := read(old)) is not None:
            got[1]["cache"]["source_found"] = False
            return _said(name, got)
        found = locate(name, data_dir, source_dir)
    folder, files, where = found
    return _said(
        name,
        cached(
            name,
            version,
            preprocessing,
            lambda: build(folder, files, where),
            source=identity(files, folder),
        ),
    )


def _said(
    name: str, got: tuple[dict[str, Any], dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A copy read from the cache says what it is (the progress line of gm train)."""
    from gm import progress

    meta = got[1]
    if meta["cache"]["hit"]:
        progress.line(f"gm: dataset {name} from the cache: {summary(meta)}")
    return got
