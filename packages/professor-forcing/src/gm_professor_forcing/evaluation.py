"""What ``gm evaluate`` measures for a sequence model.

- ``nll``: nats per token (per step for real-valued data) of the split under teacher forcing;
  ``bits_per_token`` (and ``bits_per_character`` for text, the same number); ``nll_per_sequence``
  in nats per row (sequential MNIST: nats per image). By default each row is scored from a
  fresh state (``carry_state`` = 0: per-window, like per-line BPC but with fixed windows);
  ``--carry-state`` treats the rows as consecutive windows of one stream and carries the
  hidden state across them (``carry_state`` = 1: continuous-stream BPC).
- The paper's hidden-state study: teacher-forced states on real data against free-running
  states far past the training length (the last ``L`` steps of a ``horizon``-step run):
  ``centroid_distance`` (between the clouds' means) and ``nn_distance`` (mean distance from a
  free-running state to its nearest teacher-forced state). Beside them, the same two numbers
  for the first ``L`` free-running steps (``*_train_length``) and the noise floor: held-out
  teacher-forced states against the reference (``*_floor``), with equal cloud sizes.
- For tokens, ``js_2gram`` / ``js_3gram``: Jensen-Shannon divergence (bits) between the
  n-gram frequencies of the free-running draws past the training length and of the split,
  with the floor of as many training tokens against the split (``*_floor``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from gm.data import Dataset
from gm.errors import GMError

if TYPE_CHECKING:
    from gm_professor_forcing.trainers import EvaluateOptions, SequenceTrainer


@torch.no_grad()
def sequence_nll(
    trainer: SequenceTrainer, x: torch.Tensor, batch_size: int, carry_state: bool
) -> float:
    """Total nats of the rows of x (prepared), scored per row or as consecutive windows."""
    gen = trainer.generator
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    if not carry_state:
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            total += gen.nll(gen.teacher_forced(xb), xb).double().sum()
        return total.item()
    streams = max(1, min(batch_size, len(x)))
    per = len(x) // streams
    rows = torch.arange(streams * per, device=x.device).view(streams, per)  # stream s: rows s*per..
    state = prev = None
    for j in range(per):
        xb = x[rows[:, j]]
        behaviour, state = gen.teacher_forced_with_state(xb, state, prev)
        total += gen.nll(behaviour, xb).double().sum()
        prev = xb[:, -1]
    if streams * per < len(x):
        rest = x[streams * per :]
        total += gen.nll(gen.teacher_forced(rest), rest).double().sum()
    return total.item()


def centroid_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.mean(0) - b.mean(0)).norm().item()


def nn_distance(query: torch.Tensor, reference: torch.Tensor, chunk: int = 1024) -> float:
    """Mean over query points of the distance to the nearest reference point."""
    best = [
        torch.cdist(query[i : i + chunk], reference).min(1).values
        for i in range(0, len(query), chunk)
    ]
    return torch.cat(best).mean().item()


def _subsample(points: torch.Tensor, n: int) -> torch.Tensor:
    return (
        points
        if len(points) <= n
        else points[torch.randperm(len(points), device=points.device)[:n]]
    )


def ngram_js(a: torch.Tensor, b: torch.Tensor, n: int, vocab: int) -> float:
    """Jensen-Shannon divergence in bits between the n-gram frequencies of token rows a and b."""

    def ids(rows: torch.Tensor) -> torch.Tensor:
        w = rows.unfold(1, n, 1)
        return (w * (vocab ** torch.arange(n, device=rows.device))).sum(-1).flatten()

    ia, ib = ids(a), ids(b)
    uniq, inverse = torch.unique(torch.cat([ia, ib]), return_inverse=True)
    p = torch.bincount(inverse[: len(ia)], minlength=len(uniq)).double()
    q = torch.bincount(inverse[len(ia) :], minlength=len(uniq)).double()
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(u: torch.Tensor) -> torch.Tensor:
        keep = u > 0
        return (u[keep] * (u[keep] / m[keep]).log2()).sum()

    return (0.5 * kl(p) + 0.5 * kl(q)).item()


@torch.no_grad()
def hidden_state_study(trainer: SequenceTrainer, x: torch.Tensor, options: EvaluateOptions):
    """The paper's teacher-forced vs free-running hidden-state comparison; returns
    (metrics, clouds) with clouds = (reference states, free-running states far out)."""
    gen, length = trainer.generator, trainer.length
    horizon = options.horizon or 4 * length
    if horizon < length:
        raise GMError(f"--horizon must be at least the training length {length}, got {horizon}.")
    half = min(options.n, len(x)) // 2
    if half < 1:
        raise GMError("the hidden-state study needs at least 2 sequences (--n).")
    x = x[torch.randperm(len(x), device=x.device)[: 2 * half]]
    states = torch.cat(
        [
            gen.teacher_forced(x[i : i + options.batch_size]).hidden.float()
            for i in range(0, len(x), options.batch_size)
        ]
    )
    width = states.shape[-1]
    reference = _subsample(states[:half].reshape(-1, width), options.points)
    held_out = _subsample(states[half:].reshape(-1, width), options.points)
    samples, free = gen.free_running(half, horizon, options.temperature)
    far = _subsample(free.hidden[:, horizon - length :].float().reshape(-1, width), options.points)
    near = _subsample(free.hidden[:, :length].float().reshape(-1, width), options.points)
    metrics = {
        "horizon": float(horizon),
        "centroid_distance": centroid_distance(far, reference),
        "nn_distance": nn_distance(far, reference),
        "centroid_distance_train_length": centroid_distance(near, reference),
        "nn_distance_train_length": nn_distance(near, reference),
        "centroid_distance_floor": centroid_distance(held_out, reference),
        "nn_distance_floor": nn_distance(held_out, reference),
    }
    return metrics, samples, (reference, far)


def projection_picture(reference: torch.Tensor, free: torch.Tensor, path: str) -> None:
    """Both clouds on the first two principal axes of the teacher-forced cloud (PCA, not the
    paper's t-SNE: deterministic and cheap): teacher-forced grey, free-running blue."""
    from gm import pictures

    mean = reference.mean(0)
    _, _, v = torch.linalg.svd(reference - mean, full_matrices=False)
    axes = v[:2].T
    img = pictures.scatter((free - mean) @ axes, reference=(reference - mean) @ axes)
    img.save(path)


def evaluate(
    trainer: SequenceTrainer, data: Dataset, split: str, options: EvaluateOptions
) -> dict[str, float]:
    info = trainer.info
    if tuple(data.info.shape[1:]) != tuple(info.shape[1:]) or data.info.modality != info.modality:
        raise GMError(
            f"{data.info.name!r} ({data.info.modality}, {data.info.shape}) does not match "
            f"the data this model was trained on ({info.modality}, {info.shape})."
        )
    if info.vocab_size and (data.info.vocab_size or 0) > info.vocab_size:
        raise GMError(
            f"{data.info.name!r} has {data.info.vocab_size} symbols; the model knows "
            f"{info.vocab_size}."
        )
    x = trainer.prepare(data.tensor(split, trainer.device))
    was_training = trainer.generator.training
    trainer.train(False)
    try:
        total = sequence_nll(trainer, x, options.batch_size, options.carry_state)
        steps = x.shape[0] * x.shape[1]
        nll = total / steps
        metrics = {
            "nll": nll,
            "bits_per_token": nll / math.log(2),
            "nll_per_sequence": total / x.shape[0],
            "carry_state": float(options.carry_state),
        }
        if info.meta.get("alphabet"):
            metrics["bits_per_character"] = metrics["bits_per_token"]
        if "entropy_rate" in info.meta:
            metrics["true_nll"] = float(info.meta["entropy_rate"])
        study, samples, clouds = hidden_state_study(trainer, x, options)
        metrics.update(study)
        length = trainer.length
        if info.vocab_size and samples.shape[1] > length + 3 and info.modality == "sequence":
            past = samples[:, length:]
            reference = (
                data.tensor("train", trainer.device).long() if "train" in data.splits else None
            )
            for n in (2, 3):
                metrics[f"js_{n}gram"] = ngram_js(past, x, n, info.vocab_size)
                if reference is not None:
                    need = math.ceil(past.numel() / length)
                    rows = reference[torch.randperm(len(reference), device=reference.device)[:need]]
                    metrics[f"js_{n}gram_floor"] = ngram_js(rows, x, n, info.vocab_size)
        if options.plot:
            projection_picture(*clouds, options.plot)
    finally:
        trainer.train(was_training)
    return metrics
