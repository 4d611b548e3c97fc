#!/usr/bin/env python
"""The first GPU machine's one command: every CUDA-only test, then the GPU figures, written
to docs/benchmarks.md's GPU section with the device named (at most 8 minutes on one GPU).

    python bench/gpu.py              # on a CUDA machine (install without constraints.txt)
    python bench/gpu.py --dry-run    # anywhere, CI included: the same code on CPU at tiny
                                     # sizes; prints the section, writes nothing

1. ``pytest -m cuda`` over every package's tests (one process each: their conftest modules
   share a name): fused Adam's ``found_inf`` skip and the foreach fallback's one host read,
   FastStep's CUDA graphs, each plugin's sampler as a CUDA graph against its eager loop, and
   every registered model's steps under the engine's bf16 autocast (gm.testing's contract).
2. Figures, each a ratio measured in this run, by the bench scripts' own functions:
   the CelebA-size Variational Walkback training step in bf16 and its model FLOP
   utilisation (bench_mfu), a 10,000-step sampling chain of 64 CelebA-size samples eager
   against the fast path (chains.FastChain: compile + a CUDA graph per step), professor
   forcing's training step against teacher forcing's (bench_professor_forcing), and the
   imputation roll-out eager against compiled + graphed (PrimaryRollout).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _report  # noqa: E402
import bench_mfu  # noqa: E402
import torch  # noqa: E402

from gm import build  # noqa: E402
from gm.data import DataInfo, Dataset  # noqa: E402
from gm.engine import seed_everything  # noqa: E402

BUDGET_S = 8 * 60
FULL = {
    "celeba": (3, 64, 64),
    "chain": 10_000,
    "batch": 64,
    "walk_k": 8,
    "matmul": 8192,
    "pf": (1024, 512),
    "rounds": 5,
    "gpsi_steps": 300,
    "rows": 54_000,
}
TINY = {
    "celeba": (3, 16, 16),
    "chain": 20,
    "batch": 4,
    "walk_k": 2,
    "matmul": 64,
    "pf": (16, 8),
    "rounds": 1,
    "gpsi_steps": 2,
    "rows": 64,
}


def cuda_tests() -> list[dict]:
    """``pytest -m cuda`` in each package; one row each: its summary line and exit code
    (5: the package has no CUDA-only test, as gm-datasets has no CUDA path)."""
    rows = []
    for tests in sorted((HERE.parent / "packages").glob("*/tests")):
        cmd = [sys.executable, "-m", "pytest", str(tests), "-m", "cuda", "-p", "no:cacheprovider"]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
        last = (out.stdout.strip().splitlines() or ["(no output)"])[-1].strip("= ")
        rows.append({"package": tests.parent.name, "pytest -m cuda": last, "exit": out.returncode})
    return rows


def walkback_step(size: dict, device, sync, peak) -> dict:
    """One Algorithm-1 minibatch of the CelebA-size conv config at batch 64, bf16 on CUDA."""
    info = DataInfo("celeba-size", "image", size["celeba"])
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    g = torch.Generator().manual_seed(0)
    batch = torch.rand(size["batch"], *size["celeba"], generator=g).to(device)
    over = {"batch_size": size["batch"], "tmax": float(2 ** size["walk_k"]), "n_max": 0}
    return bench_mfu.step_case(
        "walkback, CelebA-size conv (paper Table 5)",
        info,
        over,
        batch,
        device,
        dtype,
        size["rounds"],
        sync,
        peak,
    )


def long_chain(size: dict, device, sync) -> dict:
    """A chain of ``size["chain"]`` steps of 64 samples at T = 1: the eager loop against
    chains.FastChain with its defaults (the first call, compile and capture included)."""
    from gm_walkback import chains, schedules
    from gm_walkback.walkback import build_operator

    info = DataInfo("celeba-size", "image", size["celeba"])
    cfg = build.resolve("walkback", info, device)[1]  # the paper's setup on a GPU
    op = build_operator(cfg, info).to(device).eval()
    state = torch.rand(size["batch"], *info.shape, device=device)
    n = size["chain"]
    walk = schedules.Walk((1.0,) * n, (0,) * n)

    def timed(fn) -> float:
        sync()
        start = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - start

    with torch.no_grad():
        eager = timed(lambda: chains.run_chain(op, state, walk))
    fast = chains.FastChain(op)
    first = timed(lambda: fast.run(state, walk))
    again = timed(lambda: fast.run(state, walk))
    return {
        "what": f"chain of {n} steps, {size['batch']} samples",
        "eager s": eager,
        "fast s (first call)": first,
        "fast s (again)": again,
        "speed-up": eager / again,
    }


def pf_step(size: dict, device: str, sync) -> list[dict]:
    """Professor forcing's training step over teacher forcing's, eager and with the fast
    paths' defaults, interleaved rounds on one batch (bench_professor_forcing)."""
    import bench_professor_forcing as pf

    hidden, d = size["pf"]
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, pf.VOCAB, (pf.BATCH, pf.LENGTH), generator=g).to(device)
    rows = []
    for opts in ("eager", "defaults"):
        runs = {
            m: pf.trainer(m, hidden, d, device, **pf.OPTIONS[opts])
            for m in ("teacher-forcing", "professor-forcing")
        }
        med = pf.interleaved(
            {m: (lambda t=t: t.training_step(x)) for m, t in runs.items()}, size["rounds"], sync
        )
        rows.append(
            {
                "what": f"GRU-{hidden}, BiGRU-{d}",
                "options": opts,
                "TF ms": 1000 * med["teacher-forcing"],
                "PF ms": 1000 * med["professor-forcing"],
                "PF / TF": med["professor-forcing"] / med["teacher-forcing"],
            }
        )
    return rows


def imputation_rollout(size: dict, device: str, sync) -> list[dict]:
    """A gpsi-add trained briefly on random 8x8 images, imputing ``size["rows"]`` rows of
    MCAR 0.5: the primary roll-out eager against its fast paths' defaults (compiled and
    graphed on CUDA), the first call (compile, capture) timed apart."""
    info = DataInfo("bench-8x8", "image", (1, 8, 8))
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(2048, 1, 8, 8, generator=g) * 255).to(torch.uint8)
    data = Dataset(info, {"train": images})
    cls, cfg = build.resolve("gpsi-add", info, device, overrides={"batch_size": 100})
    seed_everything(0)
    gpsi = build.trainer(cls, cfg, info, device)
    batches = data.batches("train", cfg.batch_size)
    for _ in range(size["gpsi_steps"]):
        gpsi.training_step(next(batches).to(device))
    gpsi.train(False)
    x = torch.rand(size["rows"], 64, generator=g).to(device)
    x[torch.rand(x.shape, generator=g).to(device) < 0.5] = float("nan")
    rows = []
    for label, fast in (("eager", "off"), ("fast paths, auto", "auto")):

        def run(fast=fast):
            gpsi.impute(x, 1, compile=fast, cuda_graph=fast)

        start = time.perf_counter()
        run()
        sync()
        first = time.perf_counter() - start
        sec = _report.timeit(run, repeat=size["rounds"], warmup=0, sync=sync)
        rows.append(
            {
                "roll-out": label,
                "rows": size["rows"],
                "first call s": first,
                "rows/s": size["rows"] / sec,
            }
        )
    rows[1]["speed-up"] = rows[1]["rows/s"] / rows[0]["rows/s"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, write nothing")
    args = ap.parse_args()
    began = time.perf_counter()
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit(
            "bench/gpu.py: no CUDA device is visible; run it on a GPU machine, or "
            "pass --dry-run to check the script on CPU."
        )
    size = TINY if args.dry_run else FULL
    device = torch.device("cpu" if args.dry_run else "cuda")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.set_num_threads(1 if args.dry_run else torch.get_num_threads())

    tests = cuda_tests()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    peak = bench_mfu.matmul_flops(device, dtype, size["matmul"], size["rounds"], sync)
    step = walkback_step(size, device, sync, peak)
    chain = long_chain(size, device, sync)
    pf_rows = pf_step(size, str(device), sync)
    imp_rows = imputation_rollout(size, str(device), sync)
    took = time.perf_counter() - began
    failed = [t["package"] for t in tests if t["exit"] not in (0, 5)]
    body = "\n\n".join(
        [
            (
                f"**CUDA-only tests failed in: {', '.join(failed)}.**"
                if failed
                else "Every package's CUDA-only tests ran (`pytest -m cuda`)."
            )
            + f" The whole command took {took / 60:.1f} min (budget {BUDGET_S // 60} min).",
            _report.table(tests, ["package", "pytest -m cuda", "exit"]),
            "Walkback training step (one Algorithm-1 minibatch, K online updates), bf16 "
            "autocast, model FLOP utilisation against a dense bf16 matmul timed in this run:",
            _report.table(
                [step],
                [
                    "what",
                    "batch",
                    "walk steps K",
                    "minibatch s",
                    "achieved GFLOP/s",
                    "matmul GFLOP/s",
                    "MFU",
                ],
            ),
            "Sampling chain at T = 1, eager loop against `chains.FastChain` (`gm sample --fast "
            "auto`: compile + one CUDA graph per step), one timed run each:",
            _report.table(
                [chain], ["what", "eager s", "fast s (first call)", "fast s (again)", "speed-up"]
            ),
            "Professor forcing's step over teacher forcing's (same GRU and batch; batch 32, "
            "100 steps, 96 symbols), eager options and defaults, medians of interleaved rounds:",
            _report.table(pf_rows, ["what", "options", "TF ms", "PF ms", "PF / TF"]),
            "Imputation roll-out (gpsi-add, 6 steps, one sample per row), eager against the "
            "fast paths' defaults (compiled and CUDA-graphed on CUDA):",
            _report.table(imp_rows, ["roll-out", "rows", "first call s", "rows/s", "speed-up"]),
        ]
    )
    if args.dry_run:
        print(body)
        print(f"bench/gpu.py --dry-run: ok in {took:.0f} s; nothing written.")
        return
    _report.write_section(
        "gpu",
        "GPU: CUDA-only tests and figures",
        "python bench/gpu.py",
        body,
        {
            "tests": tests,
            "step": step,
            "chain": chain,
            "professor_forcing": pf_rows,
            "imputation": imp_rows,
        },
    )
    print(body)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
