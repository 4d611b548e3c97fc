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
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gm import checkpoint, distributed, pictures, plugins
from gm import config as configs
from gm import progress as show
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
    model: str, info, *, overrides: Mapping[str, Any] | None = None, config_file: str | None = None
):
    spec = plugins.get("models", model)
    cls: type[Trainer] = spec.load()
    cfg = cls.default_config(info)
    cfg = configs.override(cfg, spec.defaults, source=f"model {model!r} defaults")
    if config_file:
        cfg = configs.override(cfg, configs.read_toml(config_file), source=str(config_file))
    return cls, configs.override(cfg, dict(overrides or {}), source="--set")


def _default_out(model: str, dataset: str) -> Path:
    stem = f"{model}-{dataset.replace(':', '-').replace('/', '-').strip('-.')}"
    n = 1
    while (Path("runs") / f"{stem}-{n}").exists():
        n += 1
    return Path("runs") / f"{stem}-{n}"


def train(
    model: str,
    dataset: str,
    *,
    steps: int | None = None,
    out: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    config_file: str | None = None,
    device: str = "auto",
    seed: int = 0,
    resume: str | Path | None = None,
    data_dir: str | None = None,
    data_options: Mapping[str, Any] | None = None,
    progress: bool = True,
    report_to: tuple[str, ...] = (),
) -> Path:
    """Train ``model`` on ``dataset`` (a registered name, ``images:DIR``, ... or a
    :class:`~gm.data.Dataset`), or continue the run in ``resume``; returns the run folder.
    ``report_to`` names loggers (``"tensorboard"``) that get every metrics row."""
    world, dev = distributed.setup(device)
    try:
        with show.enabled(progress and world.is_main):
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
                report_to=tuple(report_to),
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
    report_to=(),
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
    if isinstance(dataset, Dataset):  # in-memory data from the Python API
        data, dataset = dataset, dataset.info.name
    else:
        show.status(f"loading dataset {dataset}")
        data = load_dataset(dataset, data_dir, data_options)
    show.status(f"building {model} ({data.info.modality} data, shape {tuple(data.info.shape)})")
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
        with show.timed(f"compiling {model}"):  # torch.compile itself is lazy: the first steps pay
            trainer.compile()
    loggers = _loggers(report_to, run) if world.is_main and report_to else []
    try:
        _loop(trainer, data, run, model=model, world=world, start=start, seed=seed, loggers=loggers)
    finally:
        for logger in loggers:
            logger.close()
    return run


def _loggers(names, run: Path) -> list:
    from gm.loggers import open_loggers

    return open_loggers(names, run, checkpoint.read_record(run))


FIRST_ROW_S = 10.0  # the first metrics row comes after about this much wall time at most


def _lr(trainer: Trainer) -> float:
    """The learning rate now (the first optimiser's first group; 0 for a trainer without)."""
    for opt in trainer.optimizers().values():
        return float(opt.param_groups[0]["lr"])
    return 0.0


def _loop(
    trainer: Trainer,
    data: Dataset,
    run: Path,
    *,
    model: str,
    world,
    start: int,
    seed: int,
    loggers: list | None = None,
) -> None:
    cfg, device = trainer.config, trainer.device
    data = data.to(device)  # one in-memory tensor per split, on the device
    batches = data.batches(
        "train", cfg.batch_size, seed=seed, start_step=start, rank=world.rank, world=world.size
    )
    metrics_path = run / "metrics.jsonl"
    elapsed_before = 0.0  # wall time of earlier sessions of this run (the curves' time axis)
    if world.is_main and start and metrics_path.exists():  # drop lines past the checkpoint
        lines = [
            ln for ln in metrics_path.read_text().splitlines() if json.loads(ln)["step"] <= start
        ]
        metrics_path.write_text("".join(ln + "\n" for ln in lines))
        elapsed_before = json.loads(lines[-1]).get("time", 0.0) if lines else 0.0
    bad = torch.zeros((), device=device)
    sums: dict[str, torch.Tensor] = {}
    count, step, last_saved = 0, start, start
    clock = began = time.perf_counter()
    # besides a row at step 1: one row after ~10 s if log_every is far (one process only:
    # ranks' clocks differ, and every rank must log at the same steps)
    timed_row = not world.distributed
    best: tuple[str, float, int] | None = None

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
                title = f"{model} on {data.info.name}, step {step}"
                with pictures.context(reference=pictures.reference_for(data), title=title):
                    trainer.write_samples(trainer.sample(64, opts), run / name, opts)
            trainer.train(True)

    trainer.train(True)
    with show.bar(cfg.steps, "train", start=start, unit="steps") as bar:
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
                now = time.perf_counter()
                log_now = step % cfg.log_every == 0 or step == cfg.steps
                if log_now:
                    timed_row = False  # a regular row came first
                elif step == 1 or (timed_row and now - began >= FIRST_ROW_S):
                    log_now, timed_row = True, step == 1  # the first step; one row at ~10 s
                if log_now:
                    check_finite(step)
                    means = distributed.all_reduce_mean({k: v / count for k, v in sums.items()})
                    rate = count / (now - clock)
                    row = {
                        "step": step,
                        **{k: v.item() for k, v in means.items()},
                        "steps_per_s": rate,
                        "time": round(elapsed_before + now - began, 3),
                        "lr": _lr(trainer),
                    }
                    if world.is_main:
                        with metrics_path.open("a") as f:
                            f.write(json.dumps(row) + "\n")
                        for logger in loggers or ():
                            logger.log(step, row)
                    key = "loss" if "loss" in means else next(iter(means), None)
                    if key is not None and (best is None or row[key] < best[1]):
                        best = (key, row[key], step)
                    shown = "  ".join(f"{k} {row[k]:.4g}" for k in list(means)[:3])
                    bar.goto(step, shown)
                    sums, count, clock = {}, 0, now
                else:
                    bar.goto(step)  # host-side only: no device sync between log rows
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    save(step)
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
    spent = time.perf_counter() - began
    best_text = f"; best {best[0]} {best[1]:.4g} at step {best[2]}" if best else ""
    show.line(
        f"gm: trained {step - start} steps in {spent:.1f} s "
        f"({(step - start) / max(spent, 1e-9):.3g} steps/s){best_text}; run folder {run}"
    )
    write_samples("samples.png")
