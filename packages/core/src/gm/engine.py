"""The training engine: one loop that runs every trainer.

It picks the device, seeds, autocasts to bf16 where the device supports it, optionally
compiles, shows progress, logs ``metrics.jsonl``, writes samples and checkpoints, resumes
exactly, and runs data-parallel under torchrun (only rank 0 writes).

Faults: nothing is written until the whole request has been checked (the run folder, the
data, the config, the first batch); SIGINT and SIGTERM only raise a flag, and the loop
saves the last whole step and exits 130 (143) at the next step boundary (every rank at
the same one); a NaN/Inf loss, a full disk or a lost peer stop the run (exit 1) with
the last complete checkpoint intact; a run that fails before its first checkpoint removes
what it wrote, so the same ``--out`` works again.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gm import checkpoint, distributed, fastpath, pictures, plugins
from gm import config as configs
from gm import progress as show
from gm.data import Dataset, load_dataset
from gm.errors import GMError, Interrupted, TrainingStopped, raise_interrupted
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
    cls: type[Trainer] = plugins.load(spec)
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
    except BaseException as err:
        distributed.teardown()  # no waiting: the other ranks may never get here
        if world.distributed and _lost_peer(err):
            raise TrainingStopped(
                f"rank {world.rank}: another process stopped answering "
                f"({str(err).splitlines()[0][:200]}); continue from the last checkpoint "
                "with --resume."
            ) from None
        raise
    distributed.teardown(wait=True)
    return run


def _lost_peer(err: BaseException) -> bool:
    """A collective that timed out or whose peer vanished (gloo and NCCL say it so)."""
    if isinstance(err, getattr(torch.distributed, "DistError", ())):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(
        s in text for s in ("timed out", "timeout", "connection closed", "connection reset")
    )


# What gm itself writes in a run folder, so a failed start can take it back.
_OURS = (
    "config.json",
    "metrics.jsonl",
    "samples*.png",
    ".*.tmp",
    ".*.tmp.*",
    ".staging-*",
    ".checkpoint",
)


def check_out(run: Path) -> bool:
    """Refuse an ``--out`` gm cannot or must not write; True if the folder must be made."""
    if run.is_file() or (run.exists() and not run.is_dir()):
        raise GMError(f"--out {run} is a file; give a new or empty folder.")
    existing = next((p for p in [run, *run.parents] if p.exists()), Path("."))
    if not existing.is_dir():
        raise GMError(f"--out {run} is inside {existing}, which is a file; give another folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise GMError(f"--out {run} cannot be written: {existing} is not writable.")
    if existing != run:
        return True
    if (run / checkpoint.CONFIG).exists():
        raise GMError(
            f"{run} already holds a run; continue it with --resume {run} or pick another --out."
        )
    if any(run.iterdir()):
        raise GMError(
            f"--out {run} is a folder with files in it and not a gm run; gm writes only into "
            "a new or empty folder, so pick another --out."
        )
    return False


def _take_back(run: Path, made: bool) -> None:
    """Remove what a failed start wrote (never a file gm did not write)."""
    for pattern in _OURS:
        for path in run.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    if made:
        with contextlib.suppress(OSError):
            run.rmdir()  # only if empty


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
    data_given: Dataset | None = None
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
    else:
        if isinstance(dataset, Dataset):  # in-memory data from the Python API
            data_given, dataset = dataset, dataset.info.name
        run = Path(out) if out else _default_out(model, dataset)
        if world.distributed:
            holder = [str(run)]
            torch.distributed.broadcast_object_list(holder, src=0)
            run = Path(holder[0])
        make = check_out(run)
    # Everything below up to the first write checks the request; nothing is written yet.
    if data_given is not None:
        data: Dataset = data_given
    else:
        show.status(f"loading dataset {dataset}")
        data = load_dataset(dataset, data_dir, data_options)
    show.status(f"building {model} ({data.info.modality} data, shape {tuple(data.info.shape)})")
    seed_everything(seed)  # the same initial weights on every rank
    if resume is not None:
        trainer = checkpoint.build(record, device)
    else:
        cls, cfg = build_config(model, data.info, overrides=overrides, config_file=config_file)
        trainer = checkpoint.make_trainer(cls, cfg, data.info, device)
    cfg = trainer.config
    if steps is not None:
        cfg = trainer.config = configs.override(cfg, {"steps": steps}, source="--steps")
    distributed.sync_modules(trainer.modules())
    seed_everything(seed + 7919 * world.rank)  # independent noise per rank
    start = 0
    if resume is not None and checkpoint.has_checkpoint(run):
        start = checkpoint.load_state(run, trainer, rank=world.rank, world_size=world.size)
        if start >= cfg.steps:
            raise GMError(
                f"{run} is already at step {start}; give --steps above {start} to train further."
            )
    data = data.to(device)  # one in-memory tensor per split, on the device
    batches = data.batches(
        "train", cfg.batch_size, seed=seed, start_step=start, rank=world.rank, world=world.size
    )
    first = next(batches)  # checks the batch size against the data before anything is written
    if world.distributed:  # every rank has checked before rank 0 writes
        torch.distributed.barrier()
    fresh = resume is None
    try:
        if world.is_main:
            if fresh:
                _write(run, lambda: run.mkdir(parents=True, exist_ok=True), "create")
            if fresh:
                record = checkpoint.run_record(
                    model, dataset, trainer, seed=seed, data_options=data_options
                )
            else:  # the run's own record; only --steps may have changed
                record = {**record, "config": configs.to_dict(cfg)}
            _write(run, lambda: checkpoint.write_json(run / checkpoint.CONFIG, record), "write to")
        if fastpath.use(cfg.compile, "compile", device):
            with show.timed(f"compiling {model}"):  # torch.compile is lazy: the first steps pay
                trainer.compile()
        loggers = _loggers(report_to, run) if world.is_main and report_to else []
        try:
            _loop(
                trainer,
                _prepend(first, batches),
                run,
                model=model,
                world=world,
                start=start,
                seed=seed,
                loggers=loggers,
                data=data,
            )
        finally:
            for logger in loggers:
                logger.close()
    except BaseException:
        if fresh and world.is_main and not checkpoint.has_checkpoint(run):
            _take_back(run, make)
        raise
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


def _nonfinite_data(data: Dataset | None) -> bool:
    """Whether the training examples hold NaN or Inf (asked only once a loss went NaN)."""
    try:
        raw = data.raw("train") if data is not None else None
    except Exception:  # a dataset that cannot say: the loss message stands
        return False
    return raw is not None and raw.is_floating_point() and not bool(torch.isfinite(raw).all())


def _prepend(first, rest):
    yield first
    yield from rest


def _write(run: Path, do, what: str) -> None:
    """A write into the run folder; a failing one (a full disk, no permission) is one line."""
    try:
        do()
    except OSError as err:
        raise GMError(f"cannot {what} {run}: {err.strerror or err}.") from None


class _Signals:
    """SIGINT and SIGTERM only raise a flag, read at step boundaries. A second SIGINT in a
    single process stops at once, unsaved (the last complete checkpoint stays); under
    torchrun the agent forwards the terminal's Ctrl-C, so a repeat is expected there."""

    def __init__(self, single: bool):
        self.single, self.signum = single, 0
        self.saved: dict[Any, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum == signal.SIGINT == signum and self.single:
            raise_interrupted(signum)
        self.signum = self.signum or signum

    def __exit__(self, *exc):
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def _trim_metrics(path: Path, start: int) -> None:
    """Keep the rows up to the checkpoint, dropping a torn line (a write cut short);
    replaced atomically, so a kill here loses nothing."""
    if not path.exists():
        return
    keep = []
    for line in path.read_bytes().decode("utf-8", "replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= start:
            keep.append(line)
    checkpoint.write_text(path, "".join(ln + "\n" for ln in keep))


def _loop(
    trainer: Trainer,
    batches,
    run: Path,
    *,
    model: str,
    world,
    start: int,
    seed: int,
    loggers: list | None = None,
    data: Dataset | None = None,
) -> None:
    cfg, device = trainer.config, trainer.device
    metrics_path = run / "metrics.jsonl"
    elapsed_before = 0.0  # wall time of earlier sessions of this run (the curves' time axis)
    if world.is_main:
        _write(run, lambda: _trim_metrics(metrics_path, start), "write to")
        if start and metrics_path.exists():
            earlier = metrics_path.read_text().splitlines()
            elapsed_before = float(json.loads(earlier[-1]).get("time", 0.0)) if earlier else 0.0
    bad = torch.zeros((), device=device)
    sums: dict[str, torch.Tensor] = {}
    count, step, last_saved = 0, start, start
    clock = began = time.perf_counter()
    # besides a row at step 1: one row after ~10 s if log_every is far (one process only:
    # ranks' clocks differ, and every rank must log at the same steps)
    timed_row = not world.distributed
    best: tuple[str, float, int] | None = None
    resume_hint = f"continue with: gm train {model} --resume {run}"

    def fault(what: str, err: OSError) -> TrainingStopped:
        kept = f"the last complete checkpoint (step {last_saved})" if last_saved else "nothing"
        return TrainingStopped(
            f"could not {what} in {run} ({err.strerror or err}); {kept} is intact there. "
            f"Free space or fix the folder, then {resume_hint}"
        )

    def check_finite(until: int) -> None:
        flag = bad.clone()
        if world.distributed:
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        for p in trainer.parameters():  # weights too: one host sync for the whole check
            flag = torch.maximum(flag, (~torch.isfinite(p).all()).float())
        if flag.item():
            if _nonfinite_data(data):
                raise TrainingStopped(
                    f"training stopped before step {until}: the data hold NaN or infinite "
                    f"values, which model {model!r} cannot train on; fill or drop them first."
                )
            where = (
                f"the last good checkpoint (step {last_saved}) is in {run}"
                if last_saved
                else "no checkpoint was written"
            )
            raise TrainingStopped(
                f"training stopped: the loss became NaN or infinite before step {until}; {where}. "
                "Lower the learning rate (--set lr=...) and train again."
            )

    def diverged(at: int, batch, err: Exception) -> TrainingStopped | None:
        """A step that raised because the weights or the data hold NaN/Inf (a distribution
        refusing NaN parameters, say) stops the run like a NaN loss; any other error is a bug
        and keeps its traceback."""
        if all(torch.isfinite(p).all() for p in trainer.parameters()):
            if not (batch.is_floating_point() and not torch.isfinite(batch).all()):
                return None
            return TrainingStopped(
                f"training stopped at step {at}: the data hold NaN or infinite values, which "
                f"model {model!r} cannot train on ({type(err).__name__}); "
                "fill or drop them first."
            )
        where = f"step {last_saved} in {run}" if last_saved else "none was written"
        return TrainingStopped(
            f"training stopped: the weights became NaN or infinite before step {at} (last good "
            f"checkpoint: {where}). Lower the learning rate (--set lr=...) and train again."
        )

    def save(at: int) -> None:
        nonlocal last_saved
        check_finite(at)
        distributed.sync_modules(trainer.modules(), buffers_only=True)
        blobs = distributed.gather_bytes(checkpoint.encode_rng(checkpoint.rng_state()))
        if world.is_main:
            try:
                checkpoint.save(run, trainer, at, [checkpoint.decode_rng(b) for b in blobs])
            except OSError as err:
                raise fault(f"write the checkpoint of step {at}", err) from None
        last_saved = at

    def write_samples(name: str) -> None:
        if world.is_main and type(trainer).sample is not Trainer.sample:
            trainer.train(False)
            forks = [device] if device.type == "cuda" else []
            with torch.random.fork_rng(devices=forks), torch.no_grad():  # leaves training RNG alone
                torch.manual_seed(seed)
                opts = trainer.SampleOptions()
                title = f"{model} on {data.info.name}, step {step}" if data else None
                try:
                    with pictures.context(reference=pictures.reference_for(data), title=title):
                        write_atomically(run / name, trainer, trainer.sample(64, opts), opts)
                except OSError as err:
                    raise fault(f"write {name}", err) from None
            trainer.train(True)

    vote = distributed.StopVote()
    stopped = 0
    trainer.train(True)
    with (
        _Signals(single=not world.distributed) as signals,
        show.bar(cfg.steps, "train", start=start, unit="steps") as bar,
    ):
        try:
            while step < cfg.steps:
                batch = next(batches)
                trainer.step = step  # updates done: the one step count trainers read
                try:
                    with autocast(device, cfg.precision):
                        metrics = trainer.training_step(batch)
                except (ValueError, RuntimeError) as err:
                    raise diverged(step + 1, batch, err) or err from None
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
                        try:
                            with metrics_path.open("a") as f:
                                f.write(json.dumps(row) + "\n")
                        except OSError as err:
                            raise fault("append to metrics.jsonl", err) from None
                        for logger in loggers or ():
                            logger.log(step, row)
                    key = "loss" if "loss" in means else next(iter(means), None)
                    if key is not None and (best is None or row[key] < best[1]):
                        best = (key, row[key], step)
                    bar.goto(step, "  ".join(f"{k} {row[k]:.4g}" for k in list(means)[:3]))
                    sums, count, clock = {}, 0, now
                else:
                    bar.goto(step)  # host-side only: no device sync between log rows
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    save(step)
                every = getattr(cfg, "validate_every", 0)  # trainers with a validate()
                if every and step % every == 0 and world.is_main:
                    trainer.train(False)
                    row = {"step": step, **trainer.validate(data, run, step)}  # type: ignore[attr-defined]
                    trainer.train(True)
                    with (run / "validation.jsonl").open("a") as f:
                        f.write(json.dumps(row) + "\n")
                if cfg.sample_every and step % cfg.sample_every == 0:
                    write_samples(f"samples-{step:07d}.png")
                stopped = vote(signals.signum)
                if stopped:
                    break
            vote.close()
            if stopped and step > last_saved:
                save(step)
            elif not stopped:
                write_samples("samples.png")
        except Interrupted as err:  # a second SIGINT (one process), wherever it landed
            kept = f"the last checkpoint (step {last_saved})" if last_saved else "no checkpoint"
            raise Interrupted(
                f"interrupted again at step {step}; not saved, {kept} is in {run}.", err.signum
            ) from None
    if not stopped:  # a stopped run says so in its one interrupt line instead
        spent = time.perf_counter() - began
        best_text = f"; best {best[0]} {best[1]:.4g} at step {best[2]}" if best else ""
        show.line(
            f"gm: trained {step - start} steps in {spent:.1f} s "
            f"({(step - start) / max(spent, 1e-9):.3g} steps/s){best_text}; run folder {run}"
        )
    if stopped:
        raise Interrupted(
            f"interrupted ({signal.Signals(stopped).name}) after step {step}; saved to {run}. "
            f"To go on, {resume_hint}",
            stopped,
        )
    if signals.signum:
        raise Interrupted(
            f"interrupted ({signal.Signals(signals.signum).name}) at the end; the run in {run} "
            "is complete.",
            signals.signum,
        )


def write_atomically(path: Path, trainer: Trainer, samples: Any, options: Any) -> None:
    """``trainer.write_samples`` to a temporary name with the same suffix, then renamed:
    an interrupt or a full disk never leaves a half-written file at ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        trainer.write_samples(samples, tmp, options)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
