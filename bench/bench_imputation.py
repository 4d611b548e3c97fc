"""Imputation throughput: a trained gpsi-add, eager and compiled, against scikit-learn's
KNNImputer and IterativeImputer on the same data, in one run.

    nice python bench/bench_imputation.py           # both sections
    nice python bench/bench_imputation.py --file    # only: gm impute FILE vs ExtraTrees

Data: the 8x8 digits (1,257 train / 540 test, values in [0, 1]); the test rows are repeated
to make larger sets. Mask: MCAR 0.5 (the same missing entries for every method). Each method
is fitted once on the complete training rows (gpsi-add: 1000 training steps of 100, the
settings of docs/results/imputation.md); the timed part is imputing the masked test rows
with the fitted model. gpsi-add runs its primary roll-out eagerly and compiled
(``compile="on"``: torch.compile of the whole 6-step roll-out; its one-off compile time,
per input shape, is reported apart). For context, IterativeImputer's fit_transform on the
rows being imputed (its usual transductive use) is timed too. RMSE is on the masked values,
in [0, 1] units. One thread everywhere.

Second section (``imputation-file``): the one-command use on 250 x 20 and 1,000 x 20 tables
with 20% of their cells empty: ``gm impute FILE --out FILLED`` (fit on the file, fill it;
the CLI as a subprocess, Python start-up included) beside
``IterativeImputer(ExtraTrees(100 trees), 10 rounds)``'s ``fit_transform`` on the same
holes, one run each, with the RMSE of both on the holes: gm's cost should grow with the
table (its step budget is passes over the rows), and a 1,000 x 20 file should take under
30 s on the 2-core machine.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"
# A cold compile, as a first `gm impute` gets: no graphs from inductor's on-disk caches.
os.environ["TORCHINDUCTOR_FORCE_DISABLE_CACHES"] = "1"

import time  # noqa: E402

import _report  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

TRAIN_STEPS = 1000


def digits():
    from sklearn.datasets import load_digits

    from gm.data import DataInfo, Dataset

    images = np.rint(load_digits().data * 255 / 16).astype(np.uint8).reshape(-1, 1, 8, 8)
    perm = np.random.RandomState(0).permutation(len(images))
    return Dataset(
        DataInfo("digits", "image", (1, 8, 8)),
        {
            "train": torch.from_numpy(images[perm[540:]]),
            "test": torch.from_numpy(images[perm[:540]]),
        },
    )


def main() -> None:
    torch.set_num_threads(1)
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer

    from gm import masks
    from gm.build import resolve
    from gm.engine import seed_everything

    data = digits()
    train = data.tensor("train").reshape(-1, 64)
    test = data.tensor("test").reshape(-1, 64)

    cls, cfg = resolve("gpsi-add", data.info, overrides={"mask": "mcar:0.5", "batch_size": 100})
    seed_everything(0)
    gpsi = cls(cfg, data.info)
    batches = data.batches("train", cfg.batch_size)
    start = time.perf_counter()
    for _ in range(TRAIN_STEPS):
        gpsi.training_step(next(batches))
    fit_s = {f"gpsi-add ({TRAIN_STEPS} steps)": time.perf_counter() - start}
    gpsi.train(False)
    start = time.perf_counter()
    knn = KNNImputer(n_neighbors=10, weights="distance").fit(train.double().numpy())
    fit_s["KNNImputer(k=10)"] = time.perf_counter() - start
    start = time.perf_counter()
    iterative = IterativeImputer(max_iter=10, random_state=0).fit(train.double().numpy())
    fit_s["IterativeImputer(BayesianRidge)"] = time.perf_counter() - start

    def gpsi_run(samples: int, compiled: bool):
        compile = "on" if compiled else "off"

        def run(x_nan):
            out = gpsi.impute(x_nan, samples, compile=compile, cuda_graph="off")
            return out.mean(0).numpy()  # the mean of the samples: the point imputation

        return run

    methods = {
        "gpsi-add, eager (6 steps, 1 sample)": gpsi_run(1, False),
        "gpsi-add, compiled (6 steps, 1 sample)": gpsi_run(1, True),
        "gpsi-add, eager (6 steps, 10 samples)": gpsi_run(10, False),
        "gpsi-add, compiled (6 steps, 10 samples)": gpsi_run(10, True),
        "KNNImputer(k=10)": lambda x_nan: knn.transform(x_nan.double().numpy()),
        "IterativeImputer(BayesianRidge)": lambda x_nan: iterative.transform(
            x_nan.double().numpy()
        ),
        "IterativeImputer fit_transform on these rows (context)": lambda x_nan: IterativeImputer(
            max_iter=10, random_state=0
        ).fit_transform(x_nan.double().numpy()),
    }
    base_name = "gpsi-add, eager (6 steps, 1 sample)"
    compiled_rows = set()  # roll-out shapes (rows x samples) already compiled
    rows, data_out = [], {"fit_s": fit_s, "train_steps": TRAIN_STEPS, "sizes": {}}
    for reps in (1, 10):
        x = test.repeat(reps, 1)
        missing = masks.parse("mcar:0.5").sample(
            len(x), (1, 8, 8), modality="image", generator=torch.Generator().manual_seed(0)
        )
        missing = missing.reshape(len(x), 64)
        x_nan = x.masked_fill(missing, float("nan"))
        n_missing = int(missing.sum())
        secs, rmse, compile_s = {}, {}, {}
        for name, fn in methods.items():
            start = time.perf_counter()
            filled = fn(x_nan)  # the first call: compiles the compiled roll-out's graph
            first = time.perf_counter() - start
            rmse[name] = float(
                np.sqrt(((filled - x.double().numpy())[missing.numpy()] ** 2).mean())
            )
            context = "fit_transform" in name
            secs[name] = _report.timeit(
                lambda fn=fn, x_nan=x_nan: fn(x_nan), repeat=3 if context else 5, warmup=0
            )
            if "compiled" in name:
                shape = len(x) * (10 if "10 samples" in name else 1)
                if shape not in compiled_rows:  # else its graph was compiled a row above
                    compile_s[name] = first - secs[name]
                compiled_rows.add(shape)
        base = secs[base_name]
        for name, s in secs.items():
            eager = name.replace("compiled", "eager")
            saved = secs[eager] - s if "compiled" in name else 0.0
            rows.append(
                {
                    "rows": len(x),
                    "method": name,
                    "seconds": s,
                    "values/s": n_missing / s,
                    "gpsi-add(1) speed-up": s / base,
                    "RMSE": rmse[name],
                    "compile s": compile_s.get(name, float("nan")),
                    "calls to repay": compile_s[name] / saved
                    if name in compile_s and saved > 0
                    else float("nan"),
                }
            )
        data_out["sizes"][len(x)] = {
            "n_missing": n_missing,
            "seconds": secs,
            "rmse": rmse,
            "compile_s": compile_s,
        }

    iterative_ratio = [  # values per second, gpsi-add over IterativeImputer's transform
        at["seconds"]["IterativeImputer(BayesianRidge)"] / at["seconds"][base_name]
        for at in data_out["sizes"].values()
    ]
    small = data_out["sizes"][len(test)]["rmse"]

    def versus(name: str) -> str:
        gap = small[name] - small["IterativeImputer(BayesianRidge)"]
        return f"{abs(gap):.4f} {'above' if gap > 0 else 'below'}"

    rmse_note = (
        f"at {len(test)} rows, gpsi-add's (1 sample) is {versus(base_name)} IterativeImputer's "
        f"and its 10-sample mean {versus('gpsi-add, eager (6 steps, 10 samples)')}, at this "
        f"training budget ({TRAIN_STEPS} steps; see docs/results/imputation.md); "
        "KNNImputer's is the lowest."
    )
    body = (
        "Digits 8x8, MCAR 0.5, test rows repeated; the timed part imputes the masked "
        "rows with an already fitted model (median of 5; IterativeImputer's fit_transform "
        "row, context only: median of 3). Fit times: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in fit_s.items())
        + ". `gpsi-add(1) speed-up` is each method's time divided by eager gpsi-add's "
        "(1 sample): above 1, gpsi-add is faster. `compile s` is the compiled roll-out's "
        "first call minus a later one, cold (inductor's on-disk caches off; one graph per input shape, blank where a row above "
        "compiled it; the 10-sample rows of the larger set, 54,000 roll-outs, run as 4 equal "
        "chunks, one graph for all); `calls to repay` is compile s divided by the time each "
        "later call saves. "
        "RMSE is on the same masked values for every method, [0, 1] units; gpsi-add's "
        "10-sample row scores the mean of its samples.\n\n"
        + _report.table(
            rows,
            [
                "rows",
                "method",
                "seconds",
                "values/s",
                "gpsi-add(1) speed-up",
                "RMSE",
                "compile s",
                "calls to repay",
            ],
        )
        + "\n\n**The issue's target (gpsi-add imputing >= 100x more values per second than "
        "IterativeImputer, with lower RMSE) is not met on this CPU**: eager gpsi-add (1 "
        "sample) imputes "
        + " and ".join(f"{r:.2f}x" for r in iterative_ratio)
        + " as many values per second as IterativeImputer's transform at the two sizes. A fitted IterativeImputer's "
        "transform on 64-d digits is a few passes of 64 small linear models per row, about "
        "27x fewer multiply-adds per row than gpsi-add's 6 steps of two 2x256 MLPs, and a "
        "single CPU thread is compute-bound on exactly those multiply-adds; compiling only "
        "fuses the cheap elementwise work around them. The target is for GPUs, where the "
        "roll-out is one CUDA graph replay per chunk (not measurable here: no GPU). RMSE: "
        + rmse_note
    )
    _report.write_section(
        "imputation",
        "Imputation throughput: gpsi-add vs scikit-learn",
        "python bench/bench_imputation.py",
        body,
        data_out,
    )
    print(body)


FILE_ROWS, FILE_COLS, FILE_HOLES = (250, 1000), 20, 0.2
ET_TREES, ET_ROUNDS = 100, 10


def file_table(rows: int, seed: int = 0) -> np.ndarray:
    """A rows x 20 table with structure to learn: 4 latent factors through a mild
    nonlinearity, plus noise, columns on different scales."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(rows, 4))
    w = rng.normal(size=(4, FILE_COLS))
    x = np.tanh(z @ w / 2) + 0.3 * (z @ w) + 0.2 * rng.normal(size=(rows, FILE_COLS))
    return x * rng.uniform(0.5, 50, FILE_COLS) + rng.uniform(-10, 10, FILE_COLS)


def file_fill() -> None:
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer

    rows, summaries, ratios = [], [], {}
    load_before = os.getloadavg()[0]
    for n in FILE_ROWS:
        x = file_table(n)
        hole = np.random.default_rng(1).random(x.shape) < FILE_HOLES
        holed = np.where(hole, np.nan, x)
        sd = x.std(0)

        def rmse(filled, x=x, hole=hole, sd=sd):
            return float(np.sqrt(np.mean((((filled - x) / sd)[hole]) ** 2)))

        with tempfile.TemporaryDirectory() as tmp:
            src, out = Path(tmp) / "table.csv", Path(tmp) / "filled.csv"
            header = ",".join(f"c{j}" for j in range(FILE_COLS))
            np.savetxt(src, holed, delimiter=",", header=header, comments="", fmt="%.6g")
            src.write_text(src.read_text().replace("nan", ""))
            start = time.perf_counter()
            run = subprocess.run(
                [sys.executable, "-m", "gm", "impute", str(src), "--out", str(out), "--quiet"],
                capture_output=True,
                text=True,
            )
            gm_s = time.perf_counter() - start
            if run.returncode:
                raise SystemExit(run.stderr)
            gm_filled = np.loadtxt(out, delimiter=",", skiprows=1)
            summaries.append(f"{n} rows: `{run.stdout.strip().splitlines()[-1]}`")
        est = ExtraTreesRegressor(n_estimators=ET_TREES, random_state=0, n_jobs=1)
        start = time.perf_counter()
        et_filled = IterativeImputer(
            estimator=est, max_iter=ET_ROUNDS, random_state=0
        ).fit_transform(holed)
        et_s = time.perf_counter() - start
        ratios[n] = gm_s / et_s
        rows += [
            {
                "table": f"{n:,} x {FILE_COLS}",
                "method": "gm impute FILE --out FILLED (fit + fill, CLI)",
                "seconds": round(gm_s, 1),
                "RMSE (sd units)": round(rmse(gm_filled), 4),
            },
            {
                "table": f"{n:,} x {FILE_COLS}",
                "method": f"IterativeImputer(ExtraTrees, {ET_TREES} trees, {ET_ROUNDS} rounds)",
                "seconds": round(et_s, 1),
                "RMSE (sd units)": round(rmse(et_filled), 4),
            },
        ]
        print(rows[-2:], flush=True)
    load_after = os.getloadavg()[0]
    big = max(FILE_ROWS)
    gm_big = next(r["seconds"] for r in rows if r["table"].startswith(f"{big:,}"))
    body = (
        f"Tables of {' and '.join(f'{n:,}' for n in FILE_ROWS)} rows x {FILE_COLS} columns "
        f"(4 latent factors, mildly nonlinear, columns on different scales), "
        f"{FILE_HOLES:.0%} of their cells empty; one run each, one thread, on the 2-core CPU "
        f"(1-minute load average {load_before:.1f} at the start, {load_after:.1f} at the end: "
        "other jobs share the machine, so both methods see the same load only roughly).\n\n"
        + _report.table(rows, ["table", "method", "seconds", "RMSE (sd units)"])
        + "\n\n"
        + "; ".join(
            f"{n:,} rows: gm's wall time is **{r:.2f}x** ExtraTrees'" for n, r in ratios.items()
        )
        + f". The target, a {big:,} x {FILE_COLS} file in under 30 s: "
        + ("**met**" if gm_big < 30 else f"**missed** ({gm_big:.0f} s)")
        + ". gm's own summaries: "
        + "; ".join(summaries)
    )
    _report.write_section(
        "imputation-file",
        f"gm impute on {FILE_COLS}-column files vs IterativeImputer(ExtraTrees, 100 trees)",
        "python bench/bench_imputation.py --file",
        body,
        {"rows": rows, "ratios": {str(k): v for k, v in ratios.items()}},
    )
    print(body)


if __name__ == "__main__":
    import sys

    if "--file" not in sys.argv:
        main()
    file_fill()
