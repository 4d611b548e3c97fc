"""``gaussian``: a full-covariance Gaussian fitted by maximum likelihood with Adam.

The trivial baseline every results table prints beside the real models, and the
smallest real model the engine's own tests train.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from gm.config import TrainConfig
from gm.data import DataInfo, Dataset
from gm.errors import GMError
from gm.trainer import Trainer


@dataclasses.dataclass
class GaussianConfig(TrainConfig):
    steps: int = 1000
    lr: float = 0.02
    log_every: int = 50
    checkpoint_every: int = 1000


class GaussianDensity(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(dim))
        self.raw_scale = nn.Parameter(torch.zeros(dim))  # log of the Cholesky diagonal
        self.lower = nn.Parameter(torch.zeros(dim, dim))  # strictly lower part

    def distribution(self, validate: bool = True) -> torch.distributions.MultivariateNormal:
        tril = torch.tril(self.lower, -1) + torch.diag(self.raw_scale.exp())
        return torch.distributions.MultivariateNormal(
            self.mean, scale_tril=tril, validate_args=validate
        )


class GaussianTrainer(Trainer):
    Config = GaussianConfig
    name = "gaussian"
    DENSITY_METRICS = {"log_likelihood": 1.0, "nll": -1.0}

    def __init__(self, config: GaussianConfig, info: DataInfo, device="cpu"):
        super().__init__(config, info, device)
        if info.modality not in ("vector", "image"):
            raise GMError(f"the gaussian model needs vector or image data, not {info.modality}.")
        self.dim = math.prod(info.shape)
        self.density = GaussianDensity(self.dim).to(self.device)
        self.opt = self.adam(self.density.parameters())

    def modules(self):
        return {"density": self.density}

    def optimizers(self):
        return {"density": self.opt}

    def training_step(self, batch):
        # unvalidated: the checks read the device every step; a NaN stops the run at the
        # next log row instead (the engine then says whether the data hold NaN)
        x = batch.reshape(len(batch), -1).float()
        nll = -self.density.distribution(validate=False).log_prob(x).mean()
        self.optimizer_step(nll, self.opt)
        return {"loss": nll.detach()}

    def sample(self, n, options):
        return self.density.distribution().sample((n,)).reshape(n, *self.info.shape)

    def evaluate(self, data: Dataset, split: str, options) -> dict[str, float]:
        x = data.tensor(split, self.device).reshape(-1, self.dim).float()
        ll = self.density.distribution().log_prob(x).mean().item()
        return {"log_likelihood": ll, "nll": -ll}
