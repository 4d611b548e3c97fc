"""Shared by the loaders: numpy arrays -> a :class:`gm.data.Dataset`, with optional labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gm.data import DataInfo, Dataset
from gm.plugins import PluginWarning
from gm_datasets.cache import WHERE, provenance, source_words

__all__ = ["WHERE", "DataWarning", "LabelledDataset", "describe", "make_dataset", "provenance"]


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


def describe(prov: dict[str, Any]) -> str:
    """``provenance`` in words: 'the data dir /d/mnist (2 files, 1.2 MB), decoded now'."""
    how = "decoded now" if prov.get("decoded_now") else "read from the cache"
    if prov.get("source_found_now") is False:
        how += " (its source files are not found now)"
    return f"{source_words(prov)}, {how}"


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
