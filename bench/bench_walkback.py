"""Walkback throughput: training updates/s and sampling-chain steps/s, eager vs torch.compile,
measured in one run (the ratio is the claim; absolute CPU times mean little).

    python bench/bench_walkback.py [--threads 1] [--quick]

Fast path: the sampling chain of the paper's CelebA conv operator (default_config for a
(3, 64, 64) DataInfo: conv 64-128-256, 5 FC layers of 1024, per-step batch norm) at batch 64,
the plain eager loop (chains.run_chain under no_grad) against chains.FastChain (the
`gm sample --fast` default: inference mode + channels-last; compile for long chains and on
CUDA; a CUDA graph on CUDA) as it runs a short and a long chain.

Chains: s -> s' ~ p_T(.|s) repeated with fixed shapes and no host sync; the compiled step
(gm_walkback.chains.compiled_step) takes the temperature and level as device tensors, so
one graph serves every step of the walk. Training: one Algorithm-1 minibatch (K online
updates) with the operator's modules compiled (Trainer.compile) against eager.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report  # noqa: E402
import torch  # noqa: E402

from gm.data import DataInfo, Dataset  # noqa: E402
from gm.engine import build_config  # noqa: E402
from gm_walkback import chains, schedules  # noqa: E402
from gm_walkback.operators import GaussianConv, GaussianMLP, build_operator  # noqa: E402
from gm_walkback.walkback import WalkbackTrainer  # noqa: E402


def chain_case(name, op, state, walk, repeat):
    op.eval()
    rows = []
    compiled = chains.compiled_step()
    with torch.no_grad():
        start = time.perf_counter()
        chains.run_chain(op, state, walk, step=compiled)  # compile
        compile_s = time.perf_counter() - start
        for label, step in (("eager", chains.chain_step), ("compiled", compiled)):
            sec = _report.timeit(
                lambda step=step: chains.run_chain(op, state, walk, step=step),
                repeat=repeat,
                warmup=1,
            )
            rows.append(
                {
                    "what": f"chain: {name}",
                    "mode": label,
                    "steps/s": len(walk) / sec,
                    "batch": len(state),
                    "compile s": compile_s if label == "compiled" else 0.0,
                }
            )
    return rows


def fast_case(name, op, state, walk, repeat, sync=lambda: None):
    """The plain eager loop against chains.FastChain as it runs a short chain (the cooling
    walk) and as it runs a long one (compile on: the default from chains.LONG_CHAIN steps
    on CPU, and for every chain on CUDA); setup = the first call (compile, CUDA-graph
    capture). The per-step rate of a long chain is that of the same compiled step, timed
    on ``walk``; on CUDA a real 100 000-step chain is timed too (issue 7: < 10 minutes)."""
    op.eval()
    cuda = state.device.type == "cuda"
    chains_by_label = {
        "fast, short chain" + ("" if cuda else " (no compile)"): chains.FastChain(op),
        f"fast, chain of >= {chains.LONG_CHAIN} steps (compile)": chains.FastChain(
            op, compile=True
        ),
    }

    def plain():
        with torch.no_grad():
            chains.run_chain(op, state, walk)

    def first_call(fn):
        start = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - start

    setups = {k: first_call(lambda c=c: c.run(state, walk)) for k, c in chains_by_label.items()}
    eager = _report.timeit(plain, repeat=repeat, warmup=1, sync=sync)
    rows = []
    for label, chain in chains_by_label.items():
        sec = _report.timeit(lambda c=chain: c.run(state, walk), repeat=repeat, warmup=1, sync=sync)
        rows.append(
            {
                "what": f"chain: {name}",
                "fast path": label,
                "batch": len(state),
                "eager steps/s": len(walk) / eager,
                "fast steps/s": len(walk) / sec,
                "speed-up": eager / sec,
                "setup s": setups[label],
                "100k steps, projected min": (setups[label] + 100_000 * sec / len(walk)) / 60,
            }
        )
    if cuda:  # the paper's long chain, for real
        long_walk = schedules.Walk((1.0,) * 100_000, (0,) * 100_000)
        chain = chains.FastChain(op)
        minutes = first_call(lambda: chain.run(state, long_walk)) / 60
        rows[-1]["100k steps, measured min"] = minutes
    return rows


def train_case(name, model, info, data, overrides, repeat):
    rows = []
    for label in ("eager", "compiled"):
        cls, cfg = build_config(model, info, overrides=overrides)
        torch.manual_seed(0)
        trainer = cls(cfg, info, "cpu")
        if label == "compiled":
            trainer.compile()
        batches = data.batches("train", cfg.batch_size)
        start = time.perf_counter()
        trainer.training_step(next(batches))  # compile (and the Tmax estimate)
        first = time.perf_counter() - start
        updates = []

        def step(trainer=trainer, batches=batches, updates=updates):
            updates.append(float(trainer.training_step(next(batches)).get("walk_steps", 1.0)))

        sec = _report.timeit(step, repeat=repeat, warmup=1)
        k = sum(updates) / len(updates)
        rows.append(
            {
                "what": f"train: {name}",
                "mode": label,
                "steps/s": 1 / sec,
                "updates/s": k / sec,
                "batch": cfg.batch_size,
                "compile s": first if label == "compiled" else 0.0,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    repeat = 2 if args.quick else 5
    torch.manual_seed(0)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    celeba = DataInfo("celeba-size", "image", (3, 64, 64))
    cfg = WalkbackTrainer.default_config(celeba)
    fast_rows = fast_case(
        "CelebA-size conv (paper Table 5), per-step batch norm",
        build_operator(cfg, celeba.shape, cfg.max_levels).to(device),
        torch.rand(64, *celeba.shape, device=device),
        schedules.doubling(4).reverse(extra_steps=4),  # 8 steps over 4 levels
        repeat,
        sync,
    )

    rows = []
    walk = schedules.doubling(10).reverse(extra_steps=90)  # 100 steps
    rows += chain_case(
        "2-D toy, MLP 2-256-256", GaussianMLP((2,), hidden=256), torch.randn(2000, 2), walk, repeat
    )
    rows += chain_case(
        "8x8 images, MLP 64-1200-1200, per-step batch norm",
        GaussianMLP((1, 8, 8), hidden=1200, norm="batch", levels=16, per_step=True),
        torch.rand(256, 1, 8, 8),
        walk,
        repeat,
    )
    conv = GaussianConv(
        (1, 28, 28),
        channels=(16, 32),
        fc_layers=5,
        fc_width=1024,
        norm="layer",
        levels=16,
        per_step=True,
    )
    rows += chain_case(
        "MNIST-size conv (paper Table 2)",
        conv,
        torch.rand(64, 1, 28, 28),
        schedules.doubling(10).reverse(extra_steps=10),
        repeat,
    )

    g = torch.Generator().manual_seed(0)
    toy = Dataset(
        DataInfo("bench-toy", "vector", (2,)), {"train": torch.randn(4096, 2, generator=g)}
    )
    rows += train_case(
        "walkback 2-D, MLP 2-256-256, K = 10 + n",
        "walkback",
        toy.info,
        toy,
        {"hidden": 256, "tmax": 1000.0, "n_max": 0},
        repeat,
    )
    rows += train_case(
        "diffusion 2-D, MLP 2-256-256", "diffusion", toy.info, toy, {"hidden": 256}, repeat
    )

    for r in rows:
        r.setdefault("updates/s", r["steps/s"] if r["what"].startswith("train") else 0.0)
    ratio_rows = []
    for i in range(0, len(rows), 2):
        eager, comp = rows[i], rows[i + 1]
        ratio_rows.append(
            {
                "what": eager["what"],
                "batch": eager["batch"],
                "eager steps/s": eager["steps/s"],
                "compiled steps/s": comp["steps/s"],
                "speed-up": comp["steps/s"] / eager["steps/s"],
                "compile s": comp["compile s"],
            }
        )
    body = (
        "Sampling chain, fast path (`chains.FastChain`, the `gm sample --fast` default) "
        "against the plain eager loop, same run:\n\n"
        + _report.table(
            fast_rows,
            [
                "what",
                "fast path",
                "batch",
                "eager steps/s",
                "fast steps/s",
                "speed-up",
                "setup s",
                "100k steps, projected min",
            ]
            + (["100k steps, measured min"] if "100k steps, measured min" in fast_rows[-1] else []),
        )
        + "\n\nThe fast path is inference mode + channels-last convs, + torch.compile for "
        f"chains of >= {chains.LONG_CHAIN} steps on CPU and for every chain on CUDA, + a CUDA "
        "graph per step on CUDA. Setup: the first call (compile / capture). The projection for "
        "the paper's 100 000-step chain of 64 samples is setup + 100 000 / (fast steps/s). "
        "Eager vs compiled step, and training:\n\n"
        + _report.table(
            ratio_rows,
            ["what", "batch", "eager steps/s", "compiled steps/s", "speed-up", "compile s"],
        )
        + "\n\nChain rows: steps of the sampling chain per second (each step moves the whole batch). "
        "Train rows: Algorithm-1 minibatches per second (walkback: K = 10 online updates each; "
        "diffusion: one update). Median of "
        f"{repeat} timed repeats after a warm-up; torch.compile's one-off compile time shown apart. "
        "On this shared CPU, repeated runs of the same row have differed by up to 1.6x; read CPU "
        "ratios near 1 as 'no measurable difference'. On CPU the sampling chain compiles by "
        f"default only from {chains.LONG_CHAIN} steps, where its compile is repaid."
    )
    _report.write_section(
        "walkback",
        "Walkback: training and sampling-chain throughput, eager vs compiled",
        "python bench/bench_walkback.py",
        body,
        {"rows": rows, "fast_rows": fast_rows},
    )
    print(body)


if __name__ == "__main__":
    main()
