"""The paper's recipes, selected by one config key: ``--set recipe=NAME``.

- ``appendix``: the image recipe of the paper's appendix as it is written. Appendix F:
  K = 30 walk-away steps heated as T_t = sqrt(2)^t and N = 30 annealing steps (the
  reversed schedule); Tables 2-5: "We use reconstruction error as per-step loss
  function" (``loss="reconstruction"``) and the table's architecture for the dataset.
  For the 2-D toys (appendix C, Figs. 7-8): 30 steps heated by 1.1 per step, the
  walk-back loss, per-step parameters (appendix I).
- ``algorithm1``: Algorithm 1 as written: the doubling schedule K = ceil(log2 Tmax) + n,
  the walk-back log-likelihood per step, online updates; the same architecture.
- ``custom``: the recipe sets nothing; every field is what the config says.

A recipe is registered with the walkback model (``ModelSpec.recipes``) as a function of the
data and the device (:func:`algorithm1`, :func:`appendix`); ``gm.build`` applies the fields
it sets over the dataset's defaults and under ``--config`` and ``--set``,
so a field given with ``--set`` keeps the given value, and ``--show-config`` shows the
result.

**Training on a device other than CUDA** (``cpu=True``) the image recipes run on the CPU
setup, :data:`CPU_IMAGE`: the 2 x 256 MLP with batch norm (the appendix E.1 likelihood net,
narrowed; Table 2's conv net makes about one update a second on a CPU) inside the skip
operator (full-covariance G, a learned gain per axis), Adam at 1e-3 and sampling from the
weights' moving average (each measured better than the paper's operator, 1e-4 and the
trained weights at equal updates: docs/results/walkback.md), so
``gm train walkback --dataset mnist-5k`` gives digits in minutes there. The table's conv
fields stay filled in, so ``--set network=conv --set lr=1e-4 --set skip=none --set
noise=network --set ema=0`` is the paper's setup on any machine.
"""

from __future__ import annotations

import math
from typing import Any

RECIPES = ("algorithm1", "appendix", "custom")


# the paper's optimiser and operator noise for images (Tables 2-5: Adam, lr 0.0001; the
# variance from F); CPU_IMAGE replaces the net and the rate on a machine without CUDA
# The CPU setup's operator is the skip (gm_walkback.operators): the paper's mean
# (1 - alpha) s + alpha F(s) leaves a 256-wide MLP to carry every pixel, which it cannot
# (7.96 bits/dim at 1,000 updates, worse than a Gaussian's 5.83); as a residual on the heated
# chain of the data's full-covariance Gaussian it starts near the Gaussian and goes below it
# (5.72 at 2,000 updates, c = 1/8, first 30 test images, IS M = 50; docs/results/walkback.md), with a T = 1 noise bounded by G's
# and heating that per-step parameters cannot cancel (noise="learned": one gain per axis).
# The GPU setup stays the paper's (Table 2's conv net, F's variance head): not measured with
# the skip on a GPU; --set skip=full --set noise=learned asks for it there.
PAPER_IMAGE = {"lr": 1e-4, "noise": "network", "max_std": 0.0, "ema": 0.0, "skip": "none"}
CPU_IMAGE = {
    "network": "mlp",
    "hidden": 256,
    "depth": 2,
    "norm": "batch",
    "lr": 1e-3,
    "ema": 0.999,
    "skip": "full",
    "noise": "learned",
}


def architecture(name: str, shape: tuple[int, ...]) -> dict[str, Any]:
    """The network of the paper's table for a dataset (by name, then by shape)."""
    if len(shape) != 3:
        return {}
    if shape == (1, 28, 28):  # Table 2 (MNIST): BN on the convs, LN on the FC layers
        return {
            "network": "conv",
            "conv_channels": (16, 32),
            "fc_layers": 5,
            "fc_width": 1024,
            "norm": "batch",
            "fc_norm": "layer",
            "fc_activation": "leaky",
        }
    if shape[1] * shape[2] <= 16 * 16:  # 8x8 digits: the paper's MNIST likelihood MLP (E.1)
        return {"network": "mlp", "hidden": 1200, "depth": 2, "norm": "batch"}
    # Tables 3 (CelebA), 4 (CIFAR), 5 (SVHN): batch norm and ReLU everywhere; CIFAR's
    # fully connected layers are 2048 wide (Table 4: 4096 * 2048), the others 1024. (E.2's
    # prose says layer norm on the FC layers; the tables, which list every layer, win.)
    width = 2048 if "cifar" in name.lower() else 1024
    return {
        "network": "conv",
        "conv_channels": (64, 128, 256),
        "fc_layers": 5,
        "fc_width": width,
        "norm": "batch",
        "fc_norm": "batch",
        "fc_activation": "relu",
    }


def settings(recipe: str, name: str, shape: tuple[int, ...], cpu: bool = False) -> dict[str, Any]:
    """The fields a recipe sets for a dataset (``cpu``: on a machine without CUDA)."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, not {recipe!r}")
    if recipe == "custom":
        return {}
    if shape == (2,):  # the 2-D toys: appendix C
        if recipe == "appendix":
            return {
                "schedule": "appendix",
                "walk_steps": 30,
                "heat_factor": 1.1,
                "loss": "walkback",
            }
        return {"schedule": "doubling", "loss": "walkback"}
    out = architecture(name, shape)
    if len(shape) == 3:
        out.update(PAPER_IMAGE)
        if cpu and out["network"] == "conv":
            out.update(CPU_IMAGE)
    if recipe == "appendix":
        out.update(
            schedule="appendix", walk_steps=30, heat_factor=math.sqrt(2), loss="reconstruction"
        )
        if len(shape) == 3:  # the reconstruction loss scores F itself as the reconstruction,
            out.update(skip="none", noise="network")  # which the skip's residual F is not
    else:
        out.update(schedule="doubling", loss="walkback")
    return out


# --- the recipes as gm-walkback registers them (ModelSpec.recipes) ------------------------
# image minibatches without CUDA: 374 s for mnist-5k with the skip on one thread of the
# shared 2-core machine (8.1 minibatches/s, load average about 2)
CPU_STEPS = 3000


def for_device(recipe: str, info, device) -> dict[str, Any]:
    """The defaults ``recipe`` gives this data on this device (``device.type != "cuda"``:
    the CPU setup and CPU_STEPS minibatches for images), applied by ``gm.build`` under
    ``--config`` and ``--set``."""
    cpu = device.type != "cuda"
    out = settings(recipe, info.name, tuple(info.shape), cpu)
    if cpu and len(info.shape) == 3 and recipe != "custom":
        out["steps"] = CPU_STEPS
    return out


def algorithm1(info, device) -> dict[str, Any]:
    """Algorithm 1 as written (doubling schedule, walk-back loss) with the table's network."""
    return for_device("algorithm1", info, device)


def appendix(info, device) -> dict[str, Any]:
    """Appendix C/F as written (K = 30, fixed heating; images: reconstruction loss)."""
    return for_device("appendix", info, device)
