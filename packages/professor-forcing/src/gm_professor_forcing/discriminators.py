"""The paper's discriminator over behaviour sequences.

A bidirectional GRU reads the behaviour (B, L, F); the forward and backward states of
each step are concatenated and fed to a 3-layer ReLU MLP shared across time; the MLP's
outputs are averaged over time and mapped by an affine layer to one logit per sequence,
clipped to [-clip, clip]. Label 1 = teacher-forced, 0 = free-running.
"""

from __future__ import annotations

import torch
from torch import nn


class BiGRUDiscriminator(nn.Module):
    def __init__(
        self, features: int, hidden: int = 512, mlp: int = 512, layers: int = 1, clip: float = 10.0
    ):
        super().__init__()
        self.clip = clip
        self.gru = nn.GRU(features, hidden, layers, batch_first=True, bidirectional=True)
        self.mlp = nn.Sequential(
            nn.Linear(2 * hidden, mlp),
            nn.ReLU(),
            nn.Linear(mlp, mlp),
            nn.ReLU(),
            nn.Linear(mlp, mlp),
            nn.ReLU(),
        )
        self.out = nn.Linear(mlp, 1)

    def forward(self, behaviour: torch.Tensor) -> torch.Tensor:
        """(B, L, F) behaviour -> (B,) logits of "teacher-forced"."""
        states, _ = self.gru(behaviour)
        pooled = self.mlp(states).mean(1)
        return self.out(pooled).squeeze(-1).float().clamp(-self.clip, self.clip)
