"""The paper's discriminator over behaviour sequences.

A bidirectional GRU reads the behaviour (B, L, F); the forward and backward states of
each step are concatenated and fed to a 3-layer ReLU MLP shared across time; the MLP's
outputs are averaged over time and mapped by an affine layer to one logit per sequence,
saturated softly into (-clip, clip) as ``clip * tanh(l / clip)``. The thesis clips to
[-10, 10]; a hard clamp has zero gradient outside it, so a D whose logits pass 10 never
learns again (and passes G no gradient): the soft form keeps a gradient everywhere and is
the identity near 0. Label 1 = teacher-forced, 0 = free-running.

With ``fused`` (a :data:`gm.fastpath.Switch`, path ``fused_rnn``; ``"auto"``: on CPU) the
bidirectional GRU runs through :class:`gm_professor_forcing.fused.GRULayer` (the same
parameters, the same function): both directions advance together and the backward forms
weight gradients once, after the loop, instead of ``nn.GRU``'s CPU backward replaying
autograd step by step. Under ``torch.compile`` it is ``nn.GRU``, which dynamo traces.
"""

from __future__ import annotations

import torch
from torch import nn

from gm import fastpath
from gm_professor_forcing.fused import GRULayer


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
        self.fused: fastpath.Switch = "auto"

    @classmethod
    def build(cls, config, info, features: int) -> BiGRUDiscriminator:
        """The registry's ``bigru`` from a professor-forcing config's ``d_*`` fields."""
        d = cls(features, config.d_hidden, config.d_mlp, config.d_layers)
        d.fused = config.fused_discriminator
        return d

    _weights = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

    def forward(self, behaviour: torch.Tensor) -> torch.Tensor:
        """(B, L, F) behaviour -> (B,) logits of "teacher-forced"."""
        fused = fastpath.use(self.fused, "fused_rnn", behaviour.device)
        if fused and not torch.compiler.is_compiling():
            states = behaviour
            for layer in range(self.gru.num_layers):
                names = [f"{w}_l{layer}{s}" for s in ("", "_reverse") for w in self._weights]
                params = [getattr(self.gru, name) for name in names]
                states = GRULayer.apply(states, torch.is_grad_enabled(), *params)
        else:
            states, _ = self.gru(behaviour)
        pooled = self.mlp(states).mean(1)
        logit = self.out(pooled).squeeze(-1).float()
        return self.clip * torch.tanh(logit / self.clip) if self.clip else logit
