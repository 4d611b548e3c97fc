#!/usr/bin/env python
"""Professor forcing's training step against teacher forcing's on the same generator and
batch, and free-running sampling throughput, in one run (ratios).

    nice python bench/bench_professor_forcing.py [--device cuda] [--quick]

Character-level setting of the paper's anchor: batch 32, 100 steps, 96 symbols, a one-layer
GRU generator. Rows: teacher forcing; scheduled sampling at eps = 0.5; professor forcing with
the D->G gate forced open (the full cost: TF pass, free-running pass with its backward,
discriminator step, adversarial backward through a frozen D); the same with the free-running
pass run step by step through autograd instead of the fused node (`generator.fused = False`).
Timings are medians over interleaved rounds (the machine is shared), threads fixed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report  # noqa: E402

from gm.data import DataInfo  # noqa: E402
from gm.engine import build_config  # noqa: E402

VOCAB, LENGTH, BATCH = 96, 100, 32


def trainer(model: str, hidden: int, d: int, device: str, **extra):
    info = DataInfo("bench-chars", "sequence", (LENGTH,), vocab_size=VOCAB)
    over = {"hidden": hidden, "embed": 128, "batch_size": BATCH}
    if model == "professor-forcing":
        over.update(d_hidden=d, d_mlp=d, gate_g=-1.0)  # gate open: the full cost
    over.update(extra)
    cls, cfg = build_config(model, info, overrides=over)
    torch.manual_seed(0)
    tr = cls(cfg, info, device)
    if model == "scheduled-sampling":
        tr.updates = int(cfg.steps / 2)  # eps = 0.5: half the inputs are the model's draws
    return tr


def interleaved(fns: dict, rounds: int, sync) -> dict[str, float]:
    for fn in fns.values():
        fn()  # warm-up
    sync()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            times[k].append(_report.timeit(fn, repeat=1, warmup=0, sync=sync))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    dev = args.device
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    x = torch.randint(0, VOCAB, (BATCH, LENGTH), generator=torch.Generator().manual_seed(0)).to(dev)
    sizes = [(128, 64)] if args.quick else [(256, 128), (1024, 256), (1024, 512)]
    rounds = 2 if args.quick else 3
    rows, data = [], {"device": dev, "batch": BATCH, "length": LENGTH, "vocab": VOCAB, "steps": []}
    for hidden, d in sizes:
        unfused = trainer("professor-forcing", hidden, d, dev)
        unfused.generator.fused = False
        trainers = {
            "teacher forcing": trainer("teacher-forcing", hidden, d, dev),
            "scheduled sampling (eps 0.5)": trainer("scheduled-sampling", hidden, d, dev),
            "professor forcing": trainer("professor-forcing", hidden, d, dev),
            "professor forcing, step-by-step free run": unfused,
        }
        med = interleaved(
            {k: (lambda t=t: t.training_step(x)) for k, t in trainers.items()}, rounds, sync
        )
        base = med["teacher forcing"]
        for k, s in med.items():
            rows.append(
                {
                    "generator": f"GRU-{hidden}",
                    "discriminator": f"BiGRU-{d}, MLP-{d}",
                    "step": k,
                    "ms": 1000 * s,
                    "x teacher forcing": s / base,
                }
            )
        data["steps"].append({"hidden": hidden, "d": d, "seconds": med})
        print(
            f"GRU-{hidden}/D-{d}: " + ", ".join(f"{k} {v / base:.2f}x" for k, v in med.items()),
            file=sys.stderr,
            flush=True,
        )

    samp_rows, data["sampling"] = [], []
    steps = 100 if args.quick else 500
    for hidden in [128] if args.quick else [256, 1024]:
        g = trainer("teacher-forcing", hidden, 0, dev).generator.eval()

        def fused(g=g):
            g.fused = True
            g.sample_tokens(64, steps)

        def reference(g=g):
            g.fused = False
            with torch.no_grad():
                g.free_running(64, steps)

        med = interleaved(
            {"fused, tokens only": fused, "step by step, with states": reference}, rounds, sync
        )
        for k, s in med.items():
            samp_rows.append(
                {
                    "generator": f"GRU-{hidden}",
                    "sampler": k,
                    "tokens/s": 64 * steps / s,
                    "speed-up": med["step by step, with states"] / s,
                }
            )
        data["sampling"].append({"hidden": hidden, "seconds": med, "batch": 64, "steps": steps})

    body = (
        f"Batch {BATCH}, {LENGTH} steps, {VOCAB} symbols, one-layer GRU generator (embedding 128); "
        "professor forcing with free-running length = training length and the D->G gate open "
        "(its full cost). Medians of interleaved rounds on a shared machine.\n\n"
        + _report.table(rows, ["generator", "discriminator", "step", "ms", "x teacher forcing"])
        + "\n\nFree-running sampling, 64 sequences x "
        f"{steps} steps (`gm sample` uses the fused, tokens-only path):\n\n"
        + _report.table(samp_rows, ["generator", "sampler", "tokens/s", "speed-up"])
        + "\n\nThe paper reports professor forcing at about 3x the cost of teacher forcing. What "
        "remains above 1x is the algorithm itself: a second (free-running) pass with its "
        "backward, and a bidirectional discriminator run forward and backward on both "
        "behaviours plus once more, frozen, for the generator's adversarial gradient; the "
        "discriminator's size sets most of the ratio (compare the two GRU-1024 blocks). The "
        "fused free-running node beats the step-by-step autograd loop by the margin in the last "
        "rows; on CPU it is even cheaper than `nn.GRU`'s teacher-forced pass (scheduled sampling "
        "below 1x), because `nn.GRU` on CPU is not a fused kernel and its backward replays "
        "autograd step by step. On CUDA the teacher-forced and discriminator passes run as "
        "cuDNN kernels; no GPU was available for these tables, so GPU ratios are not claimed."
    )
    cmd = "python bench/bench_professor_forcing.py" + (" --quick" if args.quick else "")
    _report.write_section(
        "professor-forcing", "Professor forcing: training step and sampling cost", cmd, body, data
    )


if __name__ == "__main__":
    main()
