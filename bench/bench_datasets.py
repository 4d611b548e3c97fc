"""Cached uint8 tensor batches vs decoding the Arrow/parquet source every epoch.

One run, same data, same batch size, one thread: (a) gm-datasets' way — decode the
parquet file once into the cache, hold the split as one uint8 tensor and batch it with
``randperm`` (``gm.data.Dataset.batches``); (b) the usual ``datasets`` way — the split as an
Arrow table (``load_dataset("parquet")``, memory-mapped) formatted as torch, shuffled and
iterated each epoch, which decodes every PNG again. The data is a synthetic parquet file
in MNIST's Hub schema (28x28 PNGs + ClassLabel), so it runs anywhere in about a minute.

    python bench/bench_datasets.py [--n 10000] [--batch 128]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="training images")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from _report import table, timeit, write_section

    tmp = Path(tempfile.mkdtemp(prefix="gm-bench-datasets-"))
    os.environ["GM_CACHE_DIR"] = str(tmp / "cache")
    os.environ["HF_DATASETS_CACHE"] = str(tmp / "hf")
    import datasets

    datasets.disable_progress_bars()
    from gm.data import load_dataset
    from gm_datasets import fixtures

    rng = np.random.default_rng(0)
    # digit-like sparse images: a blurred random blob, so PNG sizes resemble MNIST's
    images = []
    for _ in range(args.n):
        a = np.zeros((28, 28), np.uint8)
        y, x = rng.integers(6, 22, 2)
        a[y - 5 : y + 5, x - 3 : x + 3] = rng.integers(100, 256)
        images.append(a)
    src = tmp / "mnist" / "mnist"
    fixtures.write_image_parquet(
        src / "train-00000-of-00001.parquet", images, rng.integers(0, 10, args.n)
    )
    fixtures.write_image_parquet(
        src / "test-00000-of-00001.parquet", images[:100], rng.integers(0, 10, 100)
    )

    t = time.perf_counter()
    data = load_dataset("mnist", options={"source_dir": str(tmp / "mnist")})
    decode_once = time.perf_counter() - t
    t = time.perf_counter()
    load_dataset("mnist")  # from the cache
    cache_load = time.perf_counter() - t
    per_epoch = args.n // args.batch

    def cached_epoch() -> None:
        it = data.batches("train", args.batch, seed=1)
        for _ in range(per_epoch):
            xb = next(it)
        assert xb.shape == (args.batch, 1, 28, 28) and xb.dtype == torch.float32

    arrow = datasets.load_dataset(
        "parquet", data_files={"train": [str(src / "train-00000-of-00001.parquet")]}, split="train"
    ).with_format("torch")
    epoch = [0]

    def arrow_epoch() -> None:
        epoch[0] += 1
        shuffled = arrow.shuffle(seed=epoch[0])
        for k, b in enumerate(shuffled.iter(batch_size=args.batch, drop_last_batch=True)):
            xb = b["image"].float().div_(255).reshape(-1, 1, 28, 28)
            if k + 1 == per_epoch:
                break
        assert xb.shape == (args.batch, 1, 28, 28)

    t_cached = timeit(cached_epoch, repeat=5)
    t_arrow = timeit(arrow_epoch, repeat=3)
    rows = [
        {
            "method": "cached uint8 tensor + randperm (gm-datasets)",
            "s/epoch": t_cached,
            "batches/s": per_epoch / t_cached,
            "speed-up": t_arrow / t_cached,
        },
        {
            "method": "Arrow/parquet source, decoded each epoch (datasets, torch format)",
            "s/epoch": t_arrow,
            "batches/s": per_epoch / t_arrow,
            "speed-up": 1.0,
        },
    ]
    body = (
        f"{args.n:,} synthetic 28x28 PNGs in MNIST's Hub parquet schema, batch {args.batch}, "
        f"{per_epoch} shuffled batches per epoch, 1 thread, median of 5 (cached) / 3 (Arrow) epochs.\n\n"
        + table(rows, ["method", "s/epoch", "batches/s", "speed-up"])
        + f"\n\nOne-time cost of the cache: decoding the parquet file into it took {decode_once:.2f} s "
        f"(thread pool over {os.cpu_count()} cores); loading it again from the cache {cache_load:.3f} s.\n"
    )
    print(body)
    if not args.no_write:
        write_section(
            "datasets",
            "Datasets: cached tensor vs decoding the source each epoch",
            "python bench/bench_datasets.py",
            body,
            {
                "n": args.n,
                "batch": args.batch,
                "rows": rows,
                "decode_once_s": decode_once,
                "cache_load_s": cache_load,
            },
        )


if __name__ == "__main__":
    main()
