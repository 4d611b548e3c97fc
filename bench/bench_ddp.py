"""torchrun data parallelism on this machine: 1 process vs 2 gloo processes, same global batch.

Each configuration trains the same model for the same steps; throughput is examples per
second of the whole job (from metrics.jsonl, after a warm-up). On a GPU machine pass
`--nproc 1,N` to compare GPU counts.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _report import table, write_section


def throughput(
    model: str, dataset: str, nproc: int, steps: int, batch: int, sets: list[str]
) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            "-m",
            "gm",
            "train",
            model,
            "--dataset",
            dataset,
            "--steps",
            str(steps),
            "--out",
            str(run),
            "--set",
            f"batch_size={batch}",
            "--set",
            f"log_every={steps // 4}",
            "--set",
            f"checkpoint_every={steps}",
            *(x for s in sets for x in ("--set", s)),
        ]
        subprocess.run(
            cmd,
            check=True,
            capture_output=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        rate = sorted(r["steps_per_s"] for r in rows[1:])[
            len(rows[1:]) // 2
        ]  # median after warm-up
        return rate * batch


# (model, dataset, steps, global batch, config): one case bound by communication, one by compute
CASES = [
    ("walkback", "swiss-roll", 200, 256, ["hidden=256"]),
    (
        "professor-forcing",
        "markov-chain",
        40,
        64,
        ["hidden=256", "d_hidden=128", "d_mlp=128", "gate_g=0"],
    ),
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", help="one case instead of the default two")
    p.add_argument("--dataset", default="swiss-roll")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--nproc", default="1,2")
    p.add_argument("--set", action="append", default=[], dest="sets")
    a = p.parse_args()
    counts = [int(n) for n in a.nproc.split(",")]
    cases = [(a.model, a.dataset, a.steps, a.batch, a.sets)] if a.model else CASES
    rows, data = [], {}
    for model, dataset, steps, batch, sets in cases:
        rates = {n: throughput(model, dataset, n, steps, batch, sets) for n in counts}
        data[f"{model}/{dataset}"] = rates
        rows += [
            {
                "model": model,
                "dataset": dataset,
                "config": " ".join(sets),
                "global batch": batch,
                "processes": n,
                "examples/s": r,
                "speed-up": r / rates[counts[0]],
            }
            for n, r in rates.items()
        ]
    body = (
        "Each job trains for a fixed number of steps at the same global batch; one thread per "
        "process (more threads than cores, or 2 OpenMP threads on a shared 2-core machine, "
        "measured several times slower, which would flatter the 2-process run). Walkback's "
        "online update makes one gradient all-reduce per walk step (30 per minibatch on the "
        "2-D toy): for so small a model gloo's per-call latency outweighs the halved compute. "
        "Professor forcing makes two all-reduces per minibatch (generator and discriminator) "
        "against long recurrent passes, so its compute is what halves (`gate_g=0` keeps the "
        "D->G gradient on from the first step, so each step does the full work).\n\n"
        + table(
            rows,
            ["model", "dataset", "config", "global batch", "processes", "examples/s", "speed-up"],
        )
    )
    write_section(
        "ddp",
        "torchrun: 1 process vs several (gloo on CPU, nccl on GPU)",
        "python bench/bench_ddp.py",
        body,
        data,
    )
    print(body)


if __name__ == "__main__":
    main()
