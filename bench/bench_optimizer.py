"""Adam step: fused (Trainer.adam's default, config `fused_optimizer`) vs foreach vs the
per-parameter loop, on the parameters of the paper's CelebA walkback operator, in one run.

    python bench/bench_optimizer.py [--threads 1]

Walkback's online update steps the optimiser once per walk step (10-30 times a minibatch),
so the optimiser's own cost is part of every training step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report  # noqa: E402
import torch  # noqa: E402

from gm.build import resolve
from gm.data import DataInfo  # noqa: E402
from gm_walkback.walkback import build_operator  # noqa: E402

VARIANTS = {
    "fused (Trainer.adam default)": {"fused": True},
    "foreach": {"foreach": True},
    "per-parameter loop": {"foreach": False},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    info = DataInfo("celeba-size", "image", (3, 64, 64))
    cfg = resolve("walkback", info, device)[1]
    torch.manual_seed(0)
    op = build_operator(cfg, info).to(device)
    for p in op.parameters():
        p.grad = torch.randn_like(p)
    params = sum(p.numel() for p in op.parameters())
    times = {}
    for name, kwargs in VARIANTS.items():
        opt = torch.optim.Adam(op.parameters(), lr=1e-4, **kwargs)
        times[name] = _report.timeit(opt.step, repeat=7, warmup=2, sync=sync)
    rows = [
        {
            "Adam": name,
            "ms / step": 1000 * sec,
            "x fused": sec / times["fused (Trainer.adam default)"],
        }
        for name, sec in times.items()
    ]
    body = (
        f"One Adam step over the CelebA walkback operator's {params / 1e6:.1f} M parameters "
        "(paper config, gradients set), median of 7 after 2 warm-ups.\n\n"
        + _report.table(rows, ["Adam", "ms / step", "x fused"])
    )
    _report.write_section(
        "optimizer",
        "Adam step: fused vs foreach vs per-parameter",
        "python bench/bench_optimizer.py",
        body,
        {"times": times, "parameters": params},
    )
    print(body)


if __name__ == "__main__":
    main()
