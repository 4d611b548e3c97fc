"""torchrun support: process group set-up, gradient and metric reduction.

Trainers step in unusual ways (an update per walk step, two optimisers, gated
gradients), so instead of wrapping modules in DistributedDataParallel the trainer's
:meth:`~gm.trainer.Trainer.optimizer_step` all-reduces gradients itself: the same
arithmetic as DDP (mean of per-rank gradients), and correct however many forward
passes a step makes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


_world = World()
_control = None  # a gloo group on CPU tensors: stop votes and RNG gathers, never on the GPU


def current() -> World:
    return _world


def timeout() -> timedelta:
    """How long a collective waits for a peer before failing (``GM_DIST_TIMEOUT`` seconds,
    default 300): a hung or stopped rank ends the run in minutes, not torch's 30."""
    from gm.errors import GMError

    raw = os.environ.get("GM_DIST_TIMEOUT", "300")
    try:
        seconds = float(raw)
        if not seconds > 0:
            raise ValueError
    except ValueError:
        raise GMError(
            f"GM_DIST_TIMEOUT must be a positive number of seconds, got {raw!r}."
        ) from None
    return timedelta(seconds=seconds)


def choose_device(spec: str = "auto", local_rank: int = 0) -> torch.device:
    from gm.errors import GMError

    if spec == "auto":
        return (
            torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        )
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise GMError(
            f"--device {spec!r} is not a device; use auto, cpu, cuda or cuda:N."
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GMError(
            f"--device {spec} asks for CUDA, but this torch has no usable GPU; use --device cpu."
        )
    return device


def setup(device_spec: str = "auto") -> tuple[World, torch.device]:
    """Join the process group when started by torchrun (WORLD_SIZE > 1)."""
    global _world, _control
    size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(device_spec, local_rank)
    if size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timeout())
        _control = dist.new_group(backend="gloo", timeout=timeout()) if backend != "gloo" else None
    if size > 1:
        _world = World(dist.get_rank(), dist.get_world_size(), local_rank)
    return _world, device


class StopVote:
    """Agree on the step at which every rank stops after a signal reached any of them.

    Each step boundary starts a non-blocking MAX all-reduce of this rank's flag (on CPU,
    in the gloo control group) and reads the one started a step earlier, so all ranks stop
    after the same step, one step after the first of them saw a signal, and no step waits
    on the vote. Alone, the flag is read directly."""

    def __init__(self):
        self.pending = None

    def __call__(self, flag: int) -> int:
        if not _world.distributed:
            return flag
        agreed = 0
        if self.pending is not None:
            work, value = self.pending
            work.wait()
            agreed = int(value.item())
        value = torch.tensor([flag], dtype=torch.int64)
        work = dist.all_reduce(value, op=dist.ReduceOp.MAX, group=_control, async_op=True)
        self.pending = (work, value)
        return agreed

    def close(self) -> None:
        if self.pending is not None:
            self.pending[0].wait()
            self.pending = None


def gather_bytes(blob: bytes) -> list[bytes]:
    """Every rank's ``blob`` in rank order, on every rank (CPU tensors; no pickling)."""
    if not _world.distributed:
        return [blob]
    size = torch.tensor([len(blob)], dtype=torch.int64)
    sizes = [torch.zeros_like(size) for _ in range(_world.size)]
    dist.all_gather(sizes, size, group=_control)
    longest = max(int(s) for s in sizes)
    buf = torch.zeros(longest, dtype=torch.uint8)
    if blob:
        buf[: len(blob)] = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
    bufs = [torch.zeros_like(buf) for _ in range(_world.size)]
    dist.all_gather(bufs, buf, group=_control)
    return [bytes(b[: int(s)].numpy()) for b, s in zip(bufs, sizes, strict=True)]


def teardown(*, wait: bool = False) -> None:
    """Leave the process group. With ``wait`` (a run that ended well on every rank), no rank
    leaves before all have finished their work, and none exits before all have left: a
    process that exits while a peer is still inside gloo can abort the peer (SIGABRT,
    "terminate called without an active exception"; seen in about one 2-rank run in five).
    On an error, leave at once: the other ranks may never get here."""
    global _world, _control
    _control = None
    if dist.is_initialized():
        store = None
        if wait:
            dist.barrier()
            store = dist.distributed_c10d._get_default_store()
        dist.destroy_process_group()
        if store is not None:
            key = f"gm/left/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
            store.add(key, 1)
            deadline = time.monotonic() + 60
            while store.add(key, 0) < _world.size and time.monotonic() < deadline:
                time.sleep(0.01)
    _world = World()


def all_reduce_grads(params: list[torch.nn.Parameter]) -> None:
    """Average gradients over ranks in one flat buffer (one collective per call)."""
    if not _world.distributed:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= _world.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def all_reduce_mean(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if not _world.distributed or not values:
        return values
    keys = sorted(values)
    flat = torch.stack([values[k].float() for k in keys])
    dist.all_reduce(flat)
    return dict(zip(keys, flat / _world.size, strict=True))


def sync_modules(modules: dict[str, torch.nn.Module], *, buffers_only: bool = False) -> None:
    """Rank 0's parameters to all ranks (at start); floating buffers averaged (before saving)."""
    if not _world.distributed:
        return
    for module in modules.values():
        if not buffers_only:
            for p in module.parameters():
                dist.broadcast(p.data, src=0)
        for b in module.buffers():
            if b.is_floating_point():
                dist.all_reduce(b)
                b /= _world.size
            elif not buffers_only:
                dist.broadcast(b, src=0)
