"""Model FLOP utilisation of one walkback training step: the step's achieved FLOP/s (FLOPs
counted by torch.utils.flop_counter.FlopCounterMode over one step, divided by the step's
median time) over the device's dense matmul FLOP/s measured in the same run (a large
square matmul in the step's dtype: bf16 on CUDA, fp32 on CPU).

    python bench/bench_mfu.py [--threads 1] [--quick]

Cases: the paper's CelebA conv config (default_config for a (3, 64, 64) DataInfo) at batch
64, and the 2-D toy MLP (its default config: K = 30 online updates per minibatch). The
CelebA walk is fixed (tmax, n_max = 0) to K = 2 steps on CPU (one CPU step of the full
walk takes minutes) and K = 8 on CUDA; FLOPs and time are per step, so MFU does not depend
on K except through per-update overheads.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from gm.build import resolve  # noqa: E402
from gm.data import DataInfo  # noqa: E402


def matmul_flops(device, dtype, n, repeat, sync) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sec = _report.timeit(lambda: a @ b, repeat=repeat, warmup=2, sync=sync)
    return 2 * n**3 / sec


def step_case(name, info, overrides, batch, device, dtype, repeat, sync, peak):
    cls, cfg = resolve("walkback", info, device, overrides=overrides)
    torch.manual_seed(0)
    trainer = cls(cfg, info, str(device))
    autocast = torch.autocast("cuda", dtype) if device.type == "cuda" else None

    def step():
        if autocast is None:
            return trainer.training_step(batch)
        with autocast:
            return trainer.training_step(batch)

    step()  # the Tmax estimate and first-call allocations
    with FlopCounterMode(display=False) as counter:
        k = float(step()["walk_steps"])
    flops = counter.get_total_flops()
    sec = _report.timeit(step, repeat=repeat, warmup=1, sync=sync)
    return {
        "what": name,
        "batch": len(batch),
        "walk steps K": int(k),
        "GFLOP / minibatch": flops / 1e9,
        "minibatch s": sec,
        "achieved GFLOP/s": flops / sec / 1e9,
        "matmul GFLOP/s": peak / 1e9,
        "MFU": flops / sec / peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    repeat = 2 if args.quick else 5
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    n = 8192 if cuda else 2048
    peak = matmul_flops(device, dtype, n, repeat, sync)

    celeba = DataInfo("celeba-size", "image", (3, 64, 64))
    k = 8 if cuda else 2
    toy = DataInfo("toy-2d", "vector", (2,))
    g = torch.Generator().manual_seed(0)
    rows = [
        step_case(
            "CelebA-size conv (paper Table 5), per-step batch norm",
            celeba,
            {"batch_size": 64, "tmax": float(2**k), "n_max": 0},
            torch.rand(64, 3, 64, 64, generator=g).to(device),
            device,
            dtype,
            repeat,
            sync,
            peak,
        ),
        step_case(
            "2-D toy MLP (default config, K = 30)",
            toy,
            {},
            torch.randn(256, 2, generator=g).to(device),
            device,
            dtype,
            repeat,
            sync,
            peak,
        ),
    ]
    cols = [
        "what",
        "batch",
        "walk steps K",
        "GFLOP / minibatch",
        "minibatch s",
        "achieved GFLOP/s",
        "matmul GFLOP/s",
        "MFU",
    ]
    body = (
        _report.table(rows, cols)
        + f"\n\nOne Algorithm-1 minibatch (K online updates: K forward/backward passes and Adam "
        f"steps). FLOPs: FlopCounterMode over one minibatch (matmuls and convolutions, forward "
        f"and backward; elementwise work and the optimiser are not counted). Peak: a "
        f"{n}x{n} {str(dtype).removeprefix('torch.')} matmul timed in the same run. Median of "
        f"{repeat} timed repeats. The toy MLP's width is the device default (256 on CPU, "
        "4096 on CUDA). On CPU the CelebA walk is cut to K = 2 (FLOPs and time scale "
        "together)."
    )
    _report.write_section(
        "mfu",
        "Walkback training step: model FLOP utilisation",
        "python bench/bench_mfu.py",
        body,
        {"rows": rows, "matmul_n": n, "dtype": str(dtype)},
    )
    print(body)


if __name__ == "__main__":
    main()
