"""The dataset abstraction: each split is one in-memory tensor, batched with ``randperm``.

Images are kept as ``uint8`` (N, C, H, W) and decoded to float in [0, 1] per batch;
vectors are float32 (N, D) (NaN marks a missing value); token sequences are int64 (N, L);
pen strokes are float32 (N, L, 3). A model builds itself from :class:`DataInfo` alone,
which is saved in ``config.json``, so loading a run never needs the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from gm.errors import GMError

MODALITIES = ("vector", "image", "sequence", "strokes")


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about its data to build itself (JSON-able)."""

    name: str
    modality: str
    shape: tuple[int, ...]  # one example's shape
    vocab_size: int | None = None  # token sequences
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. alphabet, column ranges, true NLL
    train_rows: int | None = None  # training examples (set by Dataset; a gallery's size)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DataInfo:
        return cls(
            d["name"],
            d["modality"],
            tuple(d["shape"]),
            d.get("vocab_size"),
            d.get("meta", {}),
            d.get("train_rows"),
        )


class Dataset:
    """Splits held in memory as one tensor each."""

    def __init__(self, info: DataInfo, splits: dict[str, torch.Tensor]):
        if info.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {info.modality!r}")
        for name, t in splits.items():
            if tuple(t.shape[1:]) != tuple(info.shape):
                raise ValueError(
                    f"split {name!r} has examples of shape {tuple(t.shape[1:])}, "
                    f"expected {info.shape}"
                )
        if "train" in splits:  # models sized by their training set read it from the info
            info = replace(info, train_rows=len(splits["train"]))
        self.info = info
        self.splits = splits

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        return (
            f"Dataset({self.info.name!r}, {self.info.modality}, shape={self.info.shape}, {sizes})"
        )

    def raw(self, split: str) -> torch.Tensor:
        if split not in self.splits:
            raise GMError(
                f"dataset {self.info.name!r} has no split {split!r}; "
                f"it has {', '.join(self.splits)}."
            )
        return self.splits[split]

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Stored form -> model form (uint8 images become float in [0, 1])."""
        return x.float().div_(255) if x.dtype == torch.uint8 else x

    def tensor(self, split: str, device: torch.device | str = "cpu") -> torch.Tensor:
        """A whole split, decoded, on ``device``."""
        return self.decode(self.raw(split).to(device))

    def to(self, device: torch.device | str) -> Dataset:
        return Dataset(self.info, {k: v.to(device) for k, v in self.splits.items()})

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        seed: int = 0,
        start_step: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> Iterator[torch.Tensor]:
        """Endless shuffled batches. Batch ``s`` depends only on (seed, s), so resuming at
        ``start_step`` continues exactly. ``batch_size`` is global: rank ``r`` of ``world``
        takes rows ``r::world`` of each global batch."""
        data = self.raw(split)
        n = len(data)
        if batch_size % world:
            raise GMError(
                f"batch_size {batch_size} does not split evenly over {world} processes; "
                f"use a multiple of {world} (--set batch_size=...)."
            )
        if n < batch_size:
            raise GMError(
                f"split {split!r} of {self.info.name!r} has {n} examples, fewer than the "
                f"batch size {batch_size}; lower it with --set batch_size=..."
            )
        per_epoch = n // batch_size
        step = start_step
        while True:
            epoch, index = divmod(step, per_epoch)
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            perm = torch.randperm(n, generator=gen)
            for b in range(index, per_epoch):
                rows = perm[b * batch_size : (b + 1) * batch_size][rank::world]
                yield self.decode(data[rows.to(data.device, non_blocking=True)])
            step += per_epoch - index


def _unreadable() -> tuple[type[BaseException], ...]:
    import csv
    import zlib

    kinds: list[type[BaseException]] = [OSError, ValueError, EOFError, csv.Error, zlib.error]
    try:
        from PIL import Image

        kinds.append(Image.DecompressionBombError)
    except ImportError:
        pass
    return tuple(kinds)


_UNREADABLE = _unreadable()


def load_dataset(
    name: str, data_dir: str | None = None, options: dict[str, Any] | None = None
) -> Dataset:
    """Load a registered dataset by name. ``kind:ARG`` (``images:DIR``, ``array:FILE.csv``)
    loads the dataset ``kind`` with ``path=ARG``; ``options`` are the loader's keyword
    arguments, given as strings on the command line and coerced to its annotations."""
    import inspect
    import os

    from gm import plugins
    from gm.config import coerce

    kind, colon, arg = name.partition(":")
    spec = plugins.get("datasets", kind if colon else name)
    loader = plugins.load(spec)
    params = inspect.signature(loader).parameters
    hints = __import__("typing").get_type_hints(loader)
    kwargs: dict[str, Any] = {}
    if colon:
        kwargs["path"] = arg
    for key, value in (options or {}).items():
        if key not in params or key in ("data_dir", "path"):
            valid = [p for p in params if p not in ("data_dir", "path")]
            raise GMError(
                f"dataset {spec.name!r} has no option {key!r}; "
                f"its options: {', '.join(valid) or 'none'}."
            )
        try:
            kwargs[key] = coerce(value, hints.get(key, str)) if isinstance(value, str) else value
        except (ValueError, TypeError):
            raise GMError(
                f"dataset option {key!r} of {spec.name!r} got {value!r}, "
                f"which is not a valid {hints.get(key, str)}."
            ) from None
    if "data_dir" in params:
        kwargs["data_dir"] = data_dir or os.environ.get("GM_DATA_DIR")
    try:
        data = loader(**kwargs)
    except _UNREADABLE as err:  # bad user files are one line, not a traceback
        raise GMError(
            f"dataset {name!r} could not be loaded ({type(err).__name__}: "
            f"{(str(err).splitlines() or [''])[0][:200]}); check the file or folder."
        ) from None
    if not isinstance(data, Dataset):
        raise TypeError(
            f"dataset loader {spec.target} returned {type(data).__name__}, not gm.data.Dataset"
        )
    return data


# --- the data's own units -------------------------------------------------------------
# A dataset that rescales the user's values (``array:FILE``'s per-column min-max, say)
# records ``info.meta["affine"] = {"scale": s, "shift": b}``: given = model * s + b,
# elementwise, s and b (numbers or nested lists) broadcast over one example's shape. It
# rides in config.json with the rest of DataInfo; ``gm sample`` (.npy) and ``gm evaluate``
# use it to speak in the data's own units.


def affine(info: DataInfo) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(scale, shift) broadcast to one example's shape, or None when the values are as given."""
    a = info.meta.get("affine")
    if not a:
        return None
    scale = torch.as_tensor(a["scale"], dtype=torch.float64).expand(info.shape)
    shift = torch.as_tensor(a.get("shift", 0.0), dtype=torch.float64).expand(info.shape)
    return scale, shift


def to_data_units(samples: Any, info: DataInfo) -> Any:
    """Samples (a tensor, or a tuple of them such as (final, chain frames)) mapped from the
    model's values to the data's own units; anything else passes through. The scale
    broadcasts against the samples' trailing dimensions (a sequence sampled longer than the
    training windows still gets its per-column scale)."""
    if isinstance(samples, tuple):
        return tuple(to_data_units(s, info) for s in samples)
    a = info.meta.get("affine")
    if not a or not torch.is_tensor(samples) or not samples.is_floating_point():
        return samples
    scale = torch.as_tensor(a["scale"], dtype=samples.dtype, device=samples.device)
    shift = torch.as_tensor(a.get("shift", 0.0), dtype=samples.dtype, device=samples.device)
    try:
        if torch.broadcast_shapes(samples.shape, scale.shape, shift.shape) != samples.shape:
            return samples
    except RuntimeError:  # not this data's samples (say, a picture's channels)
        return samples
    return samples * scale + shift


def log_jacobian(info: DataInfo) -> float:
    """log |det d(model)/d(given)| for one example, -sum log|scale|: added to a model-space
    log-density it gives the log-density of the data as given."""
    a = affine(info)
    return 0.0 if a is None else -a[0].abs().log().sum().item()


def in_data_units(
    metrics: dict[str, float], info: DataInfo, density_metrics: dict[str, float]
) -> dict[str, float]:
    """``metrics`` with each log-density of one example (``density_metrics``: name -> +1, or
    -1 for a negated one) moved to the data's own units; ``data_log_jacobian`` says by how
    much. Metrics not listed (bits/dim over 256 levels, distances) are left as they are."""
    lj = log_jacobian(info)
    hit = [k for k in density_metrics if k in metrics]
    if lj == 0.0 or not hit:
        return metrics
    out = {k: v + density_metrics[k] * lj if k in hit else v for k, v in metrics.items()}
    return {**out, "data_log_jacobian": lj}
