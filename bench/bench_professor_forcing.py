#!/usr/bin/env python
"""Professor forcing's training step against teacher forcing's on the same generator and
batch, before (eager options) and after (defaults) the fast paths, with where the time goes;
and free-running sampling throughput. One run, ratios.

    nice python bench/bench_professor_forcing.py [--device cuda] [--quick]

Character-level setting of the paper's anchor: batch 32, 100 steps, 96 symbols, a one-layer
GRU generator. Option sets: ``eager`` (every fast path off: nn.GRU passes, the free run step
by step through autograd, gates as torch.where / found_inf), ``previous`` (the defaults
before the hand-written teacher-forced and discriminator loops: only the free run fused) and
``defaults``. Professor forcing runs with the D->G gate forced open (its full cost) and,
in one row, closed (early training, before D reaches gate_g). Timings are medians over
interleaved rounds (the machine is shared), threads fixed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report  # noqa: E402

from gm.build import resolve  # noqa: E402
from gm.data import DataInfo  # noqa: E402

VOCAB, LENGTH, BATCH = 96, 100, 32
OPTIONS = {
    "eager": {
        "fused_free_running": "off",
        "fused_teacher_forced": "off",
        "fused_discriminator": "off",
        "skip_closed_gates": "off",
    },
    "previous": {
        "fused_teacher_forced": "off",
        "fused_discriminator": "off",
        "skip_closed_gates": "off",
    },
    "defaults": {},
}


def trainer(model: str, hidden: int, d: int, device: str, **extra):
    info = DataInfo("bench-chars", "sequence", (LENGTH,), vocab_size=VOCAB)
    over = {"hidden": hidden, "embed": 128, "batch_size": BATCH}
    if model == "professor-forcing":
        over.update(d_hidden=d, d_mlp=d, gate_g=-1.0)  # gate open: the full cost
    else:  # the options professor forcing alone has
        extra = {
            k: v for k, v in extra.items() if k in ("fused_free_running", "fused_teacher_forced")
        }
    over.update(extra)
    cls, cfg = resolve(model, info, device, overrides=over)
    torch.manual_seed(0)
    tr = cls(cfg, info, device)
    if model == "scheduled-sampling":
        tr.step = int(cfg.steps / 2)  # eps = 0.5: half the inputs are the model's draws
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


def parts(tr, x):
    """The pieces of one professor-forcing step (defaults), each with its backward."""
    from gm_professor_forcing.trainers import frozen

    g, d = tr.generator, tr.discriminator
    f_tf = tr.features(g.teacher_forced(x)).detach()
    f_free = tr.features(g.free_running(len(x), tr.free_steps)[1]).detach().requires_grad_()

    def teacher_forced():
        g.nll(g.teacher_forced(x), x).mean().backward()

    def free_running():
        g.free_running(len(x), tr.free_steps)[1].hidden.sum().backward()

    def d_update():  # D on the detached [B_tf; B_free], its backward and its Adam step
        tr.optimizer_step(tr.discriminator_loss(f_tf, f_free)[0], tr.opt_d, clip=tr.clip)

    def c_f():  # a frozen D on B_free, backward to the behaviour
        with frozen(d):
            torch.nn.functional.softplus(-d(f_free)).mean().backward()

    return {
        "teacher-forced pass": teacher_forced,
        "free-running pass": free_running,
        "D update": d_update,
        "C_f through frozen D": c_f,
    }


def multiply_adds(hidden: int, d: int) -> tuple[float, float]:
    """Multiply-adds of the matrix products per token: (teacher-forcing step, professor
    forcing step), behaviour = hidden states. TF: W_hh forward, dh and dW_hh backward,
    readout both ways. The free run: the same, its readout not in the loss. D (features H,
    GRU d per direction, MLP d): f per row forward, of which i the input projections; D's
    update runs forward on 2B rows and backward to its weights (2f - i); C_f forward on B
    rows and backward to the input (f): 2(3f - i) + 2f per token."""
    h, v = hidden, VOCAB
    tf = 9 * h * h + 3 * h * v
    free = 9 * h * h + 2 * h * v
    i = 6 * d * h
    f = i + 6 * d * d + (2 * d * d + 2 * d * d) + d
    return tf, tf + free + 2 * (3 * f - i) + 2 * f


def _span(values) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}x" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}-{hi:.2f}x"


def bounds_text(steps: list[dict]) -> str:
    """The table's reading, its numbers taken from this run."""

    def ratio(a, b):
        return [s["seconds"][a] / s["seconds"][b] for s in steps]

    def part(name):
        return [
            s["parts_seconds"][name] / s["seconds"]["teacher forcing [defaults]"] for s in steps
        ]

    d_parts = [a + b for a, b in zip(part("D update"), part("C_f through frozen D"), strict=True)]
    macs = [
        m["professor forcing"] / m["teacher forcing"]
        for m in (s["multiply_adds_per_token"] for s in steps)
    ]
    return (
        "What bounds the ratio. A professor-forcing step is a teacher-forcing step, plus a "
        "free-running pass with its backward — the same recurrence with the same matrix "
        "products, sequential by nature, so one more teacher-forced pass "
        f"({_span(part('free-running pass'))} above) — plus the discriminator: a forward on "
        "the 2B detached behaviours and a backward to its weights for its update, then, "
        "because C_f must see the *updated* D, a second forward on the B free-running "
        f"behaviours and a backward to them ({_span(d_parts)}). Even a free discriminator "
        "would leave about 2x, and the paper's D (a bidirectional GRU reading the 1024-wide "
        "hidden states, then its MLP) has about as many multiply-adds as the generator or "
        "more, so <= 2x cannot be had without changing the algorithm, on any hardware. The "
        f"multiply-add counts give {_span(macs)}, the measured defaults "
        f"{_span(ratio('professor forcing [defaults]', 'teacher forcing [defaults]'))} (per "
        "multiply-add, D's large input projections run faster than the generator's "
        "per-step products). The hand-written "
        "teacher-forced loop makes every step faster (teacher forcing "
        f"{_span(ratio('teacher forcing [previous]', 'teacher forcing [defaults]'))}, "
        "professor forcing "
        f"{_span(ratio('professor forcing [previous]', 'professor forcing [defaults]'))} "
        "faster than `previous`) but raises the ratio, since it shortens the denominator "
        "most; against the `previous` teacher-forcing step the default professor-forcing "
        f"step costs {_span(ratio('professor forcing [defaults]', 'teacher forcing [previous]'))}. "
        "With the D->G gate closed (early training, until D's smoothed accuracy passes "
        "gate_g) the default step skips the free-running and C_f backward: "
        f"{_span(ratio('professor forcing, D->G gate closed [previous]', 'professor forcing, D->G gate closed [defaults]'))} "
        "faster than `previous`. Measured separately and rejected (numbers from one-off "
        "scripts, same machine): the teacher-forced and free-running passes as one loop over "
        "2B rows (no gain: with a contiguous W_hh^T a 64-row product costs two 32-row ones, "
        "and the backward's products are linear in rows too); `torch.compile` of D's MLP "
        "(slower on CPU: 160 vs 90 ms forward + backward at D-256, plus 8-16 s compiling). "
        "The compiled sampling step is measured in the sampling table below; on CPU "
        "sampling stays the eager fused loop by default (it has no host synchronisation "
        "either). No GPU was "
        "available: on CUDA the teacher-forced and discriminator passes stay cuDNN "
        "(`auto`), the gates stay device tensors, and no GPU ratio is claimed."
    )


SAMPLING_COLUMNS = ["generator", "sampler", "tokens/s", "speed-up", "setup s"]


def sampling_table(dev: str, quick: bool, rounds: int, sync) -> tuple[list, list]:
    """Free-running sampling, 64 sequences: the eager fused loop (``gm sample``'s default on
    CPU), the step-by-step loop, and the compiled step of sampling.py (the default on CUDA,
    with a CUDA graph), with its one-off compile timed apart (inductor's caches disabled, so
    it is a cold compile, after a trivial compile has paid inductor's start-up)."""
    import torch._inductor.config

    from gm_professor_forcing import sampling

    torch._inductor.config.force_disable_caches = True
    torch.compile(torch.sin)(torch.zeros(1, device=dev))  # inductor's one-off start-up, not timed
    rows, data = [], []
    steps = 100 if quick else 500
    for hidden in [128] if quick else [256, 1024]:
        g = trainer("teacher-forcing", hidden, 0, dev).generator.eval()

        def fused(g=g):
            g.fused = "on"
            g.sample_tokens(64, steps)

        def reference(g=g):
            g.fused = "off"
            with torch.no_grad():
                g.free_running(64, steps)

        def compiled(g=g):
            sampling.sample(g, 64, steps, compile="on", cuda_graph="off")

        g.fused = "on"
        sync()
        t = time.perf_counter()
        sampling.sample(g, 64, 1, compile="on", cuda_graph="off")  # compiles the step
        sync()
        setup = time.perf_counter() - t
        fns = {
            "fused, tokens only": fused,
            "step by step, with states": reference,
            "compiled step (sampling.py)": compiled,
        }
        med = interleaved(fns, rounds, sync)
        for k, s in med.items():
            rows.append(
                {
                    "generator": f"GRU-{hidden}",
                    "sampler": k,
                    "tokens/s": 64 * steps / s,
                    "speed-up": med["step by step, with states"] / s,
                    "setup s": f"{setup:.1f}" if k.startswith("compiled") else "",
                }
            )
        data.append(
            {
                "hidden": hidden,
                "seconds": med,
                "compile_seconds": setup,
                "batch": 64,
                "steps": steps,
            }
        )
    return rows, data


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--sampling-only", action="store_true", help="print the sampling table only (no doc)"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    dev = args.device
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    x = torch.randint(0, VOCAB, (BATCH, LENGTH), generator=torch.Generator().manual_seed(0)).to(dev)
    sizes = [(128, 64)] if args.quick else [(256, 128), (1024, 256), (1024, 512)]
    rounds = 2 if args.quick else 5
    if args.sampling_only:  # a quick look: print, leave docs/benchmarks.md alone
        print(_report.table(sampling_table(dev, args.quick, rounds, sync)[0], SAMPLING_COLUMNS))
        return
    rows, part_rows = [], []
    data = {"device": dev, "batch": BATCH, "length": LENGTH, "vocab": VOCAB, "steps": []}
    for hidden, d in sizes:
        pf = "professor-forcing"
        runs = {
            ("teacher forcing", "eager"): trainer(
                "teacher-forcing", hidden, d, dev, **OPTIONS["eager"]
            ),
            ("teacher forcing", "previous"): trainer(
                "teacher-forcing", hidden, d, dev, **OPTIONS["previous"]
            ),
            ("teacher forcing", "defaults"): trainer("teacher-forcing", hidden, d, dev),
            ("scheduled sampling (eps 0.5)", "defaults"): trainer(
                "scheduled-sampling", hidden, d, dev
            ),
            ("professor forcing", "eager"): trainer(pf, hidden, d, dev, **OPTIONS["eager"]),
            ("professor forcing", "previous"): trainer(pf, hidden, d, dev, **OPTIONS["previous"]),
            ("professor forcing", "defaults"): trainer(pf, hidden, d, dev),
            ("professor forcing, D->G gate closed", "previous"): trainer(
                pf, hidden, d, dev, gate_g=2.0, **OPTIONS["previous"]
            ),
            ("professor forcing, D->G gate closed", "defaults"): trainer(
                pf, hidden, d, dev, gate_g=2.0
            ),
        }
        fns = {k: (lambda t=t: t.training_step(x)) for k, t in runs.items()}
        med = interleaved(fns, rounds + 4 * (hidden < 1024), sync)  # small: more rounds
        for (step, opts), s in med.items():
            base = med[("teacher forcing", opts)]
            rows.append(
                {
                    "generator": f"GRU-{hidden}",
                    "discriminator": f"BiGRU-{d}, MLP-{d}",
                    "step": step,
                    "options": opts,
                    "ms": 1000 * s,
                    "x teacher forcing (same options)": s / base,
                }
            )
        ratio = {o: med[("professor forcing", o)] / med[("teacher forcing", o)] for o in OPTIONS}
        print(
            f"GRU-{hidden}/D-{d}: PF/TF " + ", ".join(f"{o} {r:.2f}x" for o, r in ratio.items()),
            file=sys.stderr,
            flush=True,
        )

        # where the time of a default professor-forcing step goes
        pf_default = trainer(pf, hidden, d, dev)
        piece = interleaved(parts(pf_default, x), rounds, sync)
        step_s, tf_s = med[("professor forcing", "defaults")], med[("teacher forcing", "defaults")]
        for name, s in piece.items():
            part_rows.append(
                {
                    "generator": f"GRU-{hidden}",
                    "discriminator": f"D-{d}",
                    "part (forward + backward)": name,
                    "ms": 1000 * s,
                    "x teacher-forcing step": s / tf_s,
                }
            )
        rest = step_s - sum(piece.values())
        part_rows.append(
            {
                "generator": f"GRU-{hidden}",
                "discriminator": f"D-{d}",
                "part (forward + backward)": "rest (the step minus the parts timed alone)",
                "ms": 1000 * rest,
                "x teacher-forcing step": rest / tf_s,
            }
        )
        mac_tf, mac_pf = multiply_adds(hidden, d)
        part_rows.append(
            {
                "generator": f"GRU-{hidden}",
                "discriminator": f"D-{d}",
                "part (forward + backward)": "**whole step** (multiply-add count: "
                f"{mac_pf / mac_tf:.2f}x)",
                "ms": 1000 * step_s,
                "x teacher-forcing step": step_s / tf_s,
            }
        )
        data["steps"].append(
            {
                "hidden": hidden,
                "d": d,
                "seconds": {f"{k[0]} [{k[1]}]": v for k, v in med.items()},
                "parts_seconds": piece,
                "multiply_adds_per_token": {"teacher forcing": mac_tf, "professor forcing": mac_pf},
            }
        )

    samp_rows, data["sampling"] = sampling_table(dev, args.quick, rounds, sync)
    body = (
        f"Batch {BATCH}, {LENGTH} steps, {VOCAB} symbols, one-layer GRU generator (embedding "
        "128), free-running length = training length. Options: `eager` = every fast path off "
        "(`nn.GRU` passes, the free run step by step through autograd); `previous` = the "
        "defaults before this table's last revision (only the free run fused); `defaults` = "
        "all fast paths on (on CPU: the hand-written loops for the teacher-forced pass and "
        "the discriminator's GRU, the fused free run, closed gates skipping their work). The "
        "ratio divides by teacher forcing with the same options. Medians of interleaved "
        "rounds on a shared machine.\n\n"
        + _report.table(
            rows,
            [
                "generator",
                "discriminator",
                "step",
                "options",
                "ms",
                "x teacher forcing (same options)",
            ],
        )
        + "\n\nWhere a default professor-forcing step (gate open) goes, each part timed alone "
        "with its backward, against the default teacher-forcing step; the last row of each "
        "block also gives the ratio the matrix products alone would set (multiply-adds per "
        "token, `multiply_adds` in the script):\n\n"
        + _report.table(
            part_rows,
            [
                "generator",
                "discriminator",
                "part (forward + backward)",
                "ms",
                "x teacher-forcing step",
            ],
        )
        + "\n\n"
        + bounds_text(data["steps"])
        + "\n\nFree-running sampling, 64 sequences x "
        f"{data['sampling'][0]['steps']} steps, the three samplers in one interleaved run. "
        "`gm sample` uses the fused, tokens-only loop on CPU and the compiled step "
        "(sampling.py, the Gumbel noise drawn eagerly outside it, so the same tokens for a "
        "seed) on CUDA, there also replayed as a CUDA graph (`--compile`, `--cuda-graph`). "
        "`setup s`: the one-off compile of the step before the first step (inductor's caches "
        "off, its process start-up paid beforehand), "
        "not in tokens/s:\n\n" + _report.table(samp_rows, SAMPLING_COLUMNS)
    )
    cmd = "python bench/bench_professor_forcing.py" + (" --quick" if args.quick else "")
    _report.write_section(
        "professor-forcing", "Professor forcing: training step and sampling cost", cmd, body, data
    )


if __name__ == "__main__":
    main()
