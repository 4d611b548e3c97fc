"""The evaluation protocol, written once for every imputer (``gm evaluate``).

The split's examples get masks that depend on (mask spec, seed) alone, so every model is
scored on the same hidden values; each model's ``score_batch`` gives typed per-example
:class:`~gm_imputation.scores.Scores`, summed over the split and turned into metrics.
One ``--steps`` value replaces the trained number of refinement steps; several are a study
(``metric@T`` keys beside the plain keys of the trained number).
"""

from __future__ import annotations

import dataclasses

import torch

from gm import masks
from gm.config import Switch
from gm.data import Dataset
from gm.errors import GMError
from gm_imputation import scores


@dataclasses.dataclass
class EvaluateOptions:
    mask: str = ""  # mask spec to evaluate under (default: the run's training mask)
    samples: int = 10  # rollouts per example, averaged for the bound and the RMSE point estimate
    steps: tuple[int, ...] = ()  # refinement steps (default: the trained number); several = a study
    mask_seed: int = 0  # the masks depend on this seed only, so every model sees the same ones
    batch_size: int = 500
    limit: int = 0  # evaluate the first N examples only (0: all)
    compile: Switch = "auto"  # primary roll-out compiled (gm.fastpath: auto = on CUDA)
    cuda_graph: Switch = "auto"  # primary roll-out as a CUDA graph (auto = on CUDA)


def draw_masks(trainer, n: int, spec: str, seed: int) -> torch.Tensor:
    """Evaluation masks ``(n, D)``, True = hidden: a function of (spec, seed) alone."""
    gen = torch.Generator().manual_seed(seed)
    missing = trainer.parse_mask(spec).sample(
        n, trainer.shape, modality=trainer.info.modality, generator=gen, device=trainer.device
    )
    return missing.reshape(n, trainer.dim)


def split_totals(
    trainer,
    x0: torch.Tensor,
    known: torch.Tensor,
    target: torch.Tensor,
    steps: int,
    samples: int,
    batch_size: int,
    **fast: Switch,
) -> list[scores.Totals]:
    """Each reported pass's :data:`~gm_imputation.scores.Totals` over all rows, in batches."""
    totals: list[scores.Totals] = []
    for a in range(0, len(x0), batch_size):
        sl = slice(a, a + batch_size)
        passes = trainer.score_batch(x0[sl], known[sl], target[sl], steps, samples, **fast)
        totals += [{} for _ in range(len(passes) - len(totals))]
        for total, part in zip(totals, passes, strict=True):
            scores.add(total, part)
    return totals


def report(trainer, passes: list[scores.Totals], n_target: float, n: int, drop: float):
    """Metrics of the last pass; for a model that reports its best pass (the VAE, whose
    choice looks at the hidden values: ``oracular``), the best one's, and ``final_*``."""
    if not passes:
        return {}
    per = [scores.metrics(t, n_target, n, drop) for t in passes]
    if not trainer.reports_best_pass:
        return per[-1]
    best = min(range(len(per)), key=lambda i: per[i]["nll_per_value"])
    final = {f"final_{k}": v for k, v in per[-1].items()}
    return {**per[best], **final, "best_step": float(best + 1), "oracular": 1.0}


@torch.no_grad()
def evaluate(trainer, data: Dataset, split: str, options: EvaluateOptions) -> dict[str, float]:
    """``trainer`` scored on ``split`` of ``data`` under ``options`` (see the module doc)."""
    if tuple(data.info.shape) != trainer.shape:
        raise GMError(
            f"this run was trained on examples of shape {trainer.shape}; "
            f"{data.info.name!r} has shape {tuple(data.info.shape)}."
        )
    if options.samples < 1 or options.batch_size < 1:
        raise GMError("--samples and --batch-size must be at least 1.")
    if any(t < 0 for t in options.steps):
        raise GMError("--steps must be non-negative numbers of refinement steps.")
    trainer.train(False)
    x = trainer.unit(data.tensor(split, trainer.device))
    if options.limit:
        x = x[: options.limit]
    spec = options.mask or trainer.config.mask
    x0, known, target = masks.split_known(x, draw_masks(trainer, len(x), spec, options.mask_seed))
    n_target = float(target.sum())
    if n_target == 0:
        raise GMError(
            f"the mask {spec!r} hides no observed value of {data.info.name!r}; choose a mask "
            "that drops something."
        )
    common = {
        "n_examples": float(len(x)),
        "n_missing": n_target,
        "drop_rate": n_target / float((~torch.isnan(x)).sum()),
    }
    floor = trainer.floor(x0, target)
    if floor is not None:
        common["floor_per_value"] = float(floor.sum()) / n_target
    study = len(options.steps) > 1
    main = options.steps[0] if len(options.steps) == 1 else trainer.refine_steps
    fast = {"compile": options.compile, "cuda_graph": options.cuda_graph}
    out: dict[str, float] = {}
    for steps in dict.fromkeys((main, *options.steps)):
        passes = split_totals(
            trainer, x0, known, target, steps, options.samples, options.batch_size, **fast
        )
        metrics = report(trainer, passes, n_target, len(x), common["drop_rate"])
        if steps == main:
            out.update({**metrics, "steps": float(steps)})
        if study and steps in options.steps:
            out.update({f"{k}@{steps}": v for k, v in metrics.items()})
    return {**out, **common}
