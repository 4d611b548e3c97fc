"""The training engine: one loop that runs every trainer.

It picks the device, seeds, autocasts to bf16 where the device supports it, optionally
compiles, shows progress, logs ``metrics.jsonl``, writes samples and checkpoints, resumes
exactly, and runs data-parallel under torchrun (only rank 0 writes).

Faults: nothing is written until the whole request has been checked (the run folder, the
data, the config, the first batch); then rank 0 locks the folder for the run's life (one
writer per folder: :class:`~gm.checkpoint.RunLock`) and checks it again under the lock;
SIGINT and SIGTERM only raise a flag, and the loop saves the last whole step and exits
130 (143) at the next step boundary (every rank at the same one); a NaN/Inf loss, a full
disk or a lost peer stop the run (exit 1) with the last complete checkpoint intact; a run
that fails before its first checkpoint removes what it wrote, so the same ``--out`` works
again; sample pictures that cannot be drawn are warnings, never a failed run.

:func:`_execute` carries out a checked :class:`~gm.request.TrainRequest` (what ``gm train``
and ``gm.train`` build; ``gm.train`` is the one way in); :mod:`gm.build` makes its config
and trainer; :class:`_TrainingLoop` is the loop, one small method per thing it does.
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
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gm import build, checkpoint, distributed, fastpath, pictures, plugins
from gm import config as configs
from gm import progress as show
from gm.data import Dataset, load_dataset
from gm.errors import GMError, GMWarning, Interrupted, TrainingStopped, raise_interrupted
from gm.request import TrainRequest
from gm.run import Run
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


def _default_out(model: str, dataset: str) -> Path:
    stem = f"{model}-{dataset.replace(':', '-').replace('/', '-').strip('-.')}"
    n = 1
    while (Path("runs") / f"{stem}-{n}").exists():
        n += 1
    return Path("runs") / f"{stem}-{n}"


def _execute(request: TrainRequest) -> Path:
    """Carry out one checked training request (:func:`gm.request.check`; every rank under
    torchrun); returns the run folder. ``gm.train`` is the way in."""
    world, device = distributed.setup(request.device)
    try:
        with show.enabled(request.progress and world.is_main):
            folder = _train(request, world, device)
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
    return folder


def _lost_peer(err: BaseException) -> bool:
    """A collective that timed out or whose peer vanished (gloo and NCCL say it so)."""
    if isinstance(err, getattr(torch.distributed, "DistError", ())):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(
        s in text for s in ("timed out", "timeout", "connection closed", "connection reset")
    )


# What gm itself writes in a run folder, so a failed start can remove it.
_WRITTEN_BY_GM = (
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
    if os.path.lexists(run / checkpoint.CONFIG):
        raise GMError(
            f"{run} already holds a run; continue it with --resume {run} or pick another --out."
        )
    leftovers = checkpoint.start_leftovers(run)  # a start killed mid-commit: gm's, reused
    if any(p not in leftovers for p in run.iterdir()):
        raise GMError(
            f"--out {run} is a folder with files in it and not a gm run; gm writes only into "
            "a new or empty folder, so pick another --out."
        )
    return False


def _remove_failed_start(run: Path, made_folder: bool, lock: checkpoint.RunLock) -> None:
    """Remove what a failed start wrote (never a file gm did not write), so the same
    ``--out`` works again. The lock held, no other process writes there: all of gm's files
    in the folder are this process's; then the lock goes, then the folder if it is empty."""
    for pattern in _WRITTEN_BY_GM:
        for path in run.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    lock.release()
    if made_folder:
        with contextlib.suppress(OSError):
            run.rmdir()  # only if empty


def _claim(folder: Path, fresh: bool, start: int, world) -> checkpoint.RunLock | None:
    """Rank 0 locks the run folder for this process's life (one writer per folder) and,
    holding the lock, checks that nothing changed since the request was checked: a fresh
    ``--out`` still holds no run (gm's leftovers of a start killed mid-commit are removed),
    a resumed run is still at step ``start``. Every rank raises the same one line if not."""
    lock, problem = None, ""
    if world.is_main:
        try:
            if fresh:
                _write(folder, lambda: folder.mkdir(parents=True, exist_ok=True), "create")
            try:
                lock = checkpoint.RunLock.acquire(folder)
            except OSError as err:
                raise GMError(f"cannot write to {folder}: {err.strerror or err}.") from None
            try:
                if fresh:
                    check_out(folder)
                    for stale in checkpoint.start_leftovers(folder):
                        if stale.name != checkpoint.LOCK:
                            stale.unlink(missing_ok=True)
                else:
                    checkpoint.finish_commit(folder)  # a commit a killed writer left pending
                    now = checkpoint.committed_step(folder)
                    if now != start:
                        raise GMError(
                            f"{folder} changed while this command started (another process "
                            f"took it to step {now}); run the command again."
                        )
            except BaseException:
                lock.release()
                raise
        except GMError as err:
            problem = str(err)
    if world.distributed:  # every rank stops alike, or none
        holder = [problem]
        torch.distributed.broadcast_object_list(holder, src=0)
        problem = holder[0]
    if problem:
        raise GMError(problem)
    return lock


def _new_folder(request: TrainRequest, world) -> tuple[Path, bool]:
    """The checked ``--out`` of a fresh run (the same on every rank); True if it must be made."""
    folder = request.out or _default_out(request.model, request.dataset_name)
    if world.distributed:
        holder = [str(folder)]
        torch.distributed.broadcast_object_list(holder, src=0)
        folder = Path(holder[0])
    return folder, check_out(folder)


def _build_trainer(request: TrainRequest, info, device, world) -> Trainer:
    """The run's trainer with its first weights (the same on every rank), then per-rank noise."""
    show.status(f"building {request.model} ({info.modality} data, shape {tuple(info.shape)})")
    seed = request.seed or 0  # a checked request has its seed (gm.request.check)
    seed_everything(seed)  # the same initial weights on every rank
    cls: type[Trainer] = plugins.load(plugins.get("models", request.model))
    cfg = build.config_for(request, info, device)
    trainer = build.trainer(cls, cfg, info, device, weights=request.resume)
    distributed.sync_modules(trainer.modules())
    seed_everything(seed + 7919 * world.rank)  # independent noise per rank
    return trainer


def _prepare(request: TrainRequest, world, device) -> tuple[Run, Any, int, bool]:
    """Check the whole request, writing nothing: the run (record, trainer, data on the
    device), its batches from the step it starts at, that step, and whether ``--out``
    must be made."""
    record = None if request.resume is None else checkpoint.read_record(request.resume)
    if request.resume is None:
        folder, must_make = _new_folder(request, world)
    else:
        folder, must_make = Path(request.resume), False
    if isinstance(request.dataset, Dataset):  # in-memory data from the Python API
        data: Dataset = request.dataset
    else:
        show.status(f"loading dataset {request.dataset}")
        data = load_dataset(request.dataset, request.data_dir, request.data_options)
    trainer = _build_trainer(request, data.info, device, world)
    cfg = trainer.config
    start = 0
    if record is not None and checkpoint.has_checkpoint(folder):
        checkpoint.RunLock.check_free(folder)  # a writer's half-committed files misread
        start = checkpoint.load_state(folder, trainer, rank=world.rank, world_size=world.size)
    if record is None:
        record = checkpoint.run_record(
            request.model,
            request.dataset_name,
            trainer,
            seed=request.seed or 0,
            data_options=request.data_options,
        )
    else:  # the run's own record; only --steps may have changed
        record = {**record, "config": configs.to_dict(cfg)}
    data = data.to(device)  # one in-memory tensor per split, on the device
    batches = data.batches(
        "train", cfg.batch_size, seed=request.seed or 0, start_step=start, rank=world.rank,
        world=world.size,
    )  # fmt: skip
    first = next(batches)  # checks the batch size against the data before anything is written
    run = Run(folder, record=record, trainer=trainer, data=data)
    return run, _prepend(first, batches), start, must_make


def _train(request: TrainRequest, world, device) -> Path:
    run, batches, start, must_make = _prepare(request, world, device)
    if world.distributed:  # every rank has checked before rank 0 writes
        torch.distributed.barrier()
    fresh, folder = request.resume is None, run.path
    lock = _claim(folder, fresh, start, world)
    try:
        if world.is_main:
            record = run.record
            _write(folder, lambda: checkpoint.write_json(folder / checkpoint.CONFIG, record), "write to")  # fmt: skip
        if fastpath.use(run.trainer.config.compile, "compile", run.trainer.device):
            with show.timed(f"compiling {run.model}"):  # torch.compile is lazy: steps pay
                run.trainer.compile()
        loggers = _loggers(request.report_to, run) if world.is_main and request.report_to else []
        try:
            _loop(run.trainer, batches, run, world=world, start=start, loggers=loggers,
                  max_time=request.max_time)  # fmt: skip
        finally:
            for logger in loggers:
                logger.close()
    except BaseException:
        if lock is not None and fresh and not checkpoint.has_checkpoint(folder):
            _remove_failed_start(folder, must_make, lock)
        raise
    finally:
        if lock is not None:
            lock.release()
    return folder


def _loggers(names, run: Run) -> list:
    from gm.loggers import open_loggers

    return open_loggers(names, run.path, run.record)


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


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else ""


# The stop flag of a session that reached --max-time: below every signal number, so a
# signal on any rank wins the vote (the run then ends as interrupted, exit 130/143).
TIME_UP = 1


def _every(step: int, every: int) -> bool:
    return bool(every) and step % every == 0


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


def _loop(trainer: Trainer, batches, run: Run, **kw: Any) -> None:
    """Train ``trainer`` from ``start`` to its config's steps (see :class:`_TrainingLoop`)."""
    _TrainingLoop(trainer, batches, run, **kw).train()


class _TrainingLoop:
    """One session of a run, from step ``start`` to ``config.steps``. Each method is one
    thing done at a step boundary; every rank calls them at the same steps (the collectives
    in them must match), and only rank 0 writes."""

    def __init__(self, trainer: Trainer, batches, run: Run, *, world, start: int,
                 loggers: list | None = None, max_time: float | None = None):  # fmt: skip
        self.trainer, self.batches, self.run, self.world = trainer, batches, run, world
        self.cfg, self.device = trainer.config, trainer.device
        self.model, self.seed = run.model, run.record["seed"]
        self.loggers, self.data = list(loggers or ()), run.data
        self.metrics = run.metrics_file
        self.start = self.step = self.last_saved = start
        self.elapsed_before = 0.0  # wall time of earlier sessions (the curves' time axis)
        if world.is_main:
            _write(run.path, lambda: self.metrics.keep_until(start), "write to")
            if start:
                self.elapsed_before = self.metrics.elapsed()
        self.nonfinite = torch.zeros((), device=self.device)  # 1 once a metric was NaN/Inf
        self.sums: dict[str, torch.Tensor] = {}  # metrics summed since the last row
        self.count = 0  # steps since the last row
        self.clock = self.began = time.perf_counter()
        # besides a row at step 1: one row after ~10 s if log_every is far (one process
        # only: ranks' clocks differ, and every rank must log at the same steps)
        self.timed_row = not world.distributed
        self.best: tuple[str, float, int] | None = None
        self.max_time = max_time  # seconds of this session's loop, or None
        self.draws = world.is_main and "sample" in run.capabilities
        self.bar: Any = None
        self.resume_hint = f"continue with: gm train {self.model} --resume {run.path}"

    def train(self) -> None:
        cfg = self.cfg
        vote, stopped = distributed.StopVote(), 0
        self.trainer.train(True)
        with (
            _Signals(single=not self.world.distributed) as signals,
            show.bar(
                cfg.steps, "train", start=self.start, unit="steps", live=self.live
            ) as self.bar,
        ):
            try:
                while self.step < cfg.steps:
                    self.training_step(next(self.batches))
                    if self.row_due():
                        self.log_row()
                    else:
                        self.bar.goto(self.step)  # host-side only: no device sync
                    if _every(self.step, cfg.checkpoint_every) or self.step == cfg.steps:
                        self.save()
                    if _every(self.step, self.trainer.validate_every):
                        self.validate()
                    if _every(self.step, cfg.sample_every):
                        self.write_samples(f"samples-{self.step:07d}.png")
                    stopped = vote(signals.signum or self.time_up())
                    if stopped:
                        break
                vote.close()
                if stopped and self.count:  # the steps since the last row: else never logged
                    self.log_row()
                if stopped and self.step > self.last_saved:
                    self.save()
                if stopped in (0, TIME_UP):
                    self.write_samples("samples.png")
            except Interrupted as err:  # a second SIGINT (one process), wherever it landed
                raise self.interrupted_again(err) from None
        self.finish(stopped, signals.signum)

    # --- one step ----------------------------------------------------------------------
    def training_step(self, batch: torch.Tensor) -> None:
        self.trainer.step = self.step  # updates done: the one step count trainers read
        try:
            with autocast(self.device, self.cfg.precision):
                metrics = self.trainer.training_step(batch)
        except (ValueError, RuntimeError) as err:
            raise self.diverged(batch, err) or err from None
        self.step += 1
        self.count += 1
        for k, v in metrics.items():
            v = v.detach().float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v
            self.nonfinite = torch.maximum(self.nonfinite, (~torch.isfinite(v)).float())

    def time_up(self) -> int:
        """:data:`TIME_UP` once this session has trained for ``max_time`` seconds."""
        late = self.max_time is not None and time.perf_counter() - self.began >= self.max_time
        return TIME_UP if late else 0

    def live(self) -> str | None:
        """The running mean of the first metrics since the last row, for the progress line
        (called only when it redraws: one device read per redraw, none per step)."""
        if not self.count:
            return None
        keys = list(self.sums)[:3]
        means = (torch.stack([self.sums[k] for k in keys]) / self.count).tolist()
        return "  ".join(f"{k} {v:.4g}" for k, v in zip(keys, means, strict=True))

    def row_due(self) -> bool:
        """A row every ``log_every`` steps and at the last; besides, one at step 1 and (one
        process) one once ``FIRST_ROW_S`` have passed, if no regular row came first."""
        if self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps:
            self.timed_row = False  # a regular row came first
            return True
        soon = self.timed_row and time.perf_counter() - self.began >= FIRST_ROW_S
        if self.step == 1 or soon:
            self.timed_row = self.timed_row and self.step == 1  # the timed row is spent
            return True
        return False

    def log_row(self) -> None:
        """The metrics averaged over the steps since the last row and over ranks: one row
        in metrics.jsonl and every logger, and on the progress bar."""
        self.check_finite()
        now = time.perf_counter()
        means = distributed.all_reduce_mean({k: v / self.count for k, v in self.sums.items()})
        row = {
            "step": self.step,
            **{k: v.item() for k, v in means.items()},
            "steps_per_s": self.count / (now - self.clock),
            "time": round(self.elapsed_before + now - self.began, 3),
            "lr": _lr(self.trainer),
        }
        if self.world.is_main:
            try:
                self.metrics.append(row)
            except OSError as err:
                raise self.fault("append to metrics.jsonl", err) from None
            for logger in self.loggers:
                logger.log(self.step, row)
        key = "loss" if "loss" in means else next(iter(means), None)
        if key is not None and (self.best is None or row[key] < self.best[1]):
            self.best = (key, row[key], self.step)
        self.bar.goto(self.step, "  ".join(f"{k} {row[k]:.4g}" for k in list(means)[:3]))
        self.sums, self.count, self.clock = {}, 0, now

    # --- at step boundaries ----------------------------------------------------------------
    def save(self) -> None:
        """Commit the checkpoint of this step (every rank's RNG state in it)."""
        self.check_finite()
        distributed.sync_modules(self.trainer.modules(), buffers_only=True)
        blobs = distributed.gather_bytes(checkpoint.encode_rng(checkpoint.rng_state()))
        if self.world.is_main:
            rngs = [checkpoint.decode_rng(b) for b in blobs]
            try:
                checkpoint.save(self.run.path, self.trainer, self.step, rngs, self.run.record)
            except checkpoint.WRITE_ERRORS as err:
                raise self.fault(f"write the checkpoint of step {self.step}", err) from None
        self.last_saved = self.step

    def validate(self) -> None:
        """The trainer measures itself every ``validate_every`` steps (rank 0; one row of
        validation.jsonl)."""
        if not self.world.is_main:
            return
        self.trainer.train(False)
        try:
            row = {"step": self.step, **self.trainer.validate(self.data, self.run.path, self.step)}
            with (self.run.path / "validation.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
        except checkpoint.WRITE_ERRORS as err:
            raise self.fault(f"write the validation of step {self.step}", err) from None
        self.trainer.train(True)

    def write_samples(self, name: str) -> None:
        """A picture of 64 samples drawn with the run's seed, for a model that samples;
        the training RNG is left as it was."""
        if not self.draws:
            return
        trainer, data = self.trainer, self.data
        trainer.train(False)
        forks = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=forks), torch.no_grad():
            torch.manual_seed(self.seed)
            opts = trainer.SampleOptions()
            title = f"{self.model} on {data.info.name}, step {self.step}" if data else None
            try:
                with pictures.context(reference=pictures.reference_for(data), title=title):
                    samples = trainer.sample(64, opts)
                    write_atomically(self.run.path / name, trainer, samples, opts)
            except (GMError, *checkpoint.WRITE_ERRORS, ValueError, RuntimeError) as err:
                # an extra: the weights are what the run is for, so it never fails the run
                self.draws = False
                warnings.warn(
                    f"no {name} ({type(err).__name__}: {_first_line(err)}); training "
                    f"goes on without pictures (gm sample {self.run.path} --out S.npy draws).",
                    GMWarning,
                    stacklevel=2,
                )
        trainer.train(True)

    # --- faults ------------------------------------------------------------------------
    def check_finite(self) -> None:
        """Stop the run if a metric since the last check or a weight is NaN/Inf (on any
        rank): one host sync for the whole check."""
        flag = self.nonfinite.clone()
        if self.world.distributed:
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        for p in self.trainer.parameters():
            flag = torch.maximum(flag, (~torch.isfinite(p).all()).float())
        if not flag.item():
            return
        if _nonfinite_data(self.data):
            raise TrainingStopped(
                f"training stopped before step {self.step}: the data hold NaN or infinite "
                f"values, which model {self.model!r} cannot train on; fill or drop them first."
            )
        where = (
            f"the last good checkpoint (step {self.last_saved}) is in {self.run.path}"
            if self.last_saved
            else "no checkpoint was written"
        )
        raise TrainingStopped(
            f"training stopped: the loss became NaN or infinite before step {self.step}; "
            f"{where}. Lower the learning rate (--set lr=...) and train again."
        )

    def diverged(self, batch: torch.Tensor, err: Exception) -> TrainingStopped | None:
        """A step that raised because the weights or the data hold NaN/Inf (a distribution
        refusing NaN parameters, say) stops the run like a NaN loss; any other error is a bug
        and keeps its traceback."""
        at = self.step + 1
        if all(torch.isfinite(p).all() for p in self.trainer.parameters()):
            if not (batch.is_floating_point() and not torch.isfinite(batch).all()):
                return None
            return TrainingStopped(
                f"training stopped at step {at}: the data hold NaN or infinite values, which "
                f"model {self.model!r} cannot train on ({type(err).__name__}); "
                "fill or drop them first."
            )
        where = (
            f"step {self.last_saved} in {self.run.path}" if self.last_saved else "none was written"
        )
        return TrainingStopped(
            f"training stopped: the weights became NaN or infinite before step {at} (last good "
            f"checkpoint: {where}). Lower the learning rate (--set lr=...) and train again."
        )

    def fault(self, what: str, err: Exception) -> TrainingStopped:
        """A write that failed (a full disk, a folder gone): stop, the last checkpoint kept."""
        kept = (
            f"the last complete checkpoint (step {self.last_saved})"
            if self.last_saved
            else "nothing"
        )
        return TrainingStopped(
            f"could not {what} in {self.run.path} ({getattr(err, 'strerror', None) or err}); "
            f"{kept} is intact "
            f"there. Free space or fix the folder, then {self.resume_hint}"
        )

    # --- the end ------------------------------------------------------------------------
    def interrupted_again(self, err: Interrupted) -> Interrupted:
        # what is on disk, not what this loop last finished: the second Ctrl-C may land
        # inside a save, after its commit point
        try:
            last = checkpoint.committed_step(self.run.path) if self.world.is_main else 0
        except GMError:
            last = self.last_saved
        last = last or self.last_saved
        kept = f"the last checkpoint (step {last})" if last else "no checkpoint"
        return Interrupted(
            f"interrupted again after step {self.step}; not saved, {kept} is in {self.run.path}.",
            err.signum,
        )

    def finish(self, stopped: int, signum: int) -> None:
        """The one closing line: the summary of a complete session, or the interrupt's."""
        done, path = self.step - self.start, self.run.path
        if stopped and stopped != TIME_UP:
            raise Interrupted(
                f"interrupted ({signal.Signals(stopped).name}) after step {self.step}; saved to "
                f"{path}. To go on, {self.resume_hint}",
                stopped,
            )
        spent = time.perf_counter() - self.began
        best = self.best
        best_text = f"; best {best[0]} {best[1]:.4g} at step {best[2]}" if best else ""
        show.line(
            f"gm: trained {done} steps in {spent:.1f} s "
            f"({done / max(spent, 1e-9):.3g} steps/s){best_text}; run folder {path}"
        )
        if stopped == TIME_UP and self.step < self.cfg.steps:
            show.line(
                f"gm: stopped at --max-time ({self.max_time:g} s) after step {self.step} of "
                f"{self.cfg.steps}; saved. To go on, {self.resume_hint}"
            )
        if signum:
            raise Interrupted(
                f"interrupted ({signal.Signals(signum).name}) at the end; the run in {path} "
                "is complete.",
                signum,
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
