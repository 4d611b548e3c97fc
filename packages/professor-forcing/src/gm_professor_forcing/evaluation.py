"""What ``gm evaluate`` measures for a sequence model.

- ``nll``: nats per token (per step for real-valued data) of the split under teacher forcing;
  ``bits_per_token`` (and ``bits_per_character`` for text, the same number); ``nll_per_sequence``
  in nats per row (sequential MNIST: nats per image). By default each row is scored from a
  fresh state (``carry_state`` = 0: per-window, like per-line BPC but with fixed windows);
  ``--carry-state`` treats the rows as consecutive windows of one stream and carries the
  hidden state across them (``carry_state`` = 1: continuous-stream BPC).
- ``nll_floor``: the source's exact NLL per token of a window from a stationary start where
  the data know it (``meta["true_nll"]`` per window / L: (H(pi) + (L-1) rate) / L for the
  Markov chain), and ``entropy_rate`` (the floor of a continuous stream, ``--carry-state``).
- The thesis's hidden-state study at equal horizons: free-running states far past the
  training length (the last ``L`` steps of a ``horizon``-step run, default 4L) against
  teacher-forced states at the same steps of real ``horizon``-step sequences (consecutive
  rows of a stream where ``meta["stream_rows"]`` says rows come in streams, else random rows
  joined; ``reference_is_stream`` says which): ``centroid_distance`` (between the clouds'
  means) and ``nn_distance`` (mean distance from a free-running state to its nearest
  teacher-forced state). Beside them the first ``L`` steps (``*_train_length``), the noise
  floor (held-out real sequences against the reference, equal sizes: ``*_floor``) and the
  old comparison against teacher-forced states from the start (``*_vs_start``). ``--plot``
  draws the clouds by PCA and by t-SNE (scikit-learn, as the thesis) and adds
  ``tsne_centroid_distance``.
- The drift check (exposure bias made visible, or visibly absent): ``drift_runs`` free runs
  of ``drift_horizon`` steps (default 16 L) from the model's start; the error of their
  per-step statistics against the split's windows (:func:`statistic_error`) within the
  training length (steps 0..L: ``drift_within``) and far past it (the last L steps:
  ``drift_past``), and ``drift`` = past / within. Both windows hold as many steps, so a model
  whose free run is stationary reads about 1 (sampling noise: ``drift_floor`` is the error of
  as many real training windows); a model whose errors compound reads well above 1.
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
from gm_professor_forcing import sampling

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


def quantile_w1(a: torch.Tensor, b: torch.Tensor, levels: int = 256) -> float:
    """1-Wasserstein distance between the empirical laws of two 1-D samples (the mean
    absolute difference of their quantiles on a midpoint grid)."""
    q = (torch.arange(levels, dtype=torch.float64, device=a.device) + 0.5) / levels
    return (torch.quantile(a.double(), q) - torch.quantile(b.double(), q)).abs().mean().item()


def statistic_error(windows: torch.Tensor, reference: torch.Tensor, vocab: int | None) -> float:
    """How far the per-step statistics of ``windows`` are from the ``reference`` windows'
    (both prepared rows). Tokens: the Jensen-Shannon divergence (bits) of their 2-gram
    frequencies. Real values: per feature, the 1-Wasserstein distance of the values and of the
    one-step increments, each divided by the reference's standard deviation, summed."""
    if vocab:
        return ngram_js(windows, reference, 2, vocab)
    total = 0.0
    for d in range(windows.shape[-1]):
        for f in (lambda v: v, lambda v: v.diff(dim=1)):
            a, b = f(windows[..., d]).flatten(), f(reference[..., d]).flatten()
            total += quantile_w1(a, b) / max(b.double().std().item(), 1e-12)
    return total


@torch.no_grad()
def drift_study(
    trainer: SequenceTrainer, x: torch.Tensor, reference: torch.Tensor | None, options
) -> dict[str, float]:
    """The drift check (module docstring): free runs' statistics within L and far past it
    against the split ``x``; ``reference`` (training windows) gives the noise floor."""
    length, vocab = trainer.length, trainer.info.vocab_size
    horizon = options.drift_horizon or 16 * length
    if horizon < 2 * length or options.drift_runs < 1:
        raise GMError(
            f"--drift-horizon must be at least twice the training length ({2 * length}) and "
            f"--drift-runs positive; got {horizon} and {options.drift_runs}."
        )
    runs = options.drift_runs
    draws = torch.cat(
        [
            sampling.sample(
                trainer.generator, min(options.batch_size, runs - i), horizon, options.temperature
            )  # fmt: skip
            for i in range(0, runs, options.batch_size)
        ]
    )
    draws = trainer.prepare(draws)
    within = statistic_error(draws[:, :length], x, vocab)
    past = statistic_error(draws[:, horizon - length :], x, vocab)
    out = {
        "drift_horizon": float(horizon),
        "drift_within": within,
        "drift_past": past,
        "drift": past / max(within, 1e-300),
    }
    if reference is not None:
        rows = reference[torch.randperm(len(reference), device=reference.device)[:runs]]
        out["drift_floor"] = statistic_error(rows, x, vocab)
    return out


def real_long_sequences(x: torch.Tensor, count: int, rows: int, stream_rows: int):
    """``count`` real sequences of ``rows`` consecutive windows each, and whether they are
    true streams: consecutive rows of one stream when the data come in streams of at least
    ``rows`` windows (``meta["stream_rows"]``), else random rows joined (each window real,
    the joins not the source's: sequential MNIST's "next image")."""
    if stream_rows >= rows:
        streams = len(x) // stream_rows
        pick = torch.randperm(streams, device=x.device)[:count]
        index = (pick[:, None] * stream_rows + torch.arange(rows, device=x.device)).flatten()
        return x[index].reshape(len(pick), rows * x.shape[1], *x.shape[2:]), True
    index = torch.randint(len(x), (count * rows,), device=x.device)
    return x[index].reshape(count, rows * x.shape[1], *x.shape[2:]), False


@torch.no_grad()
def hidden_state_study(
    trainer: SequenceTrainer, x: torch.Tensor, options: EvaluateOptions, stream_rows: int = 1
):
    """The thesis's teacher-forced vs free-running hidden-state comparison, at equal horizons:
    free-running states at steps [H - L, H) (H = ``horizon``, default 4L) against
    teacher-forced states at the same steps of real sequences of H steps, so the
    start-from-zero transient is the same on both sides. Returns (metrics, free-running
    draws, (reference cloud, free-running cloud))."""
    gen, length = trainer.generator, trainer.length
    horizon = options.horizon or 4 * length
    if horizon < length:
        raise GMError(f"--horizon must be at least the training length {length}, got {horizon}.")
    half = min(options.n, len(x)) // 2
    if half < 1:
        raise GMError("the hidden-state study needs at least 2 sequences (--n).")
    rows = math.ceil(horizon / length)
    real, stream = real_long_sequences(x, 2 * half, rows, stream_rows)
    half = len(real) // 2
    if half < 1:
        raise GMError("the hidden-state study needs at least 2 real sequences (--n).")
    states = torch.cat(
        [
            gen.teacher_forced(real[i : i + options.batch_size]).hidden.float()
            for i in range(0, 2 * half, options.batch_size)
        ]
    )
    width = states.shape[-1]
    far_steps, near_steps = slice(horizon - length, horizon), slice(0, length)

    def cloud(s: torch.Tensor) -> torch.Tensor:
        return _subsample(s.reshape(-1, width), options.points)

    reference, held_out = cloud(states[:half, far_steps]), cloud(states[half:, far_steps])
    ref_near, held_near = cloud(states[:half, near_steps]), cloud(states[half:, near_steps])
    samples, free = gen.free_running(half, horizon, options.temperature)
    far, near = cloud(free.hidden[:, far_steps].float()), cloud(free.hidden[:, near_steps].float())
    metrics = {
        "horizon": float(horizon),
        "reference_is_stream": float(stream),
        "centroid_distance": centroid_distance(far, reference),
        "nn_distance": nn_distance(far, reference),
        "centroid_distance_floor": centroid_distance(held_out, reference),
        "nn_distance_floor": nn_distance(held_out, reference),
        "centroid_distance_train_length": centroid_distance(near, ref_near),
        "nn_distance_train_length": nn_distance(near, ref_near),
        "centroid_distance_floor_train_length": centroid_distance(held_near, ref_near),
        "nn_distance_floor_train_length": nn_distance(held_near, ref_near),
        # the old, confounded comparison: free-running far out vs teacher forcing from the start
        "centroid_distance_vs_start": centroid_distance(far, ref_near),
        "nn_distance_vs_start": nn_distance(far, ref_near),
    }
    return metrics, samples, (reference, far)


def tsne(reference: torch.Tensor, free: torch.Tensor, points: int = 750, seed: int = 0):
    """Both clouds embedded together by scikit-learn's t-SNE (the thesis's projection), at
    most ``points`` of each; returns (reference 2-D, free 2-D)."""
    from sklearn.manifold import TSNE

    g = torch.Generator().manual_seed(seed)
    a = reference[torch.randperm(len(reference), generator=g)[:points]].cpu()
    b = free[torch.randperm(len(free), generator=g)[:points]].cpu()
    both = torch.cat([a, b]).double().numpy()
    out = TSNE(2, perplexity=30, init="pca", random_state=seed).fit_transform(both)
    out = torch.from_numpy(out)
    return out[: len(a)], out[len(a) :]


def pca(reference: torch.Tensor, free: torch.Tensor):
    """Both clouds on the first two principal axes of the teacher-forced (reference) cloud,
    centred on its mean: (reference 2-D, free 2-D)."""
    mean = reference.mean(0)
    _, _, v = torch.linalg.svd(reference - mean, full_matrices=False)
    axes = v[:2].T
    return (reference - mean) @ axes, (free - mean) @ axes


def projection_picture(reference: torch.Tensor, free: torch.Tensor, path: str) -> float:
    """Two panels: both clouds on the first two principal axes of the teacher-forced cloud
    (left, PCA) and embedded together by t-SNE (right, as in the thesis); teacher-forced grey,
    free-running blue. Returns the centroid distance in t-SNE coordinates."""
    from PIL import Image

    from gm import pictures

    ref_pca, free_pca = pca(reference, free)
    names = ("free-running", "teacher-forced")
    pca_panel = pictures.scatter(
        free_pca,
        reference=ref_pca,
        title="hidden states: PCA of the teacher-forced cloud",
        labels=names,
    )
    ref2, free2 = tsne(reference, free)
    right = pictures.scatter(free2, reference=ref2, title="hidden states: t-SNE", labels=names)
    img = Image.new("RGB", (pca_panel.width + right.width + 8, pca_panel.height), "white")
    img.paste(pca_panel, (0, 0))
    img.paste(right, (pca_panel.width + 8, 0))
    img.save(path)
    return centroid_distance(free2, ref2)


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
            metrics["entropy_rate"] = float(info.meta["entropy_rate"])
        if "true_nll" in info.meta:  # nats per window from a stationary start -> per token
            metrics["nll_floor"] = float(info.meta["true_nll"]) / x.shape[1]
        stream_rows = int(info.meta.get("stream_rows", 1))
        study, samples, clouds = hidden_state_study(trainer, x, options, stream_rows)
        metrics.update(study)
        length = trainer.length
        reference = (
            trainer.prepare(data.tensor("train", trainer.device))
            if "train" in data.splits
            else None
        )
        if info.modality == "sequence":
            metrics.update(drift_study(trainer, x, reference, options))
        if info.vocab_size and samples.shape[1] > length + 3 and info.modality == "sequence":
            past = samples[:, length:]
            for n in (2, 3):
                metrics[f"js_{n}gram"] = ngram_js(past, x, n, info.vocab_size)
                if reference is not None:
                    need = math.ceil(past.numel() / length)
                    rows = reference[torch.randperm(len(reference), device=reference.device)[:need]]
                    metrics[f"js_{n}gram_floor"] = ngram_js(rows, x, n, info.vocab_size)
        if options.plot:
            metrics["tsne_centroid_distance"] = projection_picture(
                clouds[0], clouds[1], options.plot
            )
    finally:
        trainer.train(was_training)
    return metrics
