"""The training engine: one loop that runs every trainer.

It picks the device, seeds, autocasts to bf16 where the device supports it, optionally
compiles, shows progress, logs ``metrics.jsonl``, writes samples and checkpoints, resumes
exactly, saves on Ctrl-C (exit 130), stops on a NaN/Inf loss without overwriting the last
good checkpoint, and runs data-parallel under torchrun (only rank 0 writes).
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gm import checkpoint, distributed, plugins
from gm import config as configs
from gm.data import Dataset, load_dataset
from gm.errors import GMError, Interrupted, TrainingStopped
from gm.trainer import Trainer


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast when asked, or on ``auto`` when the device is a bf16-capable GPU."""
    use = precision == "bf16" or (
        precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    return torch.autocast(device.type, dtype=torch.bfloat16) if use else contextlib.nullcontext()


def build_config(
    model: str, info, *, overrides: Mapping[str, Any] = (), config_file: str | None = None
):
    spec = plugins.get("models", model)
    cls: type[Trainer] = spec.load()
    cfg = cls.default_config(info)
    cfg = configs.override(cfg, spec.defaults, source=f"model {model!r} defaults")
    if config_file:
        cfg = configs.override(cfg, configs.read_toml(config_file), source=str(config_file))
    return cls, configs.override(cfg, dict(overrides), source="--set")


def _default_out(model: str, dataset: str) -> Path:
    stem = f"{model}-{dataset.replace(':', '-').replace('/', '-').strip('-.')}"
    n = 1
    while (Path("runs") / f"{stem}-{n}").exists():
        n += 1
    return Path("runs") / f"{stem}-{n}"


class _Progress:
    """A rich progress bar on a terminal, plain lines otherwise; silent off rank 0."""

    def __init__(self, total: int, start: int, enabled: bool):
        self.total, self.enabled = total, enabled
        self.bar = None
        if enabled and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self.task = self.bar.add_task("train", total=total, completed=start, info="")

    def __enter__(self):
        if self.bar:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.__exit__(*exc)

    def update(self, step: int, metrics: dict[str, float], rate: float) -> None:
        if not self.enabled:
            return
        info = (
            "  ".join(f"{k} {v:.4g}" for k, v in list(metrics.items())[:3]) + f"  {rate:.1f} it/s"
        )
        if self.bar:
            self.bar.update(self.task, completed=step, info=info)
        else:
            eta = (self.total - step) / rate if rate > 0 else float("nan")
            print(f"step {step}/{self.total}  {info}  eta {eta:.0f}s", file=sys.stderr, flush=True)


def train(
    model: str,
    dataset: str,
    *,
    steps: int | None = None,
    out: str | Path | None = None,
    overrides: Mapping[str, Any] = (),
    config_file: str | None = None,
    device: str = "auto",
    seed: int = 0,
    resume: str | Path | None = None,
    data_dir: str | None = None,
    data_options: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Train ``model`` on ``dataset`` (or continue the run in ``resume``); returns the run folder."""
    world, dev = distributed.setup(device)
    try:
        run = _train(
            model,
            dataset,
            world=world,
            device=dev,
            steps=steps,
            out=out,
            overrides=overrides,
            config_file=config_file,
            seed=seed,
            resume=resume,
            data_dir=data_dir,
            data_options=dict(data_options or {}),
            progress=progress,
        )
    except BaseException:
        distributed.teardown()  # no waiting: the other ranks may never get here
        raise
    distributed.teardown(wait=True)
    return run


def _train(
    model,
    dataset,
    *,
    world,
    device,
    steps,
    out,
    overrides,
    config_file,
    seed,
    resume,
    data_dir,
    data_options,
    progress,
) -> Path:
    if resume is not None:
        run = Path(resume)
        record = checkpoint.read_record(run)
        model, dataset, seed = record["gm_model"], record["dataset"], record["seed"]
        data_options = record.get("data_options", {})
        if overrides or config_file:
            raise GMError(
                "--resume continues a run with its own config; drop --set/--config "
                "(only --steps may change)."
            )
    data: Dataset = load_dataset(dataset, data_dir, data_options)
    seed_everything(seed)  # the same initial weights on every rank
    if resume is not None:
        trainer = checkpoint.build(record, device)
    else:
        cls, cfg = build_config(model, data.info, overrides=overrides, config_file=config_file)
        trainer = cls(cfg, data.info, device)
    cfg = trainer.config
    if steps is not None:
        cfg = trainer.config = configs.override(cfg, {"steps": steps}, source="--steps")
    distributed.sync_modules(trainer.modules())
    seed_everything(seed + 7919 * world.rank)  # independent noise per rank
    start = 0
    if resume is not None:
        start = checkpoint.load_state(run, trainer)
        checkpoint.write_json(run / checkpoint.CONFIG, {**record, "config": configs.to_dict(cfg)})
    else:
        run = Path(out) if out else _default_out(model, dataset)
        if world.distributed:
            holder = [str(run)]
            torch.distributed.broadcast_object_list(holder, src=0)
            run = Path(holder[0])
        if (run / checkpoint.CONFIG).exists():
            raise GMError(
                f"{run} already holds a run; continue it with --resume {run} or pick another --out."
            )
        if world.distributed:  # every rank has checked before rank 0 writes config.json
            torch.distributed.barrier()
        if world.is_main:
            run.mkdir(parents=True, exist_ok=True)
            checkpoint.write_json(
                run / checkpoint.CONFIG,
                checkpoint.run_record(
                    model, dataset, trainer, seed=seed, data_options=data_options
                ),
            )
    if cfg.compile:
        trainer.compile()
    _loop(trainer, data, run, model=model, world=world, start=start, seed=seed, progress=progress)
    return run


def _loop(
    trainer: Trainer,
    data: Dataset,
    run: Path,
    *,
    model: str,
    world,
    start: int,
    seed: int,
    progress: bool,
) -> None:
    cfg, device = trainer.config, trainer.device
    data = data.to(device)  # one in-memory tensor per split, on the device
    batches = data.batches(
        "train", cfg.batch_size, seed=seed, start_step=start, rank=world.rank, world=world.size
    )
    metrics_path = run / "metrics.jsonl"
    if world.is_main and start and metrics_path.exists():  # drop lines past the checkpoint
        lines = [
            ln for ln in metrics_path.read_text().splitlines() if json.loads(ln)["step"] <= start
        ]
        metrics_path.write_text("".join(ln + "\n" for ln in lines))
    bad = torch.zeros((), device=device)
    sums: dict[str, torch.Tensor] = {}
    count, step, last_saved = 0, start, start
    clock = time.perf_counter()

    def check_finite(until: int) -> None:
        flag = bad.clone()
        if world.distributed:
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        for p in trainer.parameters():  # weights too: one host sync for the whole check
            flag = torch.maximum(flag, (~torch.isfinite(p).all()).float())
        if flag.item():
            where = (
                f"the last good checkpoint (step {last_saved}) is in {run}"
                if last_saved
                else "no checkpoint was written"
            )
            raise TrainingStopped(
                f"training stopped: the loss became NaN or infinite before step {until}; {where}. "
                "Lower the learning rate (--set lr=...) and train again."
            )

    def save(at: int) -> None:
        nonlocal last_saved
        check_finite(at)
        distributed.sync_modules(trainer.modules(), buffers_only=True)
        if world.is_main:
            checkpoint.save(run, trainer, at)
        last_saved = at

    def write_samples(name: str) -> None:
        if world.is_main and type(trainer).sample is not Trainer.sample:
            trainer.train(False)
            forks = [device] if device.type == "cuda" else []
            with torch.random.fork_rng(devices=forks), torch.no_grad():  # leaves training RNG alone
                torch.manual_seed(seed)
                opts = trainer.SampleOptions()
                trainer.write_samples(trainer.sample(64, opts), run / name, opts)
            trainer.train(True)

    trainer.train(True)
    with _Progress(cfg.steps, start, progress and world.is_main) as bar:
        try:
            while step < cfg.steps:
                batch = next(batches)
                with autocast(device, cfg.precision):
                    metrics = trainer.training_step(batch)
                step += 1
                count += 1
                for k, v in metrics.items():
                    v = v.detach().float()
                    sums[k] = sums[k] + v if k in sums else v
                    bad = torch.maximum(bad, (~torch.isfinite(v)).float())
                if step % cfg.log_every == 0 or step == cfg.steps:
                    check_finite(step)
                    means = distributed.all_reduce_mean({k: v / count for k, v in sums.items()})
                    now = time.perf_counter()
                    rate = count / (now - clock)
                    row = {
                        "step": step,
                        **{k: v.item() for k, v in means.items()},
                        "steps_per_s": rate,
                    }
                    if world.is_main:
                        with metrics_path.open("a") as f:
                            f.write(json.dumps(row) + "\n")
                    bar.update(step, {k: row[k] for k in means}, rate)
                    sums, count, clock = {}, 0, now
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    save(step)
                every = getattr(cfg, "validate_every", 0)  # trainers with a validate()
                if every and step % every == 0 and world.is_main:
                    trainer.train(False)
                    row = {"step": step, **trainer.validate(data, run, step)}
                    trainer.train(True)
                    with (run / "validation.jsonl").open("a") as f:
                        f.write(json.dumps(row) + "\n")
                if cfg.sample_every and step % cfg.sample_every == 0:
                    write_samples(f"samples-{step:07d}.png")
        except KeyboardInterrupt:
            if step > last_saved:
                if world.distributed:  # collectives may hang mid-interrupt: save rank 0's state
                    if world.is_main and bool(bad.item()) is False:
                        checkpoint.save(run, trainer, step)
                else:
                    save(step)
            raise Interrupted(
                f"interrupted at step {step}; saved to {run}. "
                f"Continue with: gm train {model} --resume {run}"
            ) from None
    write_samples("samples.png")
