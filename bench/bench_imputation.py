"""Imputation throughput: a trained gpsi-add against scikit-learn's KNNImputer and
IterativeImputer on the same data, in one run.

    python bench/bench_imputation.py

Data: the 8x8 digits (1,257 train / 540 test, values in [0, 1]); the test rows are repeated
to make larger sets. Mask: MCAR 0.5 (the same missing entries for every method). Each method
is fitted once on the complete training rows (gpsi-add: 300 training steps, enough to time
it, not to rank its accuracy; see docs/results/imputation.md for that); the timed part is
imputing the masked test rows with the fitted model. One thread everywhere.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import time  # noqa: E402

import _report  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


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

    from gm.engine import build_config, seed_everything
    from gm_imputation import masks

    data = digits()
    train = data.tensor("train").reshape(-1, 64)
    test = data.tensor("test").reshape(-1, 64)

    cls, cfg = build_config(
        "gpsi-add", data.info, overrides={"mask": "mcar:0.5", "batch_size": 100}
    )
    seed_everything(0)
    gpsi = cls(cfg, data.info)
    batches = data.batches("train", cfg.batch_size)
    start = time.perf_counter()
    for _ in range(300):
        gpsi.training_step(next(batches))
    fit_s = {"gpsi-add (300 steps)": time.perf_counter() - start}
    gpsi.train(False)
    start = time.perf_counter()
    knn = KNNImputer(n_neighbors=10, weights="distance").fit(train.double().numpy())
    fit_s["KNNImputer(k=10)"] = time.perf_counter() - start
    start = time.perf_counter()
    iterative = IterativeImputer(max_iter=10, random_state=0).fit(train.double().numpy())
    fit_s["IterativeImputer(BayesianRidge)"] = time.perf_counter() - start

    rows, data_out = [], {"fit_s": fit_s, "sizes": {}}
    for reps in (1, 10):
        x = test.repeat(reps, 1)
        missing = masks.parse("mcar:0.5").sample(
            len(x), (1, 8, 8), modality="image", generator=torch.Generator().manual_seed(0)
        )
        missing = missing.reshape(len(x), 64)
        x_nan = x.masked_fill(missing, float("nan"))
        x_np = x_nan.double().numpy()
        n_missing = int(missing.sum())
        timings = {
            "gpsi-add (6 steps, 1 sample)": lambda x_nan=x_nan: gpsi.impute(x_nan, 1),
            "gpsi-add (6 steps, 10 samples)": lambda x_nan=x_nan: gpsi.impute(x_nan, 10),
            "KNNImputer(k=10)": lambda x_np=x_np: knn.transform(x_np),
            "IterativeImputer(BayesianRidge)": lambda x_np=x_np: iterative.transform(x_np),
        }
        secs = {name: _report.timeit(fn, repeat=5, warmup=1) for name, fn in timings.items()}
        base = secs["gpsi-add (6 steps, 1 sample)"]
        for name, s in secs.items():
            rows.append(
                {
                    "rows": len(x),
                    "method": name,
                    "seconds": s,
                    "values/s": n_missing / s,
                    "gpsi-add(1) speed-up": s / base,
                }
            )
        data_out["sizes"][len(x)] = {"n_missing": n_missing, "seconds": secs}

    body = (
        "Digits 8x8, MCAR 0.5, test rows repeated; the timed part imputes the masked "
        "rows with an already fitted model (median of 5). Fit times, for context: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in fit_s.items())
        + ". The last column is "
        "each method's time divided by gpsi-add's (1 sample): above 1, gpsi-add is faster."
        "\n\n"
        + _report.table(rows, ["rows", "method", "seconds", "values/s", "gpsi-add(1) speed-up"])
    )
    _report.write_section(
        "imputation",
        "Imputation throughput: gpsi-add vs scikit-learn",
        "python bench/bench_imputation.py",
        body,
        data_out,
    )
    print(body)


if __name__ == "__main__":
    main()
