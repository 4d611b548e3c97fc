"""Which entries of an example are known, for inpainting. ``True`` marks a known entry.

- ``bottom-half``: images lose their bottom half of rows; vectors their last half of entries.
- ``mar:K``: a K x K square at a uniformly random place per image is unknown (a block of K
  consecutive entries for vectors) -- the square occlusions of the imputation literature.
- ``mcar:P``: every pixel (all its channels; every entry for vectors) is unknown with
  probability P, independently.
"""

from __future__ import annotations

import torch

from gm.errors import GMError

USAGE = "use bottom-half, mar:K (a K x K square, K a whole number) or mcar:P (0 < P < 1)"


def parse(spec: str) -> tuple[str, float]:
    kind, _, arg = spec.partition(":")
    if kind == "bottom-half" and not arg:
        return kind, 0.0
    try:
        value = float(arg)
    except ValueError:
        raise GMError(f"mask {spec!r} is not valid; {USAGE}.") from None
    if kind == "mar" and value >= 1 and value.is_integer():
        return kind, value
    if kind == "mcar" and 0 < value < 1:
        return kind, value
    raise GMError(f"mask {spec!r} is not valid; {USAGE}.")


def make(
    spec: str,
    n: int,
    shape: tuple[int, ...],
    *,
    image: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A (n, *shape) boolean mask of known entries."""
    kind, value = parse(spec)
    known = torch.ones(n, *shape, dtype=torch.bool)
    if image:
        _, height, width = shape
        if kind == "bottom-half":
            known[:, :, height // 2 :] = False
        elif kind == "mar":
            k = int(value)
            if k > min(height, width):
                raise GMError(
                    f"mask {spec!r}: a {k}x{k} square does not fit in {height}x{width} images."
                )
            top = torch.randint(0, height - k + 1, (n,), generator=generator)
            left = torch.randint(0, width - k + 1, (n,), generator=generator)
            for i in range(n):
                known[i, :, top[i] : top[i] + k, left[i] : left[i] + k] = False
        else:
            drop = torch.rand(n, 1, height, width, generator=generator) < value
            known &= ~drop.expand(-1, shape[0], -1, -1)
        return known
    flat = known.view(n, -1)
    d = flat.shape[1]
    if kind == "bottom-half":
        flat[:, d - d // 2 :] = False
    elif kind == "mar":
        k = int(value)
        if k > d:
            raise GMError(f"mask {spec!r}: a block of {k} entries does not fit in {d}.")
        start = torch.randint(0, d - k + 1, (n,), generator=generator)
        for i in range(n):
            flat[i, start[i] : start[i] + k] = False
    else:
        flat &= torch.rand(n, d, generator=generator) >= value
    return known
