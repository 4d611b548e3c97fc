"""Walkback throughput: training updates/s and sampling-chain steps/s, eager vs torch.compile,
measured in one run (the ratio is the claim; absolute CPU times mean little).

    python bench/bench_walkback.py [--threads 1] [--quick]

Fast path: the sampling chain of the paper's CelebA conv operator (default_config for a
(3, 64, 64) DataInfo: conv 64-128-256, 5 FC layers of 1024, per-step batch norm) at batch 64,
the plain eager loop (chains.run_chain under no_grad) against chains.FastChain with its
switches "auto" (the `gm sample` default: inference mode + channels-last; compile and a CUDA
graph on CUDA) and with compile "on" (`gm sample --fast on`, what a long CPU chain asks for).

Chains: s -> s' ~ p_T(.|s) repeated with fixed shapes and no host sync; FastChain with only
compile on (its heads through gm.fastpath.FastStep, the level as a device tensor, so one graph
serves every step of the walk) against FastChain with every switch off. Training: one
Algorithm-1 minibatch (K online updates) with the operator's modules compiled
(Trainer.compile) against eager.
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

from gm.build import resolve  # noqa: E402
from gm.data import DataInfo, Dataset  # noqa: E402
from gm_walkback import chains, schedules  # noqa: E402
from gm_walkback.operators import GaussianConv, GaussianMLP  # noqa: E402
from gm_walkback.walkback import build_operator  # noqa: E402


def chain_case(name, op, state, walk, repeat):
    op.eval()
    rows = []
    off = {"channels_last": "off", "cuda_graph": "off"}
    eager = chains.FastChain(op, compile="off", **off)
    compiled = chains.FastChain(op, compile="on", **off)
    with torch.no_grad():
        start = time.perf_counter()
        compiled.run(state, walk)  # compile
        compile_s = time.perf_counter() - start
        for label, chain in (("eager", eager), ("compiled", compiled)):
            sec = _report.timeit(
                lambda chain=chain: chain.run(state, walk), repeat=repeat, warmup=1
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
    """The plain eager loop against chains.FastChain with its defaults ("auto") and with
    compile "on" (what a long CPU chain asks for; "auto" on CUDA already compiles); setup =
    the first call (compile, CUDA-graph capture). The per-step rate of a long chain is that
    of the same compiled step, timed on ``walk``; on CUDA a real 100 000-step chain is timed
    too (issue 7: < 10 minutes)."""
    op.eval()
    cuda = state.device.type == "cuda"
    chains_by_label = {
        "fast, auto" + ("" if cuda else " (no compile on CPU)"): chains.FastChain(op),
        "fast, compile on": chains.FastChain(op, compile="on"),
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
        cls, cfg = resolve(model, info, overrides=overrides)
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
            trainer.step = len(updates) + 1  # as the engine sets it: updates done
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
    cfg = resolve("walkback", celeba, device)[1]
    fast_rows = fast_case(
        "CelebA-size conv (paper Table 5), per-step batch norm",
        build_operator(cfg, celeba).to(device),
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
        "Sampling chain, fast path (`chains.FastChain`, `gm sample --fast auto|on`) "
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
        + '\n\nThe fast path is inference mode + channels-last convs ("auto" on CPU and '
        'CUDA), + torch.compile of the operator\'s heads ("auto": CUDA only; "on" asks for '
        "it on CPU), + a CUDA graph per step on CUDA. Setup: the first call (compile / "
        "capture). The projection for "
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
        "ratios near 1 as 'no measurable difference'. On CPU compiling the chain costs 15-140 "
        "steps' worth (seconds to tens of seconds) and is repaid only on chains of thousands of "
        "steps, so `gm sample` compiles there only when asked (`--fast on`)."
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
