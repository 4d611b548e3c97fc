"""Regenerate docs/results/walkback.md and its figures (docs/results/walkback/).

    python docs/results/make_walkback.py [--workers 2] [--quick]

1. 2-D toys (swiss roll, circle, 3x3 MoG): Variational Walkback with 30 steps against the
   NET diffusion baseline with 1000 and with 30 steps, 3 seeds each, equal numbers of
   parameter updates; energy distance to held-out data, the IS log-likelihood against the
   true log-density (MoG), beside the noise floor and a Gaussian fit.
2. Long chains: the same VW chains run 5 000 extra steps at T = 1.
3. The reversibility ratio (Appendix H).
4. Real images without download: scikit-learn's 8x8 digits (through gm-datasets' `digits`
   when installed): samples, bound, IS log-likelihood, bits/dim, inpainting.

Sizes are far below the paper's (CPU, a shared 2-core machine): they are printed on the page.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "results" / "walkback"
PAGE = ROOT / "docs" / "results" / "walkback.md"
TOYS = ("swiss-roll", "circle", "mog-grid")
SEEDS = (0, 1, 2)
N_EVAL = 2000  # samples and held-out points for the energy distance
LL_POINTS, LL_TRAJ = 200, 50  # IS log-likelihood: test points, trajectories each
LONG = (100, 1000, 5000)  # extra steps at T = 1 after the 30-step samples


def settings(quick: bool) -> dict:
    s = {
        "hidden": 128,
        "vw_steps": 300,
        "walk_steps": 30,
        "digits_steps": 1000,
        "long_chains": 500,
    }
    if quick:
        s.update(vw_steps=20, digits_steps=10, long_chains=50)
    s["updates"] = s["vw_steps"] * s["walk_steps"]  # diffusion gets as many parameter updates
    return s


# --- one training + measurement job (runs in a worker process) ------------------------------
def toy_job(args: tuple) -> dict:
    import torch

    torch.set_num_threads(1)
    from gm import checkpoint
    from gm.builtins.toy import mog_log_density
    from gm.data import load_dataset
    from gm.engine import train
    from gm_walkback import chains, schedules
    from gm_walkback.diffusion import DiffusionEvaluateOptions, DiffusionSampleOptions
    from gm_walkback.walkback import WalkbackEvaluateOptions

    dataset, model, seed, s, tmp = args
    data = load_dataset(dataset)
    test = data.tensor("test")[:N_EVAL]
    if model == "vw":
        vw = {
            "hidden": s["hidden"],
            "schedule": "appendix",
            "walk_steps": s["walk_steps"],
            "heat_factor": 1.1,
        }
        name, overrides, steps = "walkback", vw, s["vw_steps"]
    else:
        k = 1000 if model == "net1000" else 30
        name, overrides, steps = (
            "diffusion",
            {"hidden": s["hidden"], "diffusion_steps": k},
            s["updates"],
        )
    start = time.perf_counter()
    run = train(
        name,
        dataset,
        steps=steps,
        out=Path(tmp) / f"{dataset}-{model}-{seed}",
        overrides=overrides,
        device="cpu",
        seed=seed,
        progress=False,
    )
    train_s = time.perf_counter() - start
    trainer = checkpoint.load(run)
    out = {
        "dataset": dataset,
        "model": model,
        "seed": seed,
        "train_s": train_s,
        "updates": s["updates"],
    }
    torch.manual_seed(1000 + seed)
    with torch.no_grad():
        if model == "vw":
            walk = trainer.generation_walk()
            x, _ = trainer.generate(N_EVAL, walk)
            out["sampling_steps"] = len(walk)
            out["long"] = {}
            chain = x[: s["long_chains"]]
            done = 0
            for extra in LONG:
                more = schedules.Walk(
                    (1.0,) * (extra - done), (0,) * (extra - done)
                )  # T = 1, level 0
                chain, _ = chains.run_chain(trainer.operator, chain, more)
                done = extra
                out["long"][extra] = chains.energy_distance(chain, test)
            out["long"][0] = chains.energy_distance(x[: s["long_chains"]], test)
            out["long_samples"] = chain.numpy().tolist()
            opts = WalkbackEvaluateOptions(trajectories=LL_TRAJ, examples=LL_POINTS, samples=100)
        else:
            x = trainer.sample(N_EVAL, DiffusionSampleOptions())
            out["sampling_steps"] = trainer.config.diffusion_steps
            opts = DiffusionEvaluateOptions(trajectories=LL_TRAJ, examples=LL_POINTS, samples=100)
        out["energy_distance"] = chains.energy_distance(x, test)
        out["samples"] = x.numpy().tolist()
        if (
            model == "vw" or dataset == "mog-grid"
        ):  # NET's 1000-step IS is costly: only where it is shown
            metrics = trainer.evaluate(data, "test", opts)
            out.update({k: metrics[k] for k in ("lower_bound", "log_likelihood")})
        if model == "vw":
            out.update(
                {k: metrics[k] for k in ("reversibility", "entropy_production", "step_entropy")}
            )
        if dataset == "mog-grid":
            out["sample_true_logdensity"] = mog_log_density(x).mean().item()
    return out


def baselines(dataset: str) -> dict:
    """Noise floor (fresh data against held-out data) and a Gaussian fit, same n."""
    import torch

    from gm.builtins.toy import mog_log_density
    from gm.data import load_dataset
    from gm_walkback.chains import energy_distance

    train = load_dataset(dataset).tensor("train")
    test = load_dataset(dataset).tensor("test")[:N_EVAL]
    fresh = load_dataset(dataset, options={"seed": 99}).tensor("train")[:N_EVAL]
    mean, cov = train.mean(0), torch.cov(train.T)
    gauss = torch.distributions.MultivariateNormal(mean, cov)
    torch.manual_seed(0)
    g = gauss.sample((N_EVAL,))
    out = {
        "floor": energy_distance(fresh, test),
        "gauss": energy_distance(g, test),
        "gauss_ll": gauss.log_prob(test[:LL_POINTS]).mean().item(),
        "data": test.numpy().tolist(),
        "gauss_samples": g.numpy().tolist(),
    }
    if dataset == "mog-grid":
        out["true_ll"] = mog_log_density(test[:LL_POINTS]).mean().item()
        out["data_true_logdensity"] = mog_log_density(fresh).mean().item()
        out["gauss_true_logdensity"] = mog_log_density(g).mean().item()
    return out


# --- digits -------------------------------------------------------------------------------------
def digits_dataset():
    from gm import plugins
    from gm.data import load_dataset

    try:
        plugins.get("datasets", "digits")
        return load_dataset("digits"), "gm-datasets `digits`"
    except Exception:  # noqa: BLE001 - gm-datasets not installed: the same data through scikit-learn
        import torch
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        from gm.data import DataInfo, Dataset

        bunch = load_digits()
        images = np.round(bunch.images / 16 * 255).astype(np.uint8)[:, None]
        tr, te = train_test_split(images, test_size=540, random_state=0, stratify=bunch.target)
        info = DataInfo("digits", "image", (1, 8, 8))
        return Dataset(
            info, {"train": torch.from_numpy(tr), "test": torch.from_numpy(te)}
        ), "sklearn.datasets.load_digits"


def digits_job(args: tuple) -> dict:
    import torch

    torch.set_num_threads(1)
    from gm import pictures
    from gm.engine import build_config, seed_everything
    from gm_walkback import figures, masks
    from gm_walkback.walkback import WalkbackEvaluateOptions, WalkbackSampleOptions

    s, _tmp = args
    data, source = digits_dataset()
    cls, cfg = build_config("walkback", data.info, overrides={"steps": s["digits_steps"]})
    seed_everything(0)
    trainer = cls(cfg, data.info, "cpu")
    batches = data.batches("train", cfg.batch_size, seed=0)
    start = time.perf_counter()
    trainer.train(True)
    for _ in range(cfg.steps):
        trainer.training_step(next(batches))
    train_s = time.perf_counter() - start
    trainer.train(False)
    out = {
        "source": source,
        "train_s": train_s,
        "config": {
            k: getattr(cfg, k)
            for k in (
                "hidden",
                "depth",
                "norm",
                "per_step_norm",
                "batch_size",
                "lr",
                "n_max",
                "max_levels",
            )
        },
        "steps": s["digits_steps"],
        "heat": trainer.heat,
    }
    torch.manual_seed(0)
    with torch.no_grad():
        samples = trainer.sample(64, WalkbackSampleOptions(mean=True))
        pictures.image_grid(samples, nrow=16, scale=4).save(OUT / "digits-samples.png")
        draws = trainer.sample(64, WalkbackSampleOptions())
        pictures.image_grid(draws, nrow=16, scale=4).save(OUT / "digits-samples-draws.png")
        chain = trainer.sample(8, WalkbackSampleOptions(chain_every=1, extra_steps=4))
        figures.chain_strip(chain[1], data.info, 1).save(OUT / "digits-chain.png")
        long = trainer.sample(32, WalkbackSampleOptions(extra_steps=1000, mean=True))
        pictures.image_grid(long, nrow=16, scale=4).save(OUT / "digits-samples-1000-extra.png")
        metrics = trainer.evaluate(
            data, "test", WalkbackEvaluateOptions(trajectories=100, examples=540)
        )
        out.update(metrics)
        # inpainting: known entries clamped at every step; RMSE on the unknown pixels
        test = data.tensor("test")
        mean_img = data.tensor("train").mean(0)
        out["inpaint"] = {}
        for spec in ("bottom-half", "mar:4", "mcar:0.5"):
            known = masks.make(
                spec, len(test), (1, 8, 8), image=True, generator=torch.Generator().manual_seed(0)
            )
            torch.manual_seed(0)
            filled = trainer.inpaint(test, known)
            miss = ~known
            rmse = (filled - test)[miss].pow(2).mean().sqrt().item()
            mean_rmse = (mean_img.expand_as(test) - test)[miss].pow(2).mean().sqrt().item()
            from sklearn.impute import KNNImputer

            flat = test.reshape(len(test), -1).numpy().copy()
            flat[miss.reshape(len(test), -1).numpy()] = np.nan
            knn = KNNImputer(n_neighbors=10, weights="distance").fit(
                data.tensor("train").reshape(-1, 64).numpy()
            )
            knn_fill = torch.from_numpy(knn.transform(flat)).float().reshape_as(test)
            knn_rmse = (knn_fill - test)[miss].pow(2).mean().sqrt().item()
            out["inpaint"][spec] = {"walkback": rmse, "mean": mean_rmse, "knn10": knn_rmse}
            shown = torch.where(known, test, torch.full_like(test, 0.5))[:12]
            grid = torch.cat([shown, filled[:12], test[:12]])
            pictures.image_grid(grid, nrow=12, scale=4).save(
                OUT / f"digits-inpaint-{spec.replace(':', '')}.png"
            )
        # the trivial baseline: a full-covariance Gaussian fitted to the dequantised training set
        g = torch.Generator().manual_seed(0)
        xtr = (
            (data.raw("train").float() + torch.rand(data.raw("train").shape, generator=g)) / 256
        ).reshape(-1, 64)
        xte = (
            (data.raw("test").float() + torch.rand(data.raw("test").shape, generator=g)) / 256
        ).reshape(-1, 64)
        gauss = torch.distributions.MultivariateNormal(
            xtr.mean(0).double(), torch.cov(xtr.T.double())
        )
        ll = gauss.log_prob(xte.double()).mean().item()
        out["gauss_bits_per_dim"] = -(ll - 64 * math.log(256)) / (64 * math.log(2))
    return out


# --- the page -----------------------------------------------------------------------------------
def mean_std(values: list[float]) -> str:
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.4f} ± {a.std(ddof=1):.4f}" if len(a) > 1 else f"{a.mean():.4f}"


def figure_toys(results: list[dict], base: dict) -> None:
    import torch
    from PIL import Image, ImageDraw

    from gm import pictures

    cols = [
        ("data (held out)", None),
        ("Gaussian fit", "gauss"),
        ("VW, 30 steps", "vw"),
        ("VW, +5000 steps at T=1", "vw-long"),
        ("NET, 1000 steps", "net1000"),
        ("NET, 30 steps", "net30"),
    ]
    size = 220
    img = Image.new("RGB", (size * len(cols), (size + 20) * len(TOYS)), "white")
    draw = ImageDraw.Draw(img)
    for r, ds in enumerate(TOYS):
        ref = torch.tensor(base[ds]["data"])
        lo, hi = ref.min(0).values - 0.5, ref.max(0).values + 0.5
        span = float((hi - lo).max())
        mid = (lo + hi) / 2
        bounds = (
            float(mid[0]) - span / 2,
            float(mid[0]) + span / 2,
            float(mid[1]) - span / 2,
            float(mid[1]) + span / 2,
        )
        for c, (title, key) in enumerate(cols):
            if key is None:
                pts = ref
            elif key == "gauss":
                pts = torch.tensor(base[ds]["gauss_samples"])
            else:
                model = "vw" if key == "vw-long" else key
                res = next(
                    x
                    for x in results
                    if x["dataset"] == ds and x["model"] == model and x["seed"] == 0
                )
                pts = torch.tensor(res["long_samples"] if key == "vw-long" else res["samples"])
            img.paste(
                pictures.scatter(pts, size=size, bounds=bounds), (c * size, r * (size + 20) + 20)
            )
            draw.text((c * size + 4, r * (size + 20) + 4), f"{ds}: {title}", fill=(0, 0, 0))
    img.save(OUT / "toys.png")


LONG_BOUND = 2.0  # the long-chain claim checked: ED(+5000) <= 2 x ED(30 steps)


def long_ed(r: dict, k: int) -> float:
    return r["long"][k] if k in r["long"] else r["long"][str(k)]  # JSON turns keys into strings


def reading(rows) -> str:
    """One computed sentence per comparison, so the prose never disagrees with the table."""
    parts = []
    for other, label in (("net1000", "NET with 1000 steps"), ("net30", "NET with 30 steps")):
        better = []
        for ds in TOYS:
            vw = np.array([r["energy_distance"] for r in rows(ds, "vw")])
            net = np.array([r["energy_distance"] for r in rows(ds, other)])
            se = math.sqrt(vw.var(ddof=1) / len(vw) + net.var(ddof=1) / len(net))
            diff = vw.mean() - net.mean()
            verdict = (
                "lower" if diff < -2 * se else "higher" if diff > 2 * se else "within 2 s.e. of"
            )
            better.append(f"{ds}: {verdict}")
        parts.append(f"against {label} ({'; '.join(better)})")
    return (
        "Reading: Variational Walkback's energy distance with 30 steps is, per dataset, "
        + ", and ".join(parts)
        + " (difference of seed means against twice its standard error)."
    )


def write_page(
    s: dict, results: list[dict], base: dict, digits: dict, wall: float, machine: str
) -> None:
    def rows(ds: str, model: str) -> list[dict]:
        return [r for r in results if r["dataset"] == ds and r["model"] == model]

    names = {
        "vw": "Variational Walkback",
        "net1000": "NET diffusion, 1000 steps",
        "net30": "NET diffusion, 30 steps",
    }
    lines = [
        "# Variational Walkback: results",
        "",
        f"Regenerate with `python docs/results/make_walkback.py` ({wall / 60:.1f} min here). {machine}.",
        "",
        "Sizes are far below the paper's: CPU only, a shared 2-core machine, minutes not days. "
        f"Every toy model is an MLP 2-{s['hidden']}-{s['hidden']} (leaky ReLU 0.02; the paper's toy net is "
        f"2-4096-4096); Adam; batch 256. Walkback uses the paper's toy setup: the appendix schedule, "
        f"K = {s['walk_steps']} steps, T_t = 1.1^(t-1), online updates, lr 1e-4, {s['vw_steps']} minibatches = "
        f"{s['updates']} parameter updates. The NET baseline (fixed forward diffusion, NET's beta schedule, "
        f"learned reverse, same MLP with per-step affines on 10 temporal basis functions, lr 1e-3) gets the "
        f"same {s['updates']} parameter updates (one per minibatch). Seeds {', '.join(map(str, SEEDS))}; "
        "mean ± std over seeds.",
        "",
        "## 1. 2-D toys: 30 walkback steps against 1000 diffusion steps",
        "",
        f"Energy distance (`cdist`, V-statistic) between {N_EVAL} samples and {N_EVAL} held-out points; "
        "lower is better. Noise floor: fresh data against the held-out data. Training seconds on this "
        "machine (shared, so only roughly comparable).",
        "",
        "| dataset | model | sampling steps | energy distance | train s |",
        "|---|---|---|---|---|",
    ]
    for ds in TOYS:
        b = base[ds]
        lines.append(f"| {ds} | noise floor (fresh data) | – | {b['floor']:.4f} | – |")
        lines.append(f"| {ds} | Gaussian fit | – | {b['gauss']:.4f} | – |")
        for m in ("vw", "net1000", "net30"):
            rs = rows(ds, m)
            lines.append(
                f"| {ds} | {names[m]} | {rs[0]['sampling_steps']} | "
                f"{mean_std([r['energy_distance'] for r in rs])} | {np.mean([r['train_s'] for r in rs]):.0f} |"
            )
    lines += ["", reading(rows)]
    lines += [
        "",
        "![samples](walkback/toys.png)",
        "",
        "Samples (seed 0) over the held-out data's range. The column '+5000 steps' continues the walkback "
        "chains at T = 1 (section 2).",
        "",
        "### Log-likelihood on the 3x3 mixture of Gaussians (true density known)",
        "",
        f"IS log-likelihood (Eq. 10, M = {LL_TRAJ} trajectories) and the variational bound (Eq. 5; the mean "
        f"single-trajectory weight) of the first {LL_POINTS} held-out points, nats per point; the true "
        "log-density of the same points is the ceiling. 'Sample log-density' is the true MoG log-density "
        f"of {N_EVAL} generated points (of fresh data for the data row): it is low when samples fall between "
        "the modes.",
        "",
        "| model | IS log-likelihood | lower bound | sample log-density |",
        "|---|---|---|---|",
    ]
    b = base["mog-grid"]
    lines.append(f"| true density | {b['true_ll']:.3f} | – | {b['data_true_logdensity']:.3f} |")
    lines.append(f"| Gaussian fit | {b['gauss_ll']:.3f} | – | {b['gauss_true_logdensity']:.3f} |")
    for m in ("vw", "net1000", "net30"):
        rs = rows("mog-grid", m)
        lines.append(
            f"| {names[m]} | {mean_std([r['log_likelihood'] for r in rs])} | "
            f"{mean_std([r['lower_bound'] for r in rs])} | {mean_std([r['sample_true_logdensity'] for r in rs])} |"
        )
    lines += [
        "",
        "## 2. Long chains at T = 1",
        "",
        f"{s['long_chains']} of the walkback chains above continue at T = 1 (the level-0 operator) after their "
        "30 steps; energy distance to the held-out data after that many extra steps (mean ± std over seeds; "
        "with 500 chains the 30-step column is noisier than section 1's 2000-sample figure).",
        "",
        "| dataset | 30 steps | +100 | +1000 | +5000 |",
        "|---|---|---|---|---|",
    ]
    for ds in TOYS:
        rs = rows(ds, "vw")
        cells = [mean_std([long_ed(r, k) for r in rs]) for k in (0, *LONG)]
        lines.append(f"| {ds} | " + " | ".join(cells) + " |")
    held = [
        ds
        for ds in TOYS
        if np.mean([long_ed(r, LONG[-1]) for r in rows(ds, "vw")])
        <= LONG_BOUND * np.mean([long_ed(r, 0) for r in rows(ds, "vw")])
    ]
    lines += [
        "",
        f"Stated bound: after +{LONG[-1]} steps the energy distance stays within {LONG_BOUND}x that of the "
        f"30-step samples. It holds on: {', '.join(held) or 'none of the three toys'} at this size.",
        "",
        "The samples stay on the data manifold (see the '+5000' column of the figure above), but on the "
        "swiss roll and the circle the mass drifts along it: at T = 1 the operator's noise is small against "
        "the manifold's length, and a small tangential bias of the mean, which the walkback loss barely "
        "penalises over walks of 30 steps, accumulates over thousands of steps.",
    ]
    lines += [
        "",
        "## 3. Reversibility (Appendix H)",
        "",
        "A chain at T = 1 after 100 burn-in steps, 500 measured steps, 256 chains: the mean of "
        "`log p(s_{t+1}|s_t) - log p(s_t|s_{t+1})` (the entropy production per step, zero for a chain in "
        "detailed balance) divided by the magnitude of the per-step entropy estimate `-log p(s_{t+1}|s_t)` "
        "(differential entropy for these continuous chains; the paper reports 3.6% on MNIST).",
        "",
        "| data | ratio | entropy production (nats/step) | step entropy (nats) |",
        "|---|---|---|---|",
    ]
    for ds in TOYS:
        rs = rows(ds, "vw")
        lines.append(
            f"| {ds} | {mean_std([100 * r['reversibility'] for r in rs])} % | "
            f"{mean_std([r['entropy_production'] for r in rs])} | {mean_std([r['step_entropy'] for r in rs])} |"
        )
    d = digits
    lines.append(
        f"| digits (seed 0) | {100 * d['reversibility']:.2f} % | {d['entropy_production']:.3f} | "
        f"{d['step_entropy']:.3f} |"
    )
    c = d["config"]
    lines += [
        "",
        "## 4. Real images without download: 8x8 digits",
        "",
        f"Data: {d['source']} (1257 train / 540 test, 8-bit, dequantised (k + U)/256). Model: the default "
        f"image setup for small images, the paper's MNIST MLP 64-{c['hidden']}-{c['hidden']} with per-step "
        f"batch norm, Gaussian operator, Algorithm 1 (doubling schedule, N1 = {c['n_max']}, Tmax from the "
        f"running variances: H = {d['heat']} heated levels), online updates, batch {c['batch_size']}, lr "
        f"{c['lr']}, {d['steps']} minibatches ({d['train_s']:.0f} s), one seed.",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| lower bound (Eq. 5), nats | {d['lower_bound']:.1f} |",
        f"| IS log-likelihood (Eq. 10, M = 100), nats | {d['log_likelihood']:.1f} |",
        f"| bits/dim (IS) | {d['bits_per_dim']:.3f} |",
        f"| bits/dim (bound) | {d['bound_bits_per_dim']:.3f} |",
        f"| bits/dim, full-covariance Gaussian fit (baseline) | {d['gauss_bits_per_dim']:.3f} |",
        "| bits/dim, uniform over 256 levels | 8.000 |",
        "",
        "Samples (the last step's mean after cooling; draws in `walkback/digits-samples-draws.png`):",
        "",
        "![digits samples](walkback/digits-samples.png)",
        "",
        "After 1000 extra steps at T = 1:",
        "",
        "![digits long chain](walkback/digits-samples-1000-extra.png)",
        "",
        "One chain per row from p* (left) through cooling to T = 1 and 4 extra steps:",
        "",
        "![digits chain](walkback/digits-chain.png)",
        "",
        "### Inpainting (known pixels clamped at every step)",
        "",
        "RMSE on the unknown pixels of all 540 test digits, against the per-pixel training mean and "
        "scikit-learn's KNNImputer (k = 10, distance weights) fitted on the training set.",
        "",
        "| mask | walkback | mean imputer | KNN (k = 10) |",
        "|---|---|---|---|",
    ]
    for spec, r in d["inpaint"].items():
        lines.append(f"| {spec} | {r['walkback']:.4f} | {r['mean']:.4f} | {r['knn10']:.4f} |")
    lines += [""]
    for spec in d["inpaint"]:
        lines += [
            f"{spec} (rows: known part, walkback, original):",
            "",
            f"![inpainting {spec}](walkback/digits-inpaint-{spec.replace(':', '')}.png)",
            "",
        ]
    PAGE.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the script runs")
    parser.add_argument(
        "--page-only",
        action="store_true",
        help="rewrite the page from walkback/results.json (no training)",
    )
    args = parser.parse_args()
    if args.page_only:
        saved = json.loads((OUT / "results.json").read_text())
        sys.path.insert(0, str(ROOT / "bench"))
        import _report

        base = {ds: baselines(ds) for ds in TOYS}
        write_page(
            saved["settings"],
            saved["toys"],
            base,
            saved["digits"],
            saved.get("wall_s", 0.0),
            saved.get("machine") or _report.machine(),
        )
        return
    s = settings(args.quick)
    import torch

    torch.set_num_threads(1)  # every worker uses one thread too
    OUT.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [
            (ds, m, seed, s, tmp)
            for m in ("vw", "net1000", "net30")
            for ds in TOYS
            for seed in SEEDS
        ]
        with mp.get_context("spawn").Pool(args.workers) as pool:
            digits_async = pool.apply_async(digits_job, ((s, tmp),))
            results = []
            for r in pool.imap_unordered(toy_job, jobs):
                print(
                    f"{r['dataset']:10s} {r['model']:8s} seed {r['seed']}: ED {r['energy_distance']:.4f} "
                    f"({r['train_s']:.0f} s)",
                    flush=True,
                )
                results.append(r)
            digits = digits_async.get()
    base = {ds: baselines(ds) for ds in TOYS}
    figure_toys(results, base)
    sys.path.insert(0, str(ROOT / "bench"))
    import _report

    wall = time.perf_counter() - start
    write_page(s, results, base, digits, wall, _report.machine())
    slim = [{k: v for k, v in r.items() if k not in ("samples", "long_samples")} for r in results]
    (OUT / "results.json").write_text(
        json.dumps(
            {
                "settings": s,
                "wall_s": wall,
                "machine": _report.machine(),
                "toys": slim,
                "digits": digits,
                "baselines": {
                    k: {kk: vv for kk, vv in v.items() if kk not in ("data", "gauss_samples")}
                    for k, v in base.items()
                },
            },
            indent=1,
            default=float,
        )
        + "\n"
    )
    print(f"wrote {PAGE} in {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
