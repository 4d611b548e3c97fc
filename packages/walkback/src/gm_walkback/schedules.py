"""Temperature schedules of a walk: which temperature and which per-step parameters
(the "level") each of the K steps uses.

A :class:`Walk` lists the forward (heating) steps t = 1..K; generation runs them in
reverse (cooling) and then any number of extra steps at T = 1, level 0.

- ``doubling`` (Algorithm 1 of the paper): K = ceil(log2 Tmax) + n. The loop body
  heats (T <- 2T) at the end of every step t > n, so steps 1..n+1 run at T = 1 and the
  rest at 2, 4, ..., 2^(H-1) with H = ceil(log2 Tmax) levels in all; the noise variance
  accumulated over the heated steps, sigma^2 (1 + 2 + ... + 2^(H-1)) ~ sigma^2 Tmax,
  reaches the data variance sigma_max^2.
- ``appendix`` (the paper's appendix F): a fixed K (30) with T_t = T_0 factor^t at step
  t = 1..K, T_0 = 1, factor sqrt(2) (1.1 for the 2-D toys); step t has level t-1; cooling
  is the exactly reversed schedule T = factor^N / factor^t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Walk:
    temperatures: tuple[float, ...]  # T_t for t = 1..K, in forward (heating) order
    levels: tuple[int, ...]  # the per-step parameter index of each step

    def __len__(self) -> int:
        return len(self.temperatures)

    def reverse(self, extra_steps: int = 0) -> Walk:
        """The generation order: cool through the walk backwards, then extra steps at T = 1."""
        return Walk(
            self.temperatures[::-1] + (1.0,) * extra_steps, self.levels[::-1] + (0,) * extra_steps
        )

    def prefix(self, steps: int) -> Walk:
        """The first ``steps`` steps (in forward order, the coldest ones)."""
        return Walk(self.temperatures[:steps], self.levels[:steps])


def heat_levels(tmax: float, cap: int) -> int:
    """H = ceil(log2 Tmax), at least 1 and at most ``cap`` (the number of per-step parameter sets)."""
    if not math.isfinite(tmax) or tmax <= 2.0:
        return 1 if math.isfinite(tmax) else cap
    return max(1, min(cap, math.ceil(math.log2(tmax))))


def doubling(heat: int, n: int = 0) -> Walk:
    """Algorithm 1 with ``heat`` = ceil(log2 Tmax) heated levels and ``n`` extra steps at T = 1:
    K = heat + n steps, T = 2^level, the level (per-step parameter index) rising by one after
    every step t > n."""
    temperatures, levels, level = [], [], 0
    for t in range(1, heat + n + 1):  # "for t = 1 to K"
        temperatures.append(2.0**level)
        levels.append(level)
        if t > n:  # "If t > n, increase temperature with T <- 2T"
            level += 1
    return Walk(tuple(temperatures), tuple(levels))


def appendix(steps: int = 30, factor: float = math.sqrt(2)) -> Walk:
    """The appendix schedule: ``steps`` steps with T_t = factor^t, t = 1..steps."""
    levels = tuple(range(steps))
    return Walk(tuple(factor ** (lv + 1) for lv in levels), levels)
