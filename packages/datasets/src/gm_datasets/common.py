"""Shared by the loaders: numpy arrays -> a :class:`gm.data.Dataset`, with optional labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gm.data import DataInfo, Dataset
from gm.plugins import PluginWarning


class DataWarning(PluginWarning):
    """Something in the user's data that gm worked around (the CLI prints one
    ``gm: warning:`` line for it, as for every PluginWarning)."""


class LabelledDataset(Dataset):
    """A :class:`gm.data.Dataset` that also carries integer class labels per split.

    ``labels[split]`` is an int64 tensor aligned with ``raw(split)`` (evaluation code uses
    it to train a small feature classifier); datasets without labels have ``labels == {}``.
    """

    def __init__(
        self,
        info: DataInfo,
        splits: dict[str, torch.Tensor],
        labels: dict[str, torch.Tensor] | None = None,
    ):
        super().__init__(info, splits)
        self.labels = dict(labels or {})
        for name, y in self.labels.items():
            if len(y) != len(splits[name]):
                raise ValueError(
                    f"split {name!r}: {len(y)} labels for {len(splits[name])} examples"
                )

    def to(self, device: torch.device | str) -> LabelledDataset:
        return LabelledDataset(
            self.info, {k: v.to(device) for k, v in self.splits.items()}, self.labels
        )


WHERE = {
    "from": "--from",
    "data-dir": "the data dir",
    "hub-cache": "the Hub cache",
    "hub": "a Hub download",
}


def provenance(meta: dict[str, Any]) -> dict[str, Any]:
    """Where a cached dataset came from, for ``info.meta["provenance"]`` (saved with a run,
    printed by ``gm datasets prepare``), from the metadata :mod:`gm_datasets.cache` returns."""
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


def describe(prov: dict[str, Any]) -> str:
    """``provenance`` in words: 'the data dir /d/mnist (2 files, 1.2 MB), decoded now'."""
    size = prov.get("bytes")
    amount = f"{size / 1e6:.1f} MB" if size and size >= 1e5 else f"{size or 0:,} bytes"
    files = prov.get("files")
    what = f" ({files} file{'s' if files != 1 else ''}, {amount})" if files is not None else ""
    how = "decoded now" if prov.get("decoded_now") else "read from the cache"
    if prov.get("source_found_now") is False:
        how += " (its source files are not found now)"
    return f"{WHERE.get(prov.get('found'), prov.get('found') or 'a file')} {prov.get('folder')}{what}, {how}"


def make_dataset(
    name: str,
    modality: str,
    arrays: dict[str, np.ndarray],
    *,
    labels: dict[str, np.ndarray] | None = None,
    vocab_size: int | None = None,
    meta: dict[str, Any] | None = None,
) -> LabelledDataset:
    """Wrap per-split arrays (already in gm's storage dtype) as a dataset without copying."""
    first = next(iter(arrays.values()))
    info = DataInfo(
        name, modality, tuple(int(d) for d in first.shape[1:]), vocab_size, dict(meta or {})
    )
    splits = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    ys = {k: torch.from_numpy(np.asarray(v, dtype=np.int64)) for k, v in (labels or {}).items()}
    return LabelledDataset(info, splits, ys)
