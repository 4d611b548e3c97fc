"""Regenerate docs/results/walkback.md and its figures (docs/results/walkback/).

    python docs/results/make_walkback.py [--quick] [--threads N]

Sized for under an hour on one CPU thread of the shared 2-core machine (no GPU):

1. Real MNIST (`mnist-5k`: 4,000 train / 1,000 test). **The recipe faults, each measured**
   (one seed, a short run each): Algorithm 1 at the paper's Adam rate and at 1e-3, with the
   T = 1 noise capped, learned per dimension (heating that per-step parameters cannot undo)
   or fixed, with weight averaging; NET with 30 steps on NET's schedule and on the cosine
   schedule; the operator's noise per heated level after training.
2. **Learning curves** of every model on the MLP (VW Algorithm 1, VW-30 on the appendix's
   schedule,
   NET-30, NET-1000 and, where gm-walkback has it, ddpm) and, where the `unet` operator is
   registered, on the UNet (scaled down: batch 20, 300 updates, one seed, fewer images and
   samples measured, NET-1000 at 2 points, ddpm sampled with strided steps; the page says
   which): held-out bits/dim (IS and bound) and the classifier
   measures (FD, KID, max-probability, classes) against updates and against training
   wall-clock; tables at equal updates (3 seeds at the final point for the MLP rows) and at
   equal wall-clock (read off the curves); sample grids of every model; +5000-step chains;
   inpainting with the best VW model against KNNImputer.
3. 2-D toys: the appendix toy recipe, 2 seeds; energy distance after cooling and after +5000
   steps at T = 1 beside a Gaussian fit.

Every number on the page is computed by this script at the commit it names.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "results" / "walkback"
PAGE = ROOT / "docs" / "results" / "walkback.md"
TOYS = ("swiss-roll", "circle", "mog-grid")
MASKS = ("bottom-half", "mar:14", "mcar:0.5")


def settings(quick: bool) -> dict:
    s = {
        "hidden": 256,  # MNIST MLP width (the paper's likelihood MLP is 2 x 1200: hidden=1200)
        "batch": 100,
        "curve": (250, 500, 1000, 2000),  # parameter updates at which the curves are measured
        "seeds": (0, 1, 2),  # seeds at the final point
        "seeded": ("algorithm1", "appendix", "net30", "ddpm"),  # the rows that get them
        "fault_updates": 500,  # each fault's ablation run (a curve point: rows are shared)
        "eval_examples": 30,  # test examples for IS / bound (the first ones of the split)
        "slow_examples": 5,  # NET-1000: 1000 steps per trajectory
        "slow_trajectories": 20,
        "trajectories": 50,
        "samples": 200,  # samples for the classifier measures
        # the UNet rows: a UNet step costs ~30x the MLP's per image on a CPU, so a smaller
        # batch, fewer updates and smaller measures (one seed; sizes stated on the page)
        "unet_batch": 20,
        "unet_curve": (75, 150, 300),
        "unet_examples": 10,
        "unet_trajectories": 5,
        "unet_samples": 64,
        "unet_noise_images": 20,  # VW's noise per level
        "unet_slow_examples": 2,  # NET-1000 on the UNet: 1000 UNet calls per trajectory
        "unet_slow_trajectories": 4,
        "unet_slow_samples": 16,
        "unet_slow_points": 2,  # ... and measured at the last 2 curve points only
        "unet_ddpm_steps": 25,  # ddpm's UNet samples: 25 strided steps of its 100
        "long_chains": 32,
        "long_steps": 5000,
        "inpaint_examples": 100,
        "toy_seeds": (0, 1),
        "toy_hidden": 128,
        "toy_minibatches": 40,  # x 30 online updates
        "toy_samples": 500,
    }
    if quick:
        s.update(
            curve=(25, 50),
            seeds=(0, 1),
            unet_curve=(30, 60),
            fault_updates=50,
            eval_examples=5,
            slow_examples=2,
            slow_trajectories=3,
            unet_examples=2,
            unet_trajectories=2,
            unet_samples=20,
            unet_slow_examples=1,
            unet_slow_trajectories=1,
            unet_slow_samples=4,
            unet_ddpm_steps=10,
            trajectories=5,
            samples=100,
            long_chains=20,
            long_steps=50,
            inpaint_examples=20,
            toy_minibatches=5,
            toy_seeds=(0,),
            toy_samples=200,
        )
    return s


# --- MNIST models -----------------------------------------------------------------------------
# mean K of Algorithm 1 (K = H + n, n ~ U{0..5}): H ~ 5 on the paper's operator (Tmax from
# the data), H = log2(1/c) = 3 on the skip (c = 1/8); the first point's guess only: later
# points and seeds use the K measured so far, and the realised update count is reported
K_ALG1 = 7.5
K_SKIP = 5.5
# the curve rows' VW: the CPU image default (recipes.CPU_IMAGE), which measured best (section
# 1 and helper w28a's runs): the skip operator -- F a residual on the heated reversible chain
# of the data's full-covariance Gaussian G, redrawing 1/8 of G's variance per T = 1 step, a
# learned per-axis noise gain (bounded by G's, so per-level parameters cannot cancel heating)
# -- Adam at 1e-3 and sampling from the weights' moving average
VW_FIXES = {"lr": 1e-3, "skip": "full", "noise": "learned", "skip_c": 0.125, "ema": 0.999}
HEAT_30 = 8 ** (1 / 30)  # T_t = HEAT_30^t, t = 1..30: T_30 = 8 = 1/c
# the paper's operator, (1 - alpha) s + alpha F(s) with F's variance head: the fault rows
PAPER_OP = {"skip": "none", "noise": "network", "ema": 0.0}

LABELS = {
    "algorithm1": "VW, Algorithm 1",
    "appendix": "VW-30, appendix schedule",
    "net30": "NET, 30 steps",
    "net1000": "NET, 1000 steps",
    "ddpm": "ddpm",
}
NOTES = {
    "algorithm1": "doubling schedule K = ceil(log2 Tmax) + n, walk-back loss, the skip "
    "operator (full-covariance G, c = 1/8, learned per-axis noise gain), Adam 1e-3, EMA 0.999",
    "appendix": "the appendix's fixed K = N = 30 steps, heated geometrically up to the "
    "skip's Tmax = 1/c = 8 (T_t = 8^(t/30); the appendix's sqrt(2) per step reaches T ~ "
    "2e4, where the skip's chain diverged in a trial), the walk-back loss (the appendix's "
    "reconstruction loss never trains the noise: section 1), the same skip operator, Adam "
    "1e-3, EMA 0.999",
    "net30": "cosine schedule (gm's default under 100 steps), NET's reverse, Adam 1e-3",
    "net1000": "NET's schedule, NET's reverse, Adam 1e-3",
    "ddpm": "gm-walkback's ddpm with its image defaults: 100 steps, cosine schedule, x0 "
    "prediction around the data Gaussian's posterior mean, learned variance (hybrid loss), "
    "EMA 0.999, Adam 1e-3",
}


def registered(kind: str, name: str) -> bool:
    from gm import plugins

    try:
        plugins.get(kind, name)
    except Exception:
        return False
    return True


def curve_rows(s: dict, operator: str) -> dict[str, dict]:
    """name -> {model, overrides, per_minibatch}: the curve rows on one network ("mlp" or a
    registered operator such as "unet"), every row at the same parameter-update counts."""
    mlp = operator == "mlp"
    batch = s["batch"] if mlp else s["unet_batch"]
    vw = {"batch_size": batch, "log_every": 5, "ema": 0.0, **VW_FIXES}
    vw.update(
        {"network": "mlp", "hidden": s["hidden"], "depth": 2, "norm": "batch"}
        if mlp
        else {"operator": operator}
    )
    net = {"batch_size": batch, "lr": 1e-3, "log_every": 5}
    net.update(
        {"network": "mlp", "hidden": s["hidden"], "norm": "layer"}
        if mlp
        else {"operator": operator}
    )
    rows = {
        "algorithm1": {
            "model": "walkback",
            "overrides": {**vw, "recipe": "algorithm1"},
            "per_minibatch": K_SKIP,
        },
        "appendix": {
            "model": "walkback",
            # the appendix's 30 steps, heated geometrically up to the skip's Tmax = 1/c (its
            # sqrt(2) per step reaches T ~ 2e4, where the skip's chain diverged)
            "overrides": {**vw, "recipe": "appendix", "loss": "walkback", "heat_factor": HEAT_30},
            "per_minibatch": 30,
        },
        "net30": {
            "model": "diffusion",
            "overrides": {**net, "diffusion_steps": 30},
            "per_minibatch": 1,
        },
        "net1000": {
            "model": "diffusion",
            "overrides": {**net, "diffusion_steps": 1000},
            "per_minibatch": 1,
        },
    }
    if registered("models", "ddpm"):
        ddpm = {"batch_size": batch, "log_every": 5}
        ddpm.update({"hidden": s["hidden"]} if mlp else {"operator": operator})
        rows["ddpm"] = {"model": "ddpm", "overrides": ddpm, "per_minibatch": 1}
    return rows


def eval_size(s: dict, group: str, name: str) -> dict:
    """How one curve row is measured: IS examples and trajectories (ddpm: ELBO draws), samples
    for the classifier measures, and (ddpm on the UNet) strided sampling steps (0: all)."""
    slow = name == "net1000"  # 1000 network calls per trajectory and per sample
    if group == "mlp":
        return {
            "n_eval": s["slow_examples" if slow else "eval_examples"],
            "trajectories": s["slow_trajectories" if slow else "trajectories"],
            "samples": s["samples"],
            "sample_steps": 0,
            "noise_images": 100,
        }
    return {
        "n_eval": s["unet_slow_examples" if slow else "unet_examples"],
        "trajectories": s["unet_slow_trajectories" if slow else "unet_trajectories"],
        "samples": s["unet_slow_samples" if slow else "unet_samples"],
        "sample_steps": s["unet_ddpm_steps"] if name == "ddpm" else 0,
        "noise_images": s["unet_noise_images"],
    }


# the fault table's rows that are curve rows (read off their curves at s["fault_updates"])
SHARED_FAULTS = {
    "skip operator (full G, c = 1/8, learned gain), EMA 0.999: the default": "algorithm1",
    "NET-30, cosine schedule, lr 1e-3": "net30",
}


def fault_rows(s: dict) -> dict[str, dict]:
    """The recipe faults of issue 22, one change each (one seed, s["fault_updates"] updates);
    the rows of :data:`SHARED_FAULTS` come from the curves."""
    mlp = {"network": "mlp", "hidden": s["hidden"], "depth": 2, "norm": "batch"}
    vw = {**mlp, "batch_size": s["batch"], "recipe": "algorithm1", "log_every": 5}
    net = {"network": "mlp", "hidden": s["hidden"], "norm": "layer", "batch_size": s["batch"]}
    net.update(diffusion_steps=30, log_every=5)
    paper = {**vw, **PAPER_OP}
    fast = {**paper, "lr": 1e-3}
    skip = {**vw, **VW_FIXES}
    rows = {
        "paper operator, paper lr 1e-4": ("walkback", {**paper, "lr": 1e-4}),
        "paper operator, lr 1e-3": ("walkback", fast),
        "paper operator, lr 1e-3, T = 1 noise capped at 0.1": (
            "walkback",
            {**fast, "max_std": 0.1},
        ),
        "paper operator, lr 1e-3, noise learned per pixel (cannot cancel heating)": (
            "walkback",
            {**fast, "noise": "learned"},
        ),
        "paper operator, lr 1e-3, noise fixed at 0.05": ("walkback", {**fast, "noise": "fixed"}),
        "paper operator, lr 1e-3, EMA 0.999": ("walkback", {**fast, "ema": 0.999}),
        "paper operator, the appendix recipe as written (K = N = 30, reconstruction loss)": (
            "walkback",
            {**fast, "recipe": "appendix"},
        ),
        "skip operator, c = 1/32": ("walkback", {**skip, "skip_c": 1 / 32}),
        "skip operator, trained weights (EMA 0)": ("walkback", {**skip, "ema": 0.0}),
        "NET-30, NET's schedule, lr 1e-3": (
            "diffusion",
            {**net, "beta_schedule": "net", "lr": 1e-3},
        ),
    }
    out = {}
    for name, (model, over) in rows.items():
        per = (
            1
            if model == "diffusion"
            else 30
            if over["recipe"] == "appendix"
            else K_SKIP
            if over["skip"] != "none"
            else K_ALG1
        )
        out[name] = {"model": model, "overrides": over, "per_minibatch": per}
    return out


def classifier(data, seed: int = 0):
    """A small MLP classifier on the train split; its 128-d hidden layer is the feature space."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    x = data.decode(data.raw("train")).reshape(-1, 784)
    y = data.labels["train"]
    body = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU())
    head = nn.Linear(128, 10)
    opt = torch.optim.Adam([*body.parameters(), *head.parameters()], lr=1e-3)
    for _ in range(30):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 100):
            idx = perm[i : i + 100]
            xb = x[idx] + 0.05 * torch.randn_like(x[idx])  # robust to mild pixel noise
            loss = nn.functional.cross_entropy(head(body(xb)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    body.eval()
    head.eval()
    xt = data.decode(data.raw("test")).reshape(-1, 784)
    with torch.no_grad():
        acc = (head(body(xt)).argmax(1) == data.labels["test"]).float().mean().item()
    return body, head, acc


def sample_measures(images, ref_feats, body, head) -> dict:
    """Frechet distance and KID (polynomial kernel, unbiased) in the classifier's feature space
    against the test split, mean max-probability, classes covered (>= 2% of the argmaxes)."""
    import torch
    from scipy import linalg

    flat = images.reshape(len(images), -1)
    nonfinite = (~torch.isfinite(flat)).any(1).float().mean().item()  # a diverged chain
    with torch.no_grad():  # shown as a picture would show it: +inf white, -inf and nan black
        f = body(torch.nan_to_num(flat, nan=0.0).clamp(0, 1)).double().numpy()
        p = torch.softmax(head(torch.from_numpy(f).float()), 1)
    scale = np.sqrt((ref_feats**2).mean())  # features in units of the test split's RMS
    f, r = f / scale, ref_feats / scale
    mu1, mu2 = f.mean(0), r.mean(0)
    c1, c2 = np.cov(f, rowvar=False), np.cov(r, rowvar=False)
    covmean = linalg.sqrtm(c1 @ c2).real
    fd = float(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean))
    d = f.shape[1]

    def k(a, b):
        return (a @ b.T / d + 1) ** 3

    m, n = len(f), len(r)
    kxx, kyy, kxy = k(f, f), k(r, r), k(f, r)
    kid = (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )
    counts = torch.bincount(p.argmax(1), minlength=10)
    return {
        "fd": fd,
        "kid": float(kid),
        "max_prob": p.max(1).values.mean().item(),
        "classes": int((counts >= 0.02 * len(images)).sum()),
        "nonfinite": nonfinite,
    }


def gaussian_baselines(data, ns) -> dict:
    """Diagonal and full-covariance Gaussians fitted to the dequantised train split; bits/dim
    of the first n test examples for each n in ``ns`` (every row is compared with them on its
    own evaluation images) and of the whole test split (one dequantisation each)."""
    import torch

    g = torch.Generator().manual_seed(0)

    def deq(split):
        raw = data.raw(split).double()
        return ((raw + torch.rand(raw.shape, generator=g, dtype=torch.float64)) / 256).reshape(
            len(raw), -1
        )

    xtr, xte = deq("train"), deq("test")
    dims = xtr.shape[1]
    shift = dims * math.log(256)
    mean, var = xtr.mean(0), xtr.var(0)
    diag = torch.distributions.Normal(mean, var.sqrt())
    cov = torch.cov(xtr.T) + 1e-6 * torch.eye(dims, dtype=torch.float64)
    full = torch.distributions.MultivariateNormal(mean, cov)
    out = {}
    for name, ll in (
        ("diag", lambda x: diag.log_prob(x).sum(1)),
        ("full", lambda x: full.log_prob(x)),
    ):

        def bits(x, ll=ll):
            return -(ll(x).mean().item() - shift) / (dims * math.log(2))

        out[f"{name}_all"] = bits(xte)
        out[name] = {n: bits(xte[:n]) for n in sorted(set(ns))}
    torch.manual_seed(0)
    out["full_samples"] = full.sample((64,)).float().clamp(0, 1).reshape(-1, 1, 28, 28)
    return out


def cooled_and_long(trainer, model: str, n: int, long_steps: int, sample_steps: int = 0):
    """(end-of-cooling samples, the same chains after +long_steps at T = 1), each the mean of
    its last step (what the grids and the classifier see); a diffusion has no long chain.
    ``sample_steps``: ddpm's strided sampling (0: all its steps)."""
    import torch

    from gm_walkback import chains, schedules

    if model != "walkback":
        opts = trainer.SampleOptions()
        if hasattr(opts, "mean"):
            opts = dataclasses.replace(opts, mean=True)
        if sample_steps:
            opts = dataclasses.replace(opts, steps=sample_steps)
        return trainer.sample(n, opts), None
    op = trainer.sampler
    walk = trainer.generation_walk()
    s, _ = trainer.generate(n, walk)  # draws through the whole cooling walk
    with torch.no_grad():
        cooled = op.distribution(s, 1.0, 0).mean  # one more T = 1 step's mean
        long = None
        if long_steps:
            more = schedules.Walk((1.0,) * long_steps, (0,) * long_steps)
            s_long, _ = chains.run_chain(op, s, more)
            long = trainer.postprocess(op.distribution(s_long, 1.0, 0).mean)
    return trainer.postprocess(cooled), long


def evaluate_options(trainer, trajectories: int, examples: int):
    """The trainer's evaluate options at this page's IS size (reversibility chains kept short:
    they are not this page's measure)."""
    want = {
        "trajectories": trajectories,
        "examples": examples,
        "chains": 16,
        "burn_in": 10,
        "chain_steps": 10,
    }
    opts = trainer.EvaluateOptions()
    return dataclasses.replace(opts, **{k: v for k, v in want.items() if hasattr(opts, k)})


def measure(
    trainer,
    model: str,
    shared: dict,
    size: dict,
    tag: str,
    grid: bool,
) -> dict:
    """Held-out bits/dim (IS and bound) and the classifier measures of one trained model,
    at the sizes of :func:`eval_size`."""
    import torch

    from gm import pictures

    trainer.train(False)
    torch.manual_seed(1)
    with torch.no_grad():
        ev = trainer.evaluate(
            shared["data"],
            "test",
            evaluate_options(trainer, size["trajectories"], size["n_eval"]),
        )
    out = {k: ev[k] for k in ("bits_per_dim", "bound_bits_per_dim") if k in ev}
    out["eval_examples"] = size["n_eval"]
    torch.manual_seed(2)
    t0 = time.perf_counter()
    with torch.no_grad():
        cooled, _ = cooled_and_long(trainer, model, size["samples"], 0, size["sample_steps"])
    out["sample_s"] = time.perf_counter() - t0
    out["n_samples"], out["sample_steps"] = len(cooled), size["sample_steps"]
    out["samples"] = sample_measures(cooled, shared["ref_feats"], shared["body"], shared["head"])
    if grid:
        pictures.image_grid(cooled[:64], nrow=16, scale=2).save(OUT / f"mnist-samples-{tag}.png")
    return out


def walk_updates(run: Path, minibatches: int, per_minibatch: float) -> tuple[int, float]:
    """(parameter updates, mean K) so far: VW makes K online updates per minibatch (the
    logged walk lengths), NET and ddpm one."""
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    ks = [r["walk_steps"] for r in rows if "walk_steps" in r]
    k = float(np.mean(ks)) if ks else per_minibatch
    return int(round(k * minibatches)), k


def curve_job(
    tag: str,
    row: dict,
    tmp: Path,
    shared: dict,
    *,
    seed: int,
    points,
    size: dict,
):
    """Train one row, measured at each of ``points`` parameter updates (resumed between them;
    wall-clock counts training only). Returns (the points, the run folder)."""
    from gm import train
    from gm.run import Run

    run, train_s, curve, minibatches = tmp / tag, 0.0, [], 0
    k = row["per_minibatch"]  # updates per minibatch: VW's measured mean K after a point
    for i, updates in enumerate(points):
        # at least one more minibatch per point
        minibatches = max(minibatches + 1, round(updates / k))
        t0 = time.perf_counter()
        if i == 0:
            train(
                row["model"],
                "mnist-5k",
                steps=minibatches,
                out=run,
                device="cpu",
                seed=seed,
                progress=False,
                **row["overrides"],
            )
        else:
            train(row["model"], steps=minibatches, resume=run, device="cpu", progress=False)
        train_s += time.perf_counter() - t0
        trainer = Run.open(run).trainer
        last = i == len(points) - 1
        point = measure(trainer, row["model"], shared, size, tag, grid=last)
        if row["model"] == "walkback":
            point["noise"] = noise_per_level(trainer, shared["data"], size["noise_images"])
            point["loss"] = trainer.config.loss
        point["updates"], k = walk_updates(run, minibatches, k)
        point["walk_steps_mean"] = k
        point.update(minibatches=minibatches, train_s=train_s, seed=seed, target=updates)
        point["trajectories"] = size["trajectories"]
        curve.append(point)
        print(
            f"{tag} @{point['updates']}: train {train_s:.0f}s bpd {point.get('bits_per_dim', math.nan):.3f} "
            f"fd {point['samples']['fd']:.2f} [{(time.perf_counter() - shared['wall0']) / 60:.1f} min]",
            flush=True,
        )
    return curve, run


def unet_step_seconds(batch: int, hidden: int) -> dict:
    """Seconds per NET-30 training step on the UNet and on the page's MLP (a batch of
    MNIST-size images): why the UNet rows are scaled down on a CPU."""
    import torch

    from gm import build
    from gm.data import DataInfo

    if not registered("transition_operators", "unet"):
        return {}
    info, out = DataInfo("mnist-5k", "image", (1, 28, 28)), {}
    x = torch.rand(batch, 1, 28, 28)
    mlp = {"network": "mlp", "hidden": hidden, "norm": "layer"}
    for name, over in (("unet", {"operator": "unet"}), ("mlp", mlp)):
        over = {**over, "diffusion_steps": 30}
        cls, cfg = build.resolve("diffusion", info, "cpu", overrides=over)
        trainer = build.trainer(cls, cfg, info, "cpu")
        trainer.training_step(x)  # warm-up
        t0 = time.perf_counter()
        for i in range(2):
            trainer.step = i + 1
            trainer.training_step(x)
        out[name] = (time.perf_counter() - t0) / 2
    return out


def noise_per_level(trainer, data, n: int) -> dict:
    """The operator's injected noise std at each level of its walk, at its temperature, on
    the ink pixels (> 0.3) of n test images: heating that survives training rises as sqrt(T)."""
    import torch

    x = data.decode(data.raw("test"))[:n].float()
    s = trainer.prepare(x)
    ink = x > 0.3
    op = trainer.sampler
    walk = trainer.walk(0)
    with torch.no_grad():
        stds = [
            op.distribution(s, t, lv).stddev[ink].median().item()
            for t, lv in zip(walk.temperatures, walk.levels, strict=True)
        ]
    return {"temperatures": list(walk.temperatures), "std": stds}


def long_chains_and_inpainting(trainer, s: dict, shared: dict, tag: str, inpaint: bool) -> dict:
    """+long_steps chains at T = 1 (FD at the end of cooling and after) and, for the chosen
    model, inpainting RMSE on three masks with pictures."""
    import torch

    from gm import masks, pictures

    body, head, ref = shared["body"], shared["head"], shared["ref_feats"]
    out = {}
    torch.manual_seed(3)
    with torch.no_grad():
        cooled, long = cooled_and_long(trainer, "walkback", s["long_chains"], s["long_steps"])
    out["long_start"] = sample_measures(cooled, ref, body, head)
    out["long"] = sample_measures(long, ref, body, head)
    pictures.image_grid(torch.cat([cooled[:16], long[:16]]), nrow=16, scale=2).save(
        OUT / f"mnist-long-{tag}.png"
    )
    if not inpaint:
        return out
    test = shared["data"].decode(shared["data"].raw("test"))[: s["inpaint_examples"]]
    out["inpaint"] = {}
    for spec in MASKS:
        known = ~masks.parse(spec).sample(
            len(test), (1, 28, 28), modality="image", generator=torch.Generator().manual_seed(0)
        )
        torch.manual_seed(4)
        with torch.no_grad():
            filled = trainer.inpaint(test, known)
        out["inpaint"][spec] = (filled - test)[~known].pow(2).mean().sqrt().item()
        shown = torch.where(known, test, torch.full_like(test, 0.5))[:12]
        grid = torch.cat([shown, filled[:12], test[:12]])
        pictures.image_grid(grid, nrow=12, scale=2).save(
            OUT / f"mnist-inpaint-{tag}-{spec.replace(':', '')}.png"
        )
    return out


def curve_figures(group: str, curves: dict[str, list[dict]]) -> list[str]:
    """Learning-curve pictures of one group (bits/dim IS, bound, FD against updates and
    against training seconds); returns their file names."""
    from gm import plotting

    names = []
    for metric, get in (
        ("bits/dim (IS)", is_bpd),
        ("bits/dim (bound)", bound_bpd),
        ("FD", lambda p: p["samples"]["fd"]),
    ):
        for x, xl in (("updates", "parameter updates"), ("train_s", "training seconds")):
            series = []
            for name, pts in curves.items():
                rows = [{xl: p[x], metric: get(p)} for p in pts if get(p) is not None]
                rows = [r for r in rows if math.isfinite(r[metric])]
                if rows:
                    series.append((LABELS[name], rows))
            if not series:
                continue
            img = plotting.curves(series, metric, x=xl, title=f"{group}: {metric} against {xl}")
            slug = metric.split()[0].replace("/", "") + ("-bound" if "bound" in metric else "")
            fname = f"curve-{group}-{slug}-{x}.png"
            img.save(OUT / fname)
            names.append(fname)
    return names


def knn_inpainting(data, n: int) -> dict:
    import torch
    from sklearn.impute import KNNImputer

    from gm import masks, pictures

    train = data.decode(data.raw("train")).reshape(-1, 784).numpy()
    test = data.decode(data.raw("test"))[:n]
    out = {}
    knn = KNNImputer(n_neighbors=10, weights="distance").fit(train)
    for spec in MASKS:
        known = ~masks.parse(spec).sample(
            len(test), (1, 28, 28), modality="image", generator=torch.Generator().manual_seed(0)
        )
        flat = test.reshape(len(test), -1).numpy().copy()
        miss = (~known).reshape(len(test), -1).numpy()
        flat[miss] = np.nan
        fill = torch.from_numpy(knn.transform(flat)).float().reshape_as(test)
        mean_fill = torch.from_numpy(train.mean(0)).float().reshape(1, 1, 28, 28)
        shown = torch.where(known, test, torch.full_like(test, 0.5))[:12]
        grid = torch.cat([shown, fill[:12], test[:12]])
        pictures.image_grid(grid, nrow=12, scale=2).save(
            OUT / f"mnist-inpaint-knn-{spec.replace(':', '')}.png"
        )
        out[spec] = {
            "knn10": (fill - test)[~known].pow(2).mean().sqrt().item(),
            "mean": (mean_fill.expand_as(test) - test)[~known].pow(2).mean().sqrt().item(),
        }
    return out


# --- toys ---------------------------------------------------------------------------------------
def toy_job(dataset: str, seed: int, s: dict, tmp: Path) -> dict:
    import torch

    from gm import train
    from gm.data import load_dataset
    from gm.run import Run
    from gm_walkback import chains, schedules, shared

    data = load_dataset(dataset)
    test = data.tensor("test")[: s["toy_samples"]]
    start = time.perf_counter()
    run = train(
        "walkback",
        dataset,
        steps=s["toy_minibatches"],
        out=tmp / f"{dataset}-{seed}",
        device="cpu",
        seed=seed,
        progress=False,
        hidden=s["toy_hidden"],  # the toy recipe: appendix, per-step params
    ).path
    train_s = time.perf_counter() - start
    trainer = Run.open(run).trainer
    torch.manual_seed(100 + seed)
    with torch.no_grad():
        x, _ = trainer.generate(s["toy_samples"], trainer.generation_walk())
        ed30 = shared.energy_distance(x, test)
        more = schedules.Walk((1.0,) * 5000, (0,) * 5000)
        y, _ = chains.run_chain(trainer.sampler, x, more)
        ed_long = shared.energy_distance(y, test)
    out = {"dataset": dataset, "seed": seed, "train_s": train_s, "ed30": ed30, "ed5000": ed_long}
    if seed == 0:
        out["samples"], out["long_samples"] = x.tolist(), y.tolist()
    return out


def toy_baselines(dataset: str, n: int) -> dict:
    import torch

    from gm.data import load_dataset
    from gm_walkback.shared import energy_distance

    data = load_dataset(dataset)
    train, test = data.tensor("train"), data.tensor("test")[:n]
    fresh = load_dataset(dataset, options={"seed": 99}).tensor("train")[:n]
    gauss = torch.distributions.MultivariateNormal(train.mean(0), torch.cov(train.T))
    torch.manual_seed(0)
    g = gauss.sample((n,))
    return {
        "floor": energy_distance(fresh, test),
        "gauss": energy_distance(g, test),
        "data": test.tolist(),
    }


def toy_figure(toys: list[dict], base: dict) -> None:
    import torch
    from PIL import Image, ImageDraw

    from gm import pictures

    cols = (
        ("held-out data", "data"),
        ("VW, 30 steps", "samples"),
        ("+5000 at T=1", "long_samples"),
    )
    size = 200
    img = Image.new("RGB", (size * len(cols), (size + 18) * len(TOYS)), "white")
    draw = ImageDraw.Draw(img)
    for r, ds in enumerate(TOYS):
        ref = torch.tensor(base[ds]["data"])
        lo, hi = ref.min(0).values - 0.5, ref.max(0).values + 0.5
        span, mid = float((hi - lo).max()), (lo + hi) / 2
        bounds = (
            float(mid[0]) - span / 2,
            float(mid[0]) + span / 2,
            float(mid[1]) - span / 2,
            float(mid[1]) + span / 2,
        )
        row = next(t for t in toys if t["dataset"] == ds and t["seed"] == 0)
        for c, (title, key) in enumerate(cols):
            pts = ref if key == "data" else torch.tensor(row[key])
            img.paste(
                pictures.scatter(pts, size=size, bounds=bounds), (c * size, r * (size + 18) + 18)
            )
            draw.text((c * size + 4, r * (size + 18) + 3), f"{ds}: {title}", fill=(0, 0, 0))
    img.save(OUT / "toys.png")


# --- the page -----------------------------------------------------------------------------------
# bits/dim above this (4x a uniform density on the pixel cells) or not finite: the run
# diverged, and the page says so instead of printing (or averaging) the number
DIVERGED = 32.0


def blew_up(r: dict) -> bool:
    vals = [r[k] for k in ("bits_per_dim", "bound_bits_per_dim") if k in r]
    return any(not (math.isfinite(v) and v < DIVERGED) for v in vals)


def f3(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return "diverged" if math.isinf(v) else f"{v:.3f}"


def stat(rows: list[dict], get, fmt: str = ".3f") -> str:
    """mean ± sd over seeds (just the value for one seed); +inf is a diverged seed."""
    v = np.array([get(r) for r in rows], dtype=float)
    ok = v[np.isfinite(v)]
    n_div, n_nan = int(np.isinf(v).sum()), int(np.isnan(v).sum())
    notes = [f"{n} of {len(v)} seeds {w}" for n, w in ((n_div, "diverged"), (n_nan, "nan")) if n]
    bad = f" ({'; '.join(notes)})" if notes else ""
    if len(ok) == 0:
        return ("**diverged**" if n_div else "nan") + bad
    if len(ok) == 1:
        return format(ok[0], fmt) + bad
    return f"{format(ok.mean(), fmt)} ± {format(ok.std(ddof=1), fmt)}{bad}"


def diverged(m: dict) -> str:
    """A note for samples whose chain left the floats (the measures see them clamped)."""
    return f" ({100 * m['nonfinite']:.0f}% of chains not finite)" if m.get("nonfinite") else ""


def separated(a: list[dict], b: list[dict], get) -> str | None:
    """'lower'/'higher' when every seed of a is below/above every seed of b (>= 3 seeds each)."""
    if min(len(a), len(b)) < 3:
        return None
    va, vb = [get(r) for r in a], [get(r) for r in b]
    if max(va) < min(vb):
        return "lower"
    if min(va) > max(vb):
        return "higher"
    return None


def bpd(r: dict) -> float:
    """Held-out bits/dim: the IS estimate, else (ddpm, which has none) the bound; +inf for a
    diverged run."""
    return math.inf if blew_up(r) else r.get("bits_per_dim", r.get("bound_bits_per_dim", math.nan))


def is_bpd(r: dict) -> float:
    return math.inf if blew_up(r) else r.get("bits_per_dim", math.nan)


def bound_bpd(r: dict) -> float:
    return math.inf if blew_up(r) else r.get("bound_bits_per_dim", math.nan)


def mean_over(rs: list[dict], get) -> float:
    """The mean over seeds (+inf if any seed diverged: the row is then reported as such)."""
    v = [get(x) for x in rs]
    return math.inf if any(map(math.isinf, v)) else float(np.nanmean(v))


def fd(r: dict) -> float:
    return r["samples"]["fd"]


def trend(curve: list[dict], get, target: float) -> str:
    """What the learning curve says about a missed target: the change over the last doubling
    of updates and, if it is falling, how many more doublings at that rate would reach it."""
    if len(curve) < 2:
        return "one point only: the curve says nothing"
    a, b = get(curve[-2]), get(curve[-1])
    if math.isinf(b):
        return "it diverged (see the note on diverged rows)"
    if not (math.isfinite(a) and math.isfinite(b)):
        return "not finite on the curve"
    drop = a - b
    ratio = curve[-1]["updates"] / max(curve[-2]["updates"], 1)
    span = f"over the last {ratio:.1f}x of updates ({curve[-2]['updates']:,} -> {curve[-1]['updates']:,})"
    if drop <= 0:
        return (
            f"the curve is flat or rising ({-drop:.3f} higher {span}): more compute on this "
            "recipe would not close it"
        )
    need = (b - target) / drop
    if need < 1:
        return f"still falling ({drop:.3f} lower {span}): less than one more such step at that rate"
    if need > 20:
        return f"falling slowly ({drop:.3f} lower {span}): over 20 more such steps at that rate"
    return (
        f"still falling ({drop:.3f} lower {span}); at that rate about {need:.1f} more such "
        f"steps (~{curve[-1]['updates'] * ratio**need:,.0f} updates) would reach {target:.3f}, "
        "if the fall did not slow"
    )


def table_line(label: str, rs: list[dict], steps) -> str:
    return (
        f"| {label} | {len(rs)} | {steps} | {stat(rs, lambda x: x['updates'], ',.0f')} | "
        f"{stat(rs, lambda x: x['train_s'], '.0f')} | "
        f"{stat(rs, is_bpd) if any('bits_per_dim' in x for x in rs) else '–'} | "
        f"{stat(rs, bound_bpd)} | {stat(rs, fd, '.2f')} | "
        f"{stat(rs, lambda x: x['samples']['kid'], '.4f')} | "
        f"{stat(rs, lambda x: x['samples']['max_prob'])} | "
        f"{stat(rs, lambda x: x['samples']['classes'], '.2g')} |"
    )


HEAD = (
    "| model | seeds | sampling steps | updates | train s | bits/dim (IS) | bits/dim (bound) "
    "| FD | KID | mean max-prob | classes |"
)
SEP = "|---|---|---|---|---|---|---|---|---|---|---|"


def est(rs: list[dict]) -> str:
    return "IS" if any("bits_per_dim" in x for x in rs) else "bound"


def targets(r: dict) -> tuple[list[str], list[str]]:
    """Every target of issue 22's "Show" list, as (missed, met) page lines."""
    s, groups, gauss = r["settings"], r["groups"], r["gauss"]
    missed: list[str] = []
    met: list[str] = []

    def check(ok: bool, line: str) -> None:
        (met if ok else missed).append(line)

    def row_bpd(row: dict) -> float:
        return mean_over(row["finals"], bpd)

    for g, rows in groups.items():
        for name, row in rows.items():
            m, fin = row_bpd(row), row["finals"]
            n = fin[0]["eval_examples"]
            full = gauss["full"][n]
            check(
                m < full,
                f"- **{LABELS[name]} ({g}) below the full-covariance Gaussian** ({full:.3f} on "
                f"the same first {n} test images): {f3(m)} bits/dim ({est(fin)}, mean of "
                f"{len(fin)} seed(s), {fin[0]['updates']:,} updates)"
                + ("." if m < full else f"; {trend(row['curve'], bpd, full)}."),
            )
    vw_mlp = {n: groups["mlp"][n] for n in ("algorithm1", "appendix") if n in groups["mlp"]}
    best_vw = min(vw_mlp, key=lambda n: row_bpd(vw_mlp[n]))
    bv = row_bpd(vw_mlp[best_vw])
    check(
        bv <= 5.80,
        f"- **Best VW on the {s['hidden']}-wide MLP at or below the independent minimal "
        f"diffusion's 5.80 at 2,000 updates** ({LABELS[best_vw]}): {f3(bv)} bits/dim at "
        f"{vw_mlp[best_vw]['finals'][0]['updates']:,} updates"
        + ("." if bv <= 5.80 else f"; {trend(vw_mlp[best_vw]['curve'], bpd, 5.80)}."),
    )
    if "unet" in groups:
        ug = groups["unet"]
        best_u = min(ug, key=lambda n: row_bpd(ug[n]))
        bu = row_bpd(ug[best_u])
        n = ug[best_u]["finals"][0]["eval_examples"]
        check(
            bu <= 4.0,
            f"- **Best model on the UNet at or below 4.0 bits/dim** ({LABELS[best_u]}): {f3(bu)} "
            f"bits/dim ({est(ug[best_u]['finals'])}, first {n} test images, where the "
            f"full-covariance Gaussian has {gauss['full'][n]:.3f}) at "
            f"{ug[best_u]['finals'][0]['updates']:,} updates"
            + ("." if bu <= 4.0 else f"; {trend(ug[best_u]['curve'], bpd, 4.0)}."),
        )
    else:
        missed.append(
            "- **Best model on the UNet at or below 4.0 bits/dim**: not measured (the `unet` "
            "operator is not registered in this checkout)."
        )
    for g, rows in groups.items():
        for name, row in rows.items():
            mp = float(np.mean([x["samples"]["max_prob"] for x in row["finals"]]))
            cl = min(x["samples"]["classes"] for x in row["finals"])
            check(
                mp >= 0.9 and cl == 10,
                f"- **{LABELS[name]} ({g}) samples: mean max-probability >= 0.9 and all 10 "
                f"classes**: {mp:.3f}, as few as {cl} classes ({row['finals'][0]['n_samples']} "
                "samples per seed).",
            )
    for name, extra in r["long"].items():
        a, b = extra["long_start"]["fd"], extra["long"]["fd"]
        check(
            b <= 2 * a,
            f"- **{LABELS[name]} (mlp) +{s['long_steps']}-step chains within 2x of the end of "
            f"cooling's FD**: {b:.2f}{diverged(extra['long'])} against {a:.2f} ({b / a:.1f}x).",
        )
    for ds in TOYS:
        t = [x for x in r["toys"] if x["dataset"] == ds]
        e30, e5k = np.mean([x["ed30"] for x in t]), np.mean([x["ed5000"] for x in t])
        check(
            e5k <= 2 * e30,
            f"- **toy {ds}: +5000 steps within 2x of the 30-step energy distance**: {e5k:.4f} "
            f"against {e30:.4f} ({e5k / e30:.1f}x, mean of {len(t)} seeds).",
        )
    for g, rows in groups.items():
        if "appendix" not in rows:
            continue
        for rival in ("net1000", "ddpm"):
            if rival not in rows:
                continue
            a, b = rows["appendix"]["finals"], rows[rival]["finals"]
            ab, bb = mean_over(a, bpd), mean_over(b, bpd)
            af, bf = float(np.mean([fd(x) for x in a])), float(np.mean([fd(x) for x in b]))
            check(
                ab <= bb and af <= bf,
                f"- **VW-30 (appendix schedule) matches {LABELS[rival]} at equal updates ({g})** "
                f"(the paper: VW with 30 steps matches NET with 1000): bits/dim {f3(ab)} against "
                f"{f3(bb)}, FD {af:.2f} against {bf:.2f} (means over {len(a)} and {len(b)} "
                "seed(s)).",
            )
            w = r["wallclock"][g]
            if rival in w and "appendix" in w:
                ab, bb = bpd(w["appendix"]), bpd(w[rival])
                check(
                    ab <= bb and fd(w["appendix"]) <= fd(w[rival]),
                    f"- **VW-30 (appendix schedule) matches {LABELS[rival]} at equal wall-clock "
                    f"({g}, {r['budgets'][g]:.0f} s of training)**: bits/dim {f3(ab)} against "
                    f"{f3(bb)}, FD {fd(w['appendix']):.2f} against {fd(w[rival]):.2f} (one seed).",
                )
    return missed, met


def divergence_notes(groups: dict, faults: dict) -> list[str]:
    """One line per diverged curve row or fault row: where, and why where the run shows it."""
    runs = [
        (f"{LABELS[name]} ({g})", row["curve"] + row["finals"][1:])
        for g, rows in groups.items()
        for name, row in rows.items()
    ]
    runs += [(f"section 1: {name}", [p]) for name, p in faults.items()]
    out = []
    for label, points in runs:
        bad = [p for p in points if blew_up(p)]
        if not bad:
            continue
        p = bad[-1]
        why = "not diagnosed here"
        if p.get("loss") == "reconstruction" and p.get("noise"):
            why = (
                "the reconstruction loss (the appendix tables, as the authors' code computes "
                "it) trains the mean of F only, never the operator's noise (T = 1 std "
                f"{p['noise']['std'][0]:.3f} here, its initial value), so the chain's "
                "likelihood of held-out images is not what this recipe fits"
            )
        out.append(
            f"- **{label}**: diverged at {len(bad)} of {len(points)} point(s) (e.g. "
            f"{p['updates']:,} updates, seed {p['seed']}); why: {why}."
        )
    return out


def write_page(r: dict) -> None:
    from gm_walkback.walkback import WalkbackTrainer

    s, gauss = r["settings"], r["gauss"]
    faults = r["faults"]
    groups = r["groups"]  # group -> {name -> {"curve": [...], "finals": [...], "steps": int}}
    L: list[str] = []
    add = L.append
    add("# Variational Walkback on real MNIST (`mnist-5k`): the recipe faults and learning curves")
    add("")
    threads = r["threads"]
    add(
        f"Made by `python docs/results/make_walkback.py{' --quick' if r['quick'] else ''}"
        f"{f' --threads {threads}' if threads != 1 else ''}` at commit `{r['commit']}` in "
        f"{r['wall'] / 60:.1f} min on {threads} CPU thread(s) of a shared 2-core machine; load "
        f"average {r['load'][0]} at the start and {r['load'][1]} at the end (other engineers' "
        "jobs: every time on this page is inflated by them, unevenly, so wall-clock comparisons "
        "are rough). **No GPU was available in this task**: no GPU figures (the CelebA-size "
        "step, the 10,000-step chain, the UNet ddpm's throughput) were measured. Sizes are a "
        f"CPU pilot's: the MLP is {s['hidden']} wide (the paper's 1200 is `--set hidden=1200`), "
        f"at most {s['curve'][-1]:,} parameter updates per model on the MLP and "
        f"{s['unet_curve'][-1]:,} on the UNet."
    )
    add("")
    t = r["unet_timing"]
    if not r["unet"]:
        add("**No UNet rows**: the `unet` operator is not registered in this checkout.")
    else:
        add(
            f"**The UNet rows are scaled down.** The `unet` operator (its CPU defaults: 32 "
            f"channels at full resolution, mults (1, 2, 2)) took {t['unet']:.2f} s per NET-30 "
            f"training step of {s['unet_batch']} images when the page ran, the {s['hidden']}-wide "
            f"MLP {t['mlp']:.3f} s ({t['unet'] / t['mlp']:.0f}x). So the UNet rows train with "
            f"batch {s['unet_batch']} (the MLP rows: {s['batch']}) to "
            f"{', '.join(f'{p:,}' for p in s['unet_curve'])} updates, one seed, and are measured "
            f"smaller: IS with M = {s['unet_trajectories']} on the first {s['unet_examples']} "
            f"test images and {s['unet_samples']} samples for the classifier measures (NET-1000, "
            f"1000 UNet calls per trajectory and sample: M = {s['unet_slow_trajectories']} on "
            f"{s['unet_slow_examples']} images, {s['unet_slow_samples']} samples; ddpm samples "
            f"with {s['unet_ddpm_steps']} evenly strided steps of its 100, respaced as in Nichol "
            "& Dhariwal, and its bound is over all 100). FD from so few samples is biased "
            "upwards: compare UNet FDs with each other, not with the MLP's. The UNet models' "
            "+5000-step chains and inpainting were not run (5000 UNet calls per chain)."
        )
    add("")

    missed, met = targets(r)
    add("## Targets missed, first")
    add("")
    L.extend(missed or ["- none of the page's targets is missed at this size."])
    add(
        "- What was tried (section 1): on the paper's operator, the paper's Adam rate and "
        "1e-3, the T = 1 noise capped, learned per pixel so that heating survives training, "
        "and fixed as in the authors' code, weight averaging; the skip operator (F a residual "
        "on the heated chain of the data's Gaussian) with c = 1/8 and 1/32, with and without "
        "weight averaging; NET-30 on NET's schedule and on the cosine schedule. Tried while "
        "choosing these rows, not on this page: alpha = 1 on the paper's operator (worse); "
        "c = 1/4, a bounded state-dependent gain (`noise=network` with the skip) and lr 3e-3 "
        "with the skip (no better). The VW curve rows use what measured best: "
        f"{', '.join(f'`{k}={v}`' for k, v in VW_FIXES.items())}."
    )
    add("")
    add("## Targets met")
    add("")
    L.extend(met or ["- none."])
    add("")
    notes = divergence_notes(groups, faults)
    if notes:
        add("## Diverged rows")
        add("")
        add(
            f"A point whose held-out bits/dim (IS or bound) is above {DIVERGED:g} (4x a uniform "
            "density on the pixel cells) or not finite is shown as **diverged**, never as a "
            "number or in a mean."
        )
        add("")
        L.extend(notes)
        add("")

    # --- faults ------------------------------------------------------------------------------
    add("## 1. The recipe faults, each measured")
    add("")
    add(
        f"VW rows: Algorithm 1 on the {s['hidden']}-wide MLP with batch norm and per-step "
        "parameters. First the paper's operator (mean (1 - alpha) s + alpha F(s), F's variance "
        "head, trained weights) at the paper's Adam rate and at 1e-3, then one change each from "
        "the 1e-3 row; then the skip operator, the CPU default now (F a residual on the heated "
        "reversible chain of the data's full-covariance Gaussian G, redrawing c = 1/8 of G's "
        "variance per T = 1 step, so Tmax = 1/c; a learned noise gain per axis of G; Adam "
        "1e-3; EMA 0.999), and one change each from it. NET rows: 30 steps on the cosine "
        "schedule (gm's default) and on NET's. One seed, "
        f"~{s['fault_updates']:,} parameter updates each, IS with M = {s['trajectories']} on the "
        f"first {s['eval_examples']} test images; FD etc. as in section 4. Noise: the median "
        "injected std on the ink pixels (> 0.3) of 100 test images at T = 1 (level 0) and at "
        "the walk's hottest level, against sqrt(T) times the T = 1 value (what heating that "
        "survives training gives)."
    )
    add("")
    add(
        "| change | updates | train s | bits/dim (IS) | bits/dim (bound) | FD | max-prob | "
        "classes | noise T = 1 | noise hottest (T) | sqrt(T) x T = 1 |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, x in r["faults"].items():
        nl = x.get("noise")
        if nl:
            t = nl["temperatures"][-1]
            noise = f"{nl['std'][0]:.3f} | {nl['std'][-1]:.3f} ({t:g}) | {nl['std'][0] * math.sqrt(t):.3f}"
        else:
            noise = "– | – | –"
        add(
            f"| {name} | {x['updates']:,} | {x['train_s']:.0f} | {f3(is_bpd(x))} | "
            f"{f3(bound_bpd(x))} | {fd(x):.2f} | {x['samples']['max_prob']:.3f} | "
            f"{x['samples']['classes']} | {noise} |"
        )
    add("")
    add(
        "- **T = 1 noise and heating, the paper's operator**: `--set max_std=S` caps F's "
        "variance head smoothly (`S tanh(softplus(F)/S)`); `noise=learned` makes it one learned "
        "std per pixel, free of the state and the step, so the noise at level l is exactly "
        'sqrt(T_l) times it (Algorithm 1: "noise of variance T sigma^2 at each step"); '
        "`noise=fixed` keeps `init_std` (the authors' code). Tested in "
        "`tests/test_recipe_faults.py`."
    )
    add(
        "- **T = 1 noise and heating, the skip operator (the CPU default)**: along G's axis i "
        "the T = 1 noise variance is c lam_i g_i with g_i = sigmoid(raw_i) in (0, 1): it cannot "
        "grow past G's own (c lam_i), and being free of the state and the step, per-level "
        "parameters cannot cancel heating: the noise at level l is exactly sqrt(T_l) times the "
        "T = 1 noise (the last two noise columns agree by construction). With F = 0 it is G's "
        "heated chain, reversible with stationary law G heated by T. Tested in "
        "`tests/test_skip.py`; `--set skip=none --set noise=network --set ema=0` is the paper's "
        "operator."
    )
    add(
        "- **NET's schedule**: gm's `net` schedule is NET's code's baseline, beta_t = "
        "1/linspace(T, 2, T)_t with 1e-3 added to beta_1 (NET also learns a perturbation of it, "
        "which gm does not); over 1000 steps it ends at alpha-bar ~ 1e-3. Over 30 steps it "
        "starts at beta_1 ~ 0.035 and leaves alpha-bar_T ~ 0.03 of the data in the last state, "
        "so `diffusion_steps` < 100 now defaults to the cosine schedule (`beta_schedule=net` "
        "keeps the old one). NET's learned variance (sigmoid(F/sqrt(T) + logit beta_t)) is "
        "unchanged: the issue measured a fixed variance within 0.03 bits/dim of a learned one."
    )
    cos, old = (
        faults.get("NET-30, cosine schedule, lr 1e-3"),
        faults.get("NET-30, NET's schedule, lr 1e-3"),
    )
    if cos and old:
        gap = is_bpd(old) - is_bpd(cos)
        add(
            f"- **Measured here** (one seed, {cos['updates']:,} updates): NET-30 on the cosine "
            f"schedule {f3(is_bpd(cos))} bits/dim, FD {fd(cos):.2f}; on NET's {f3(is_bpd(old))}, "
            f"FD {fd(old):.2f}: "
            + (
                f"the cosine schedule is {gap:.2f} bits/dim better."
                if gap > 0.1
                else "**no difference of the bit per dimension the issue measured** (with NET's "
                "reverse parameterisation the schedule is not what holds NET-30 back at this "
                "size); the cosine default is kept for its prior match, not for a measured gain."
            )
        )
    for op, ema, plain in (
        (
            "paper operator",
            "paper operator, lr 1e-3, EMA 0.999",
            "paper operator, lr 1e-3",
        ),
        (
            "skip operator",
            next((k for k in faults if "default" in k), ""),
            "skip operator, trained weights (EMA 0)",
        ),
    ):
        if ema in faults and plain in faults:
            a, b = is_bpd(faults[ema]), is_bpd(faults[plain])
            add(
                f"- **Weight averaging, {op}** (one seed): EMA 0.999 {f3(a)} bits/dim against "
                f"{f3(b)} for the trained weights at equal updates"
                + ("." if a < b else ": **not better** at this size.")
            )
    paper, skip = (
        faults.get("paper operator, lr 1e-3"),
        next((faults[k] for k in faults if "default" in k), None),
    )
    if paper and skip:
        add(
            f"- **The operator** (one seed, ~{s['fault_updates']:,} updates): the skip operator "
            f"{f3(is_bpd(skip))} bits/dim against the paper operator's {f3(is_bpd(paper))} at "
            f"lr 1e-3 (the full-covariance Gaussian: {gauss['full'][s['eval_examples']]:.3f})."
        )
    add("")

    # --- curves ------------------------------------------------------------------------------
    for g, rows in groups.items():
        pts = s["curve"] if g == "mlp" else s["unet_curve"]
        add(
            f"## 2{'a' if g == 'mlp' else 'b'}. Learning curves on the {'MLP' if g == 'mlp' else 'UNet'}"
        )
        add("")
        add(
            f"Measured at {', '.join(f'{p:,}' for p in pts)} parameter updates (VW: one online "
            "update per walk step; the realised count is shown), seed 0, resumed between points "
            "(training seconds only). "
            + "; ".join(f"{LABELS[n]}: {NOTES[n]}" for n in rows)
            + (
                f". Batch {s['batch']}. IS with M = {s['trajectories']} on the first "
                f"{s['eval_examples']} test images (NET-1000, whose every trajectory is 1000 "
                f"steps: M = {s['slow_trajectories']} on {s['slow_examples']}; ddpm: its bound, "
                f"the mean of M draws); {s['samples']} samples for the classifier measures."
                if g == "mlp"
                else f". Batch {s['unet_batch']}. IS with M = {s['unet_trajectories']} on the "
                f"first {s['unet_examples']} test images, {s['unet_samples']} samples (NET-1000: "
                f"M = {s['unet_slow_trajectories']} on {s['unet_slow_examples']}, "
                f"{s['unet_slow_samples']} samples; ddpm: its bound, and samples with "
                f"{s['unet_ddpm_steps']} strided steps): see the note at the top."
            )
            + (
                f" Seeds {tuple(s['seeds'])} at the final point for "
                + ", ".join(LABELS[n] for n in s["seeded"] if n in rows)
                + "; one seed for the others (budget)."
                if g == "mlp"
                else " One seed."
            )
        )
        add("")
        for fname in r["figures"][g]:
            add(f"![{fname}](walkback/{fname})")
            add("")
        add("| model | " + " | ".join(f"{p:,}" for p in pts) + " |")
        add("|---|" + "---|" * len(pts))
        for name, row in rows.items():
            at = {
                p["target"]: f"{f3(is_bpd(p))} / {f3(bound_bpd(p))} / {fd(p):.1f} "
                f"({p['train_s']:.0f} s)"
                for p in row["curve"]
            }
            cells = [at.get(p, "not measured") for p in pts]
            add(f"| {LABELS[name]} | " + " | ".join(cells) + " |")
        add("")
        add(
            "Cells: bits/dim IS / bound / FD (training seconds so far). ddpm has no IS "
            "estimate: its targets and comparisons use its bound (an upper bound on its bits/dim)."
        )
        add("")
        add(f"### Equal updates ({g}; mean ± sd over seeds)")
        add("")
        add(HEAD)
        add(SEP)
        for n in sorted({row["finals"][0]["eval_examples"] for row in rows.values()}):
            for kind, label in (("diag", "diagonal"), ("full", "full-covariance")):
                add(
                    f"| {label} Gaussian, first {n} test images | – | – | – | – | "
                    f"{gauss[kind][n]:.3f} (all 1000: {gauss[kind + '_all']:.3f}) | – | – | – "
                    "| – | – |"
                )
        for name, row in rows.items():
            add(table_line(LABELS[name], row["finals"], row["steps"]))
        add("")
        w = r["wallclock"][g]
        add(f"### Equal training wall-clock ({g}; seed 0, read off the curves)")
        add("")
        add(
            f"Budget: {r['budgets'][g]:.0f} s, the fastest row's time to its last point; each row "
            "shows its last curve point within the budget (the points are 2x apart in updates, "
            "so a row may have used as little as half of it: see the seconds column)."
        )
        add("")
        add(HEAD)
        add(SEP)
        for name, p in w.items():
            add(table_line(LABELS[name], [p], rows[name]["steps"]))
        add("")

    # --- the claims ----------------------------------------------------------------------------
    add("## 3. VW with 30 steps against NET-1000 and ddpm (the paper's claim)")
    add("")
    for g, rows in groups.items():
        for rival in ("net1000", "ddpm"):
            if rival not in rows:
                continue
            for vw in ("appendix", "algorithm1"):
                for what, get in (("bits/dim", bpd), ("FD", fd)):
                    a, b = rows[vw]["finals"], rows[rival]["finals"]
                    sep_ = separated(a, b, get)
                    ma, mb = mean_over(a, get), mean_over(b, get)
                    verdict = (
                        f"{sep_} in every seed: claimed"
                        if sep_
                        else f"{min(len(a), len(b))} seed(s) or overlapping seeds: **no difference claimed**"
                    )
                    add(
                        f"- {g}, equal updates, {what}: {LABELS[vw]} {f3(ma)} vs {LABELS[rival]} "
                        f"{f3(mb)}; {verdict}."
                    )
                if vw in r["wallclock"][g] and rival in r["wallclock"][g]:
                    a, b = r["wallclock"][g][vw], r["wallclock"][g][rival]
                    add(
                        f"- {g}, equal wall-clock (one seed, no difference claimed): {LABELS[vw]} "
                        f"{f3(bpd(a))} bits/dim, FD {fd(a):.2f} vs {LABELS[rival]} {f3(bpd(b))}, "
                        f"FD {fd(b):.2f}."
                    )
    add("")

    # --- grids -------------------------------------------------------------------------------
    add("## 4. Sample grids (seed 0, last curve point)")
    add("")
    add("Full-covariance Gaussian, for scale:")
    add("")
    add("![samples gaussian](walkback/mnist-samples-gaussian.png)")
    add("")
    for g, rows in groups.items():
        for name in rows:
            add(f"{LABELS[name]} ({g}):")
            add("")
            add(f"![samples {name} {g}](walkback/mnist-samples-{g}-{name}-s0.png)")
            add("")
    add(
        f"Classifier: a 784-256-128-10 MLP trained on the train split (test accuracy "
        f"{r['acc']:.3f}); features its 128-d hidden layer over the test features' RMS; FD and KID "
        f"(unbiased, kernel (x.y/d + 1)^3) against the 1000 test images; {s['samples']} samples "
        "per model (the mean of the last step); classes covered = classes given >= 2% of the "
        f"argmaxes. Real data for scale: FD {r['real']['fd']:.2f}, KID {r['real']['kid']:.4f}, "
        f"max-prob {r['real']['max_prob']:.3f}, {r['real']['classes']} classes."
    )
    add("")

    # --- long chains -------------------------------------------------------------------------
    add("## 5. +5000-step chains (VW, MLP, seed 0)")
    add("")
    add("| model | FD end of cooling | FD +5000 | max-prob +5000 | classes +5000 | within 2x |")
    add("|---|---|---|---|---|---|")
    for name, x in r["long"].items():
        a, b = x["long_start"], x["long"]
        add(
            f"| {LABELS[name]} | {a['fd']:.2f} | {b['fd']:.2f}{diverged(b)} | {b['max_prob']:.3f} | "
            f"{b['classes']} | {'yes' if b['fd'] <= 2 * a['fd'] else '**no**'} |"
        )
    add("")
    for name in r["long"]:
        add(
            f"{LABELS[name]}: top row end of cooling, bottom row the same chains +{s['long_steps']} steps."
        )
        add("")
        add(f"![long {name}](walkback/mnist-long-mlp-{name}-s0.png)")
        add("")

    # --- inpainting --------------------------------------------------------------------------
    knn, inp = r["knn"], r["inpaint"]
    add(f"## 6. Inpainting: the best VW model ({LABELS[inp['name']]}, MLP) against KNNImputer")
    add("")
    add(
        f"RMSE on the unknown pixels of the first {s['inpaint_examples']} test images; masks: the "
        "bottom half, a 14x14 square (`mar:14`), each pixel missing with probability 0.5 "
        "(`mcar:0.5`). The chain starts at the masked image and runs the cooling walk with the "
        "known pixels clamped. KNNImputer: scikit-learn, 10 neighbours, distance weights, fitted "
        "on the train split. (Only VW inpaints in gm; NET and ddpm have no clamped chain.)"
    )
    add("")
    add("| model | " + " | ".join(MASKS) + " |")
    add("|---|" + "---|" * len(MASKS))
    add("| train mean | " + " | ".join(f"{knn[m]['mean']:.4f}" for m in MASKS) + " |")
    add("| KNNImputer (k = 10) | " + " | ".join(f"{knn[m]['knn10']:.4f}" for m in MASKS) + " |")
    add(f"| {LABELS[inp['name']]} | " + " | ".join(f"{inp['rmse'][m]:.4f}" for m in MASKS) + " |")
    add("")
    beats = [m for m in MASKS if inp["rmse"][m] < knn[m]["knn10"]]
    add(
        f"VW beats KNNImputer on: {', '.join(beats)}."
        if beats
        else "**KNNImputer is better than the best VW model on every mask.**"
    )
    add("")
    add("Rows of each picture: masked input (grey = unknown), the fill, the truth.")
    add("")
    for spec in MASKS:
        slug = spec.replace(":", "")
        add(f"KNNImputer, {spec}:")
        add("")
        add(f"![inpaint knn {spec}](walkback/mnist-inpaint-knn-{slug}.png)")
        add("")
        add(f"{LABELS[inp['name']]}, {spec}:")
        add("")
        add(f"![inpaint {spec}](walkback/mnist-inpaint-{inp['tag']}-{slug}.png)")
        add("")

    # --- toys ----------------------------------------------------------------------------------
    add("## 7. 2-D toys: +5000 steps against 30 steps")
    add("")
    add(
        f"The toy recipe (appendix C/I): 30 steps heated by 1.1 per step, per-step parameters, MLP "
        f"2-{s['toy_hidden']}-{s['toy_hidden']} [4096], {s['toy_minibatches']} minibatches x 30 "
        f"online updates, seeds {s['toy_seeds']}. Energy distance of {s['toy_samples']} samples to "
        "held-out points (mean ± sd over seeds)."
    )
    add("")
    add(
        "| toy | noise floor | Gaussian fit | VW 30 steps | VW +5000 at T = 1 | ratio | within 2x |"
    )
    add("|---|---|---|---|---|---|---|")
    for ds in TOYS:
        t = [x for x in r["toys"] if x["dataset"] == ds]
        a, b = np.array([x["ed30"] for x in t]), np.array([x["ed5000"] for x in t])
        sd = lambda v: v.std(ddof=1) if len(v) > 1 else 0.0  # noqa: E731
        add(
            f"| {ds} | {r['tbase'][ds]['floor']:.4f} | {r['tbase'][ds]['gauss']:.4f} | "
            f"{a.mean():.4f} ± {sd(a):.4f} | {b.mean():.4f} ± {sd(b):.4f} | "
            f"{b.mean() / a.mean():.2f} | {'yes' if b.mean() <= 2 * a.mean() else '**no**'} |"
        )
    add("")
    add("![toys](walkback/toys.png)")
    add("")

    # --- defaults ------------------------------------------------------------------------------
    add("## 8. What the defaults are, and why")
    add("")
    add(
        "- On a machine without a CUDA device, `gm train walkback --dataset mnist-5k` runs "
        f"`recipe={WalkbackTrainer.IMAGE_RECIPE}` on the CPU setup: the {s['hidden']}-wide MLP "
        "with batch norm and per-step parameters inside the skip operator (full-covariance G, "
        "c = 1/8, a learned noise gain per axis), Adam 1e-3 and sampling from the weights' "
        "moving average (`ema=0.999`), as section 1 measured best, for "
        f"{WalkbackTrainer.CPU_STEPS:,} minibatches (about 10 minutes on an idle 2-core machine; "
        "that run is not on this page); on a GPU, the paper's setup (Table 2's conv net, F's "
        "variance head, Adam 1e-4; the skip is not measured on a GPU). `--show-config` shows "
        "which; `--set network=conv --set lr=1e-4 --set skip=none --set noise=network --set "
        "ema=0` asks for the paper's on a CPU."
    )
    add(
        "- `gm evaluate` defaults to M = 20 trajectories on 100 examples (about a minute on a CPU "
        "for an MNIST MLP run) and names the estimator and sample size beside every "
        "likelihood; `--trajectories 100 --examples 0` is the paper's protocol."
    )
    add("")
    PAGE.write_text("\n".join(L) + "\n")


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a smoke run (minutes), not the page")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (2 only on an otherwise idle 2-core machine: with other jobs "
        "running, 2 threads measured 3-6x slower than 1 per UNet step)",
    )
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "packages" / "walkback" / "src"))
    # every module up front: nothing imported later can differ from this commit's files
    import gm_walkback.chains
    import gm_walkback.ddpm
    import gm_walkback.diffusion
    import gm_walkback.figures
    import gm_walkback.inpainting
    import gm_walkback.networks
    import gm_walkback.operators
    import gm_walkback.plugin
    import gm_walkback.recipes
    import gm_walkback.schedules
    import gm_walkback.shared
    import gm_walkback.unet
    import gm_walkback.walkback  # noqa: F401
    from gm import engine, pictures
    from gm.data import load_dataset
    from gm.run import Run

    # training seconds are training only: the engine's end-of-run sample picture (64 samples
    # through every reverse step: 64,000 UNet calls for NET-1000) is not drawn here
    engine._TrainingLoop.write_samples = lambda self, name: None
    s = settings(args.quick)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    load0 = load_average()
    wall0 = time.perf_counter()
    data = load_dataset("mnist-5k")
    body, head, acc = classifier(data)
    with torch.no_grad():
        ref_feats = body(data.decode(data.raw("test")).reshape(-1, 784)).double().numpy()
    real = sample_measures(data.decode(data.raw("train"))[: s["samples"]], ref_feats, body, head)
    sizes = [eval_size(s, g, n)["n_eval"] for g in ("mlp", "unet") for n in LABELS]
    gauss = gaussian_baselines(data, sizes)
    pictures.image_grid(gauss.pop("full_samples"), nrow=16, scale=2).save(
        OUT / "mnist-samples-gaussian.png"
    )
    knn = knn_inpainting(data, s["inpaint_examples"])
    shared = {"body": body, "head": head, "ref_feats": ref_feats, "data": data, "wall0": wall0}
    # the UNet rows wherever the operator is registered, at the UNet sizes of settings()
    unet = registered("transition_operators", "unet")
    unet_timing = unet_step_seconds(s["unet_batch"], s["hidden"])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # learning curves (seed 0), then the other seeds at the final point (MLP)
        groups: dict[str, dict] = {"mlp": {}}
        if unet:
            groups["unet"] = {}
        runs = {}
        for g in groups:
            for name, row in curve_rows(s, g).items():
                size = eval_size(s, g, name)
                pts = s["curve"] if g == "mlp" else s["unet_curve"]
                if g == "unet" and name == "net1000":
                    pts = pts[-s["unet_slow_points"] :]
                curve, run = curve_job(
                    f"{g}-{name}-s0", row, tmp, shared, seed=0, points=pts, size=size
                )
                runs[(g, name)] = run
                finals = [curve[-1]]
                for seed in s["seeds"][1:] if g == "mlp" and name in s["seeded"] else ():
                    more, _ = curve_job(
                        f"{g}-{name}-s{seed}",
                        {**row, "per_minibatch": curve[-1]["walk_steps_mean"]},
                        tmp,
                        shared,
                        seed=seed,
                        points=(pts[-1],),
                        size=size,
                    )
                    finals.append(more[-1])
                trainer = Run.open(run).trainer
                steps = (
                    len(trainer.generation_walk())
                    if row["model"] == "walkback"
                    else f"{size['sample_steps']} of {trainer.config.diffusion_steps} (strided)"
                    if size["sample_steps"]
                    else trainer.config.diffusion_steps
                )
                groups[g][name] = {"curve": curve, "finals": finals, "steps": steps}
        # the faults, one seed each (the rows that are curve rows read off their curves)
        faults = {}
        for name, curve_name in SHARED_FAULTS.items():
            pts = groups["mlp"][curve_name]["curve"]
            faults[name] = next(p for p in pts if p["target"] == s["fault_updates"])
        for i, (name, row) in enumerate(fault_rows(s).items()):
            curve, _ = curve_job(
                f"fault{i}",
                row,
                tmp,
                shared,
                seed=0,
                points=(s["fault_updates"],),
                size=eval_size(s, "mlp", name),
            )
            faults[name] = curve[-1]
        vw_first = sorted(
            faults,
            key=lambda k: (  # paper operator, skip operator, NET; the default first in each
                2 if k.startswith("NET") else 1 if k.startswith("skip") else 0,
                "default" not in k and "cosine" not in k,
            ),
        )
        faults = {k: faults[k] for k in vw_first}
        # equal wall-clock, read off the curves: the fastest row's time to its last point
        budgets, wallclock = {}, {}
        for g, rows in groups.items():
            budgets[g] = min(row["curve"][-1]["train_s"] for row in rows.values())
            wallclock[g] = {}
            for name, row in rows.items():
                within = [p for p in row["curve"] if p["train_s"] <= budgets[g] * 1.001]
                wallclock[g][name] = within[-1] if within else row["curve"][0]
        figures = {
            g: curve_figures(g, {n: row["curve"] for n, row in rows.items()})
            for g, rows in groups.items()
        }
        # 3. long chains of the VW rows; inpainting with the best VW model (MLP, seed 0)
        vw = [n for n in ("algorithm1", "appendix") if n in groups["mlp"]]
        best = min(vw, key=lambda n: mean_over(groups["mlp"][n]["finals"], bpd))
        long, inpaint = {}, {}
        for name in vw:
            trainer = Run.open(runs[("mlp", name)]).trainer
            trainer.train(False)
            extra = long_chains_and_inpainting(trainer, s, shared, f"mlp-{name}-s0", name == best)
            if name == best:
                inpaint = {"name": name, "tag": f"mlp-{name}-s0", "rmse": extra.pop("inpaint")}
            long[name] = extra
        print(f"mnist done [{(time.perf_counter() - wall0) / 60:.1f} min]", flush=True)
        toys = [toy_job(ds, seed, s, tmp) for ds in TOYS for seed in s["toy_seeds"]]
    tbase = {ds: toy_baselines(ds, s["toy_samples"]) for ds in TOYS}
    toy_figure(toys, tbase)
    wall = time.perf_counter() - wall0
    result = {
        "commit": commit,
        "quick": args.quick,
        "threads": args.threads,
        "settings": s,
        "load": (load0, load_average()),
        "wall": wall,
        "gauss": gauss,
        "acc": acc,
        "real": real,
        "knn": knn,
        "faults": faults,
        "groups": groups,
        "budgets": budgets,
        "wallclock": wallclock,
        "figures": figures,
        "unet": unet,
        "unet_timing": unet_timing,
        "long": long,
        "inpaint": inpaint,
        "toys": [{k: v for k, v in t.items() if "samples" not in k} for t in toys],
        "tbase": {k: {kk: vv for kk, vv in v.items() if kk != "data"} for k, v in tbase.items()},
    }
    (OUT / "results.json").write_text(json.dumps(result, indent=1, default=str))
    write_page(result)
    print(f"wrote {PAGE} in {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
