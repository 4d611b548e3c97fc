"""Run folders: ``config.json``, ``model.safetensors``, ``trainer_state.{safetensors,json}``.

Never pickle: weights, optimiser tensors and RNG states are safetensors; everything else
is JSON. A checkpoint is committed as a whole: its files (the weights, the resume state and
``config.json`` with the weights' sha256 digests) are written and flushed in
a private staging folder, which is then renamed to ``.checkpoint`` in one atomic step (the
commit point), and only then are the files moved over the previous ones. A kill before
the commit point leaves the previous checkpoint untouched; a kill after it leaves a
complete ``.checkpoint`` folder, whose files readers prefer and the next writer finishes
moving into place. So every reader sees one whole checkpoint, the newest complete one.

One process writes a run folder at a time (:class:`RunLock`). Readers trust nothing in a
folder: they read only regular files, check a safetensors header against the file's size
and the config's shapes before reading a tensor, and check the recorded digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import stat
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

import gm
from gm import config as configs
from gm import hub, plugins
from gm.errors import GMError, GMWarning
from gm.trainer import Trainer

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
STATE = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"
DIGESTS = "sha256"  # record key: weights file name -> sha256 hex digest of its bytes
FILES = (STATE_JSON, STATE, WEIGHTS, CONFIG)  # one checkpoint, moved into place in this order
LOCK = ".lock"  # held (flock) by the one process writing the folder; holds its pid
PENDING = ".checkpoint"  # a complete checkpoint whose files are still being moved into place
STAGING = ".staging-"  # prefix of a checkpoint being written (incomplete until renamed)
# config.json staged by write_json (mkstemp's 8 random characters): a start killed mid-commit
STAGED_CONFIG = re.compile(r"\.config\.json\.[a-z0-9_]{8}\.tmp")
WRITE_ERRORS = (OSError, SafetensorError)  # what a write into a run folder raises
MAX_JSON = 64 * 2**20  # config.json and trainer_state.json are far smaller; bigger is hostile


# --- one writer per run folder ----------------------------------------------------------
def _busy(folder: Path, pid: str) -> str:
    return (
        f"{folder} is being written by another gm process (pid {pid}); wait for it to "
        "finish, or give another folder."
    )


class RunLock:
    """An exclusive ``flock`` on ``RUN/.lock`` for as long as a process writes the run; the
    kernel releases it when the process dies however it dies, so it never goes stale. The
    holder removes the file when done; a waiter that locked a removed file locks again."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, folder: Path) -> RunLock:
        import fcntl

        path = Path(folder) / LOCK
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise GMError(_busy(folder, pid)) from None
            try:
                same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed it as it finished: lock the file there now
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    @staticmethod
    def check_free(folder: Path) -> None:
        """The one line :meth:`acquire` would give if another process holds the lock now, for
        a process about to read a run's checkpoint files before it locks the folder (a writer
        may be mid-commit: its files would read as from different steps). Creates nothing."""
        import fcntl

        try:
            fd = os.open(Path(folder) / LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return  # no lock file: no process writes the folder
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise GMError(_busy(folder, pid)) from None
        finally:
            os.close(fd)  # and with it the shared lock taken to look

    def release(self) -> None:
        """Remove the lock file, then unlock (a process waiting on it locks afresh)."""
        if self.fd < 0:
            return
        self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = -1


# --- atomic writes ------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def umask_mode(directory: bool = False) -> int:
    """The mode ``open``/``mkdir`` would give under the user's umask (``mkstemp`` and
    ``mkdtemp`` use 0600/0700, so a group could not read the run)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def _stage(path: Path, write) -> str:
    """Write to a temporary file beside ``path`` and flush it to disk; returns its name."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, umask_mode())
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (the old content or the new, never a mix)."""
    path = Path(path)
    os.replace(_stage(path, lambda tmp: Path(tmp).write_text(text)), path)


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")


def _tensor_writer(tensors: dict[str, torch.Tensor], metadata: dict[str, str]):
    # Clone so tensors sharing storage (tied weights) can be saved; safetensors refuses aliases.
    flat = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    return lambda tmp: save_file(flat, tmp, metadata=metadata)


def _newest_copy(run: Path, name: str) -> Path:
    """Where the newest complete copy of a checkpoint file is (see the module docstring)."""
    pending = run / PENDING / name
    return pending if pending.exists() else run / name


def finish_commit(run: Path) -> None:
    """Move a committed checkpoint's files into place and drop unfinished staging folders
    (both left by a process killed while saving); the writer calls this before writing."""
    run = Path(run)
    pending = run / PENDING
    if pending.is_dir():
        for name in FILES:
            if (pending / name).exists():
                os.replace(pending / name, run / name)
        _fsync_dir(run)
        shutil.rmtree(pending)
    for stale in [*run.glob(STAGING + "*"), *run.glob(".*.tmp")]:
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def has_checkpoint(run: Path) -> bool:
    return _newest_copy(Path(run), WEIGHTS).exists()


def committed_step(run: Path) -> int:
    """The step of the newest committed checkpoint (0 for none), from its header only."""
    path = _newest_copy(Path(run), WEIGHTS)
    if not path.exists():
        return 0
    return _int(_header(path)[1].get("__metadata__", {}).get("step"), path)


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def read_regular(path: Path, limit: int = MAX_JSON) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes: a FIFO,
    a device or a symlink to one is refused without blocking, a huge file unread."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise GMError(f"{path} is not a regular file; gm reads run files only from files.")
        if st.st_size > limit:
            raise GMError(
                f"{path} is {st.st_size} bytes, more than such a file can be ({limit}); "
                "it is not a gm file."
            )
        return f.read(limit + 1)


# --- the run record -----------------------------------------------------------------
def run_record(
    model: str, dataset: str, trainer: Trainer, *, seed: int, data_options: dict[str, Any]
) -> dict[str, Any]:
    spec = plugins.get("models", model)
    return {
        "gm_model": model,
        "plugin": spec.plugin,
        "plugin_version": plugins._version(spec.plugin),
        "gm_core_version": gm.__version__,
        "dataset": dataset,
        "data_options": data_options,
        "seed": seed,
        "data": trainer.info.to_json(),
        "config": configs.to_dict(trainer.config),
    }


def _is_digests(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(d, str) and re.fullmatch(r"[0-9a-f]{64}", d)
        for k, d in v.items()
    )


# field -> (check, what it must be); a record that fails any is refused with one line
_RECORD = {
    "gm_model": (lambda v: isinstance(v, str) and v != "", "a model name"),
    "config": (lambda v: isinstance(v, dict), "an object of config values"),
    "data": (lambda v: isinstance(v, dict), "an object describing the data"),
    "dataset": (lambda v: isinstance(v, str), "a dataset name"),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "data_options": (lambda v: isinstance(v, dict), "an object of dataset options"),
    DIGESTS: (_is_digests, "an object of file name -> sha256 hex digest"),
}
_DATA = {
    "name": (lambda v: isinstance(v, str), "a string"),
    "modality": (lambda v: isinstance(v, str), "a string"),
    "shape": (
        lambda v: (
            isinstance(v, list)
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v)
        ),
        "a list of sizes",
    ),
    "vocab_size": (
        lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0),
        "null or a positive integer",
    ),
    "meta": (lambda v: isinstance(v, dict), "an object"),
}


def read_record(run: str | Path) -> dict[str, Any]:
    run = hub.resolve(run)  # a run folder, or hf://OWNER/NAME from the Hub's cache
    if not run.exists():
        raise GMError(f"{run} does not exist; give the run folder that `gm train --out` wrote.")
    if run.is_file():
        hint = (
            " gm never unpickles .pt/.pth files." if run.suffix in (".pt", ".pth", ".pkl") else ""
        )
        raise GMError(
            f"{run} is a file, not a gm run folder (a folder with config.json and "
            f"model.safetensors).{hint}"
        )
    path = _newest_copy(run, CONFIG)
    if not os.path.lexists(path):
        staged = _staged_record(run)
        if staged is not None:
            return staged
        raise GMError(
            f"{run} is not a gm run folder: it has no {CONFIG}."
            + (
                " It holds the start of a run killed before its config was written; "
                f"start that run again with gm train MODEL --out {run}."
                if start_leftovers(run)
                else ""
            )
        )
    return _check_record(path, _parse_json(path))


def _parse_json(path: Path) -> Any:
    try:
        return json.loads(read_regular(path).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise GMError(
            f"{path} is corrupt ({type(err).__name__}: {err}); the run cannot be loaded."
        ) from None


def start_leftovers(run: Path) -> list[Path]:
    """What a start killed during its first commit leaves: the lock, a staged config."""
    if not run.is_dir():
        return []
    return [p for p in run.iterdir() if p.name == LOCK or STAGED_CONFIG.fullmatch(p.name)]


def _staged_record(run: Path) -> dict[str, Any] | None:
    """The record of a run killed while committing its first config.json, if what was staged
    is whole (``--resume`` then recovers it; the engine writes it in place)."""
    for path in sorted(
        (p for p in start_leftovers(run) if p.name != LOCK),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    ):
        try:
            return _check_record(path, _parse_json(path))
        except GMError:
            continue
    return None


def _check_record(path: Path, record: Any) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise GMError(f"{path} is corrupt (not a JSON object); the run cannot be loaded.")
    optional = {"dataset": "", "seed": 0, "data_options": {}, DIGESTS: {}}
    for table, obj, where in ((_RECORD, record, ""), (_DATA, record.get("data"), "data.")):
        if not isinstance(obj, dict):
            break  # reported by the "data" check above
        for key, (ok, what) in table.items():
            if key not in obj and (where or key in optional):
                continue  # optional: defaults apply
            if key not in obj or not ok(obj[key]):
                got = "missing" if key not in obj else f"{obj[key]!r}"[:60]
                raise GMError(
                    f"{path} is corrupt: {where}{key} should be {what}, got {got}; "
                    "the run cannot be loaded."
                )
    if "name" not in record["data"] or "modality" not in record["data"]:
        raise GMError(f"{path} is corrupt: data needs name and modality; cannot load the run.")
    return record


# --- reading checkpoint files ---------------------------------------------------------
def _bad_file(path: Path, err: object) -> GMError:
    return GMError(
        f"{path} is not a valid safetensors file ({err}); gm never loads pickled checkpoints."
    )


MAX_HEADER = 100 * 2**20  # the safetensors format's own limit


def _header(path: Path, expected: dict[str, tuple[int, ...]] | None = None, digest: str = ""):
    """Check a safetensors file before a tensor of it is read: a regular file (opened
    without blocking: a FIFO never hangs), a header that describes exactly the file's size,
    with ``expected`` (name -> shape) exactly those tensors, and with ``digest`` those bytes.
    Returns (size, header)."""
    if not os.path.lexists(path):
        raise GMError(
            f"{path.parent} has no {path.name}; the run stopped before its first checkpoint."
        )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise _bad_file(path, err) from None
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise GMError(
                f"{path} is not a regular file (a FIFO, device or link to one); gm reads "
                "weights only from files."
            )
        try:
            (n,) = struct.unpack("<Q", f.read(8))
            if not 0 < n <= min(MAX_HEADER, size - 8):
                raise ValueError(f"a header of {n} bytes in a file of {size}")
            header = json.loads(f.read(n))
            spans = [v["data_offsets"] for k, v in header.items() if k != "__metadata__"]
            end = max((int(e) for _, e in spans), default=0)
            shapes = {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
        except (struct.error, ValueError, TypeError, KeyError, AttributeError) as err:
            raise _bad_file(path, err) from None
        if 8 + n + end != size:
            raise _bad_file(path, f"its header describes {8 + n + end} bytes, the file has {size}")
        if expected is not None:
            _check_layout(path, set(shapes), shapes, expected)
        if digest and sha256(path) != digest:
            raise GMError(
                f"{path} is not the file its run recorded (its sha256 differs from the one "
                f"in {CONFIG}): it was changed or damaged after it was saved; restore it, or "
                "train again."
            )
    return size, header


def _digest(path: Path) -> str:
    """The sha256 the run recorded for this weights file ('' for a run from before digests)."""
    try:
        record = json.loads(read_regular(_newest_copy(path.parent, CONFIG)))
        return str(record.get(DIGESTS, {}).get(path.name, ""))
    except (OSError, GMError, ValueError, AttributeError):
        return ""


def _read(path: Path, expected: dict[str, tuple[int, ...]] | None = None):
    """The tensors and metadata of a safetensors file, read only after :func:`_header`
    (with ``expected``, the file's tensors must be exactly those) and its digest agree."""
    _header(path, expected, _digest(path))
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
            return {k: f.get_tensor(k) for k in sorted(f.keys())}, metadata
    except (SafetensorError, OSError, ValueError) as err:
        raise _bad_file(path, err) from None


def _check_layout(path, keys, shapes, expected) -> None:
    missing, unexpected = sorted(set(expected) - keys), sorted(keys - set(expected))
    wrong = [k for k in shapes if k in expected and shapes[k] != tuple(expected[k])]
    if missing or unexpected or wrong:
        detail = (
            f"missing {missing[:3]}"
            if missing
            else f"unexpected {unexpected[:3]}"
            if unexpected
            else f"{wrong[0]} is {shapes[wrong[0]]} in the file but "
            f"{tuple(expected[wrong[0]])} for this config"
        )
        raise GMError(
            f"{path} does not match its config.json ({detail}); "
            "was config.json edited, or the file copied from another run?"
        )


def shapes(trainer: Trainer) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor the trainer saves, by its name in the weights file."""
    return {k: tuple(v.shape) for k, v in _weights(trainer).items()}


def check_weights(run: Path, expected: dict[str, tuple[int, ...]]) -> None:
    """Refuse a run whose weights file does not hold exactly ``expected`` (name -> shape),
    reading only its header."""
    _header(_newest_copy(Path(run), WEIGHTS), expected)


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {
        f"{m}.{k}": v for m, mod in trainer.modules().items() for k, v in mod.state_dict().items()
    }


def save_weights(folder: Path, trainer: Trainer, step: int) -> None:
    """Weights only, into ``folder`` beside a copy of its parent run's config.json, so that
    :meth:`gm.run.Run.open` reads it as a run (a trainer's best-so-far checkpoint under validation)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record = _own_record(folder.parent)
    if record is not None:  # no digest while the weights change, then theirs
        write_json(folder / CONFIG, {**record, DIGESTS: {}})
    tmp = _stage(folder / WEIGHTS, _tensor_writer(_weights(trainer), {"step": str(step)}))
    digest = sha256(tmp)
    os.replace(tmp, folder / WEIGHTS)
    if record is not None:
        write_json(folder / CONFIG, {**record, DIGESTS: {WEIGHTS: digest}})


def _own_record(run: Path) -> dict[str, Any] | None:
    """The run's config.json as it is (None if it has none that parses)."""
    try:
        record = json.loads(read_regular(_newest_copy(Path(run), CONFIG)))
    except (OSError, GMError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def load_weights(run: Path, trainer: Trainer) -> int:
    """Load the weights into the trainer's modules; returns the checkpoint's step."""
    own = _weights(trainer)
    tensors, meta = _read(
        _newest_copy(Path(run), WEIGHTS), {k: tuple(v.shape) for k, v in own.items()}
    )
    for name, module in trainer.modules().items():
        module.load_state_dict(
            {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")}
        )
    return _int(meta.get("step"), _newest_copy(Path(run), WEIGHTS))


def _int(value: Any, path: Path) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise GMError(
            f"{path} has no valid step in its metadata; it is not a gm checkpoint."
        ) from None


# --- resume state: optimisers and every rank's RNG --------------------------------------
def rng_state() -> dict[str, Any]:
    """This process's RNG states: tensors (torch, CUDA) and JSON (python, numpy)."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    np_state: Any = np.random.get_state()  # the legacy tuple form
    py = random.getstate()
    return {
        "tensors": tensors,
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }


def encode_rng(state: dict[str, Any]) -> bytes:
    """:func:`rng_state` as JSON bytes, to gather over ranks (RNG states are byte tensors)."""
    tensors = {k: v.tolist() for k, v in state["tensors"].items()}
    return json.dumps({**state, "tensors": tensors}).encode()


def decode_rng(blob: bytes) -> dict[str, Any]:
    state = json.loads(blob)
    tensors = {k: torch.tensor(v, dtype=torch.uint8) for k, v in state["tensors"].items()}
    return {**state, "tensors": tensors}


def set_rng_state(state: dict[str, Any]) -> None:
    t = state["tensors"]
    torch.set_rng_state(t["torch"])
    cuda = [t[k] for k in sorted((k for k in t if k.startswith("cuda.")), key=_index)]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    v, s, g = state["python"]
    random.setstate((v, tuple(s), g))
    n = state["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))


def _index(key: str) -> int:
    return int(key.rsplit(".", 1)[1])


def _rng_prefix(rank: int) -> str:
    # rank 0 keeps the names of single-process checkpoints
    return "rng." if rank == 0 else f"rng.rank{rank}."


def save(
    run: Path,
    trainer: Trainer,
    step: int,
    rngs: list[dict[str, Any]] | None = None,
    record: dict[str, Any] | None = None,
) -> None:
    """Commit weights and resume state for ``step`` (call on rank 0), with the run's
    ``record`` (default: its config.json as it is) and the weights' digests in it. ``rngs``
    holds every rank's :func:`rng_state` under torchrun (default: this process's only)."""
    run = Path(run)
    finish_commit(run)
    if record is None:
        record = _own_record(run)
    rngs = rngs or [rng_state()]
    tensors: dict[str, torch.Tensor] = {}
    for rank, r in enumerate(rngs):
        tensors.update({_rng_prefix(rank) + k: v for k, v in r["tensors"].items()})
    optim_json: dict[str, Any] = {}
    for name, opt in trainer.optimizers().items():
        sd = opt.state_dict()
        plain: dict[str, dict[str, Any]] = {}
        for pid, st in sd["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"optim.{name}.{pid}.{k}"] = v
                else:
                    plain.setdefault(str(pid), {})[k] = v
        optim_json[name] = {"param_groups": sd["param_groups"], "state": plain}
    state = {
        "step": step,
        "world_size": len(rngs),
        "optimizers": optim_json,
        "python_rng": rngs[0]["python"],
        "numpy_rng": rngs[0]["numpy"],
        "ranks": {str(r): {"python": x["python"], "numpy": x["numpy"]} for r, x in enumerate(rngs)}
        if len(rngs) > 1
        else {},
        "extra": trainer.extra_state(),
    }
    meta = {"step": str(step)}
    staging = Path(tempfile.mkdtemp(dir=run, prefix=STAGING))
    os.chmod(staging, umask_mode(directory=True))
    try:
        digests: dict[str, str] = {}
        writers = {
            STATE_JSON: lambda p: Path(p).write_text(json.dumps(state, indent=2)),
            STATE: _tensor_writer(tensors, meta),
            WEIGHTS: _tensor_writer(_weights(trainer), meta),
            CONFIG: lambda p: Path(p).write_text(
                json.dumps({**(record or {}), DIGESTS: digests}, indent=2) + "\n"
            ),
        }
        for name in FILES:
            if name == CONFIG and record is None:
                continue  # a bare folder (tests, tools): weights without a record
            writers[name](staging / name)
            if name in (STATE, WEIGHTS):
                digests[name] = sha256(staging / name)
            os.chmod(staging / name, umask_mode())  # safetensors writes 0600
            with open(staging / name, "rb+") as f:
                os.fsync(f.fileno())
        _fsync_dir(staging)
        os.rename(staging, run / PENDING)  # the commit point
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_dir(run)
    finish_commit(run)


def load_state(run: Path, trainer: Trainer, *, rank: int = 0, world_size: int = 1) -> int:
    """Restore optimisers, this rank's RNG states and extra state for an exact resume;
    returns the step. A run saved by another number of processes resumes with fresh
    per-rank noise (a warning says it is not exact)."""
    run = Path(run)
    step = load_weights(run, trainer)
    path = _newest_copy(run, STATE)
    # Optimiser moments are a few copies of the weights; a far bigger file is refused unread.
    limit = 8 * sum(v.numel() * v.element_size() for v in _weights(trainer).values()) + 2**24
    if os.path.lexists(path) and path.stat().st_size > limit:
        raise GMError(
            f"{path} is {path.stat().st_size} bytes, far more than the resume state of this "
            "model can be; it is not this run's file, so the run cannot be resumed."
        )
    tensors, meta = _read(path)
    path = _newest_copy(run, STATE_JSON)
    try:
        state = json.loads(read_regular(path))
        saved_step, saved_world = state["step"], int(state.get("world_size", 1))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise GMError(f"{path} is missing or corrupt ({err}); cannot resume.") from None
    if not (_int(meta.get("step"), _newest_copy(run, STATE)) == saved_step == step):
        raise GMError(
            f"the checkpoint files in {run} are from different steps; cannot resume exactly."
        )
    try:
        for name, opt in trainer.optimizers().items():
            saved = state["optimizers"][name]
            opt_state: dict[int, dict[str, Any]] = {}
            for key, v in tensors.items():
                parts = key.split(".")
                if parts[0] == "optim" and parts[1] == name:
                    opt_state.setdefault(int(parts[2]), {})[".".join(parts[3:])] = v
            for pid, st in saved["state"].items():
                opt_state.setdefault(int(pid), {}).update(st)
            opt.load_state_dict({"state": opt_state, "param_groups": saved["param_groups"]})
        if saved_world == world_size:
            prefix = _rng_prefix(rank)
            own = state["ranks"][str(rank)] if rank else None
            set_rng_state(
                {
                    "tensors": {
                        k[len(prefix) :]: v
                        for k, v in tensors.items()
                        if k.startswith(prefix) and not k[len(prefix) :].startswith("rank")
                    },
                    "python": own["python"] if own else state["python_rng"],
                    "numpy": own["numpy"] if own else state["numpy_rng"],
                }
            )
        else:
            import warnings

            warnings.warn(
                f"{run} was saved by {saved_world} process(es) and resumes with {world_size}; "
                "training continues, but not bitwise as the original would have.",
                GMWarning,
                stacklevel=2,
            )
            seed = (step * 1_000_003 + rank * 7919) % 2**63
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
        trainer.load_extra_state(state["extra"])
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as err:
        raise GMError(
            f"the resume state in {run} is corrupt ({type(err).__name__}: {err}); cannot resume."
        ) from None
    return step
