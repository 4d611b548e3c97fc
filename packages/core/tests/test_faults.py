"""Faults, injected for real: SIGKILL at every point of a checkpoint commit, SIGINT and SIGTERM
inside steps, a full disk, a torn metrics line, a start that fails or is killed. Each run
either resumes bitwise equal to an uninterrupted one or keeps its previous checkpoint whole.
The faulty runs are forked child processes (signals end them for real) of the tiny model."""

import errno
import json
import os
import re
import signal

import pytest
import torch
from conftest import TINY, forked
from safetensors.torch import load_file

from gm import build, checkpoint, plugins, train
from gm.run import Run
from gm.trainer import Trainer

STEPS = 6
KW = dict(device="cpu", progress=False)
SETS = {"log_every": 1, "checkpoint_every": 2}
EVENTS = ("replace", "rename", "fsync")  # the calls a commit is made of

# progress lines on stderr (timestamped in a pipe), not the one line a fault prints
PROGRESS = re.compile(r"step |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted run every faulty one must match after resuming."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(TINY))
        plugins.reset()
        torch.set_num_threads(1)
        run = train("tiny", "swiss-roll", steps=STEPS, out=tmp_path_factory.mktemp("s") / "r",
                    **SETS, **KW).path  # fmt: skip
        yield load_file(str(run / checkpoint.WEIGHTS))
    plugins.reset()


def resumes_exactly(run, straight):
    resumed = train("tiny", None, steps=STEPS, resume=run, **KW).path
    got = load_file(str(resumed / checkpoint.WEIGHTS))
    assert got.keys() == straight.keys()
    for k in got:
        assert torch.equal(got[k], straight[k]), k
    assert not list(run.glob(".staging-*")) and not (run / checkpoint.PENDING).exists()
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))


def saved_step(run) -> int:
    trainer = build.from_record(checkpoint.read_record(run))
    return checkpoint.load_state(run, trainer)  # all files from one step, or it raises


def listing(run):
    return sorted((p.relative_to(run).as_posix(), p.stat().st_size) for p in run.rglob("*"))


def kill_during_commit(run, at_step: int, k: int):
    """A child that trains and SIGKILLs itself right after the k-th commit call (os.replace,
    os.rename, os.fsync) of the checkpoint at ``at_step``; k = 0 kills before the first."""

    def child():
        real = {name: getattr(os, name) for name in EVENTS}
        state = {"armed": False, "n": 0}

        def wrap(name):
            def call(*a, **kw):
                out = real[name](*a, **kw)
                if state["armed"]:
                    state["n"] += 1
                    if state["n"] >= k:
                        os.kill(os.getpid(), signal.SIGKILL)
                return out

            return call

        for name in EVENTS:
            setattr(os, name, wrap(name))
        real_save = checkpoint.save

        def save(run, trainer, step, *rest):
            state["armed"] = step == at_step
            if state["armed"] and k == 0:
                os.kill(os.getpid(), signal.SIGKILL)
            real_save(run, trainer, step, *rest)
            state["armed"] = False

        checkpoint.save = save
        train("tiny", "swiss-roll", steps=STEPS, out=run, **SETS, **KW)

    return forked(child)


def count_commit_calls(tmp_path) -> int:
    run = train("tiny", "swiss-roll", steps=2, out=tmp_path / "count", **SETS, **KW).path
    trainer = build.from_record(checkpoint.read_record(run))
    calls = []
    real = {name: getattr(os, name) for name in EVENTS}
    try:
        for name in EVENTS:
            setattr(os, name, lambda *a, _n=name, **kw: (calls.append(_n), real[_n](*a, **kw))[1])
        checkpoint.save(run, trainer, 2, None, checkpoint.read_record(run))
    finally:
        for name, fn in real.items():
            setattr(os, name, fn)
    return len(calls)


@pytest.mark.slow  # 4 s (durations run, 1 thread, load 4-7)
def test_sigkill_at_every_point_of_a_commit(tmp_path, tiny_plugin, straight):
    n = count_commit_calls(tmp_path)
    assert n >= 5  # three files, the commit rename, the moves into place
    found = []
    for k in range(n + 1):
        run = tmp_path / f"k{k}"
        code, err = kill_during_commit(run, at_step=4, k=k)
        assert code == 128 + signal.SIGKILL, (k, code, err)
        before = listing(run)
        Run.open(run)  # a reader sees one whole checkpoint ...
        assert listing(run) == before  # ... and changes nothing
        found.append(saved_step(run))
        resumes_exactly(run, straight)
    # before the commit point the previous checkpoint (2) stands, after it the new one (4)
    assert found == sorted(found) and found[0] == 2 and found[-1] == 4, found


def signal_inside_step(run, sig, at: int, where: str, times: int = 1):
    """A child running `gm train` that sends itself ``sig`` in step ``at``, before or after
    that step's (first) parameter update."""

    def child():
        from gm import cli

        real = Trainer.optimizer_step

        def optimizer_step(self, loss, optimizer, **kw):
            fire = getattr(self, "steps_done", 0) == at and not getattr(self, "_fired", False)
            if fire and where == "before":
                for _ in range(times):
                    os.kill(os.getpid(), sig)
            real(self, loss, optimizer, **kw)
            if fire:
                self._fired = True
                if where == "after":
                    for _ in range(times):
                        os.kill(os.getpid(), sig)

        Trainer.optimizer_step = optimizer_step
        sets = [a for k, v in SETS.items() for a in ("--set", f"{k}={v}")]
        cli.main(["train", "tiny", "--dataset", "swiss-roll", "--steps", str(STEPS), "--out",
                  str(run), "--device", "cpu", *sets])  # fmt: skip

    return forked(child)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
@pytest.mark.parametrize(("at", "where"), [(1, "before"), (3, "after"), (4, "before")])
def test_a_signal_inside_a_step_saves_that_whole_step(tmp_path, tiny_plugin, straight, sig, at, where):  # fmt: skip
    run = tmp_path / "run"
    code, err = signal_inside_step(run, sig, at, where)
    assert code == 128 + sig, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not PROGRESS.match(ln)]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"after step {at}" in lines[0] and "--resume" in lines[0]
    assert saved_step(run) == at
    resumes_exactly(run, straight)


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(tmp_path, tiny_plugin, straight):  # fmt: skip
    run = tmp_path / "run"
    code, err = signal_inside_step(run, signal.SIGINT, 3, "before", times=2)
    assert code == 130 and "interrupted again" in err and "Traceback" not in err, err
    assert saved_step(run) == 2
    resumes_exactly(run, straight)


def test_a_kill_before_the_first_checkpoint_resumes_from_the_start(tmp_path, tiny_plugin, straight):  # fmt: skip
    run = tmp_path / "run"
    code, _ = kill_during_commit(run, at_step=2, k=0)
    assert code == 128 + signal.SIGKILL
    assert (run / "config.json").exists() and not checkpoint.has_checkpoint(run)
    resumes_exactly(run, straight)


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path, tiny_plugin, straight):
    run = tmp_path / "run"

    def child():
        from gm import cli

        real = checkpoint.save_file

        def save_file(tensors, path, metadata=None):
            if metadata.get("step") == "4":
                with open(path, "wb") as f:
                    f.write(b"\0" * 100)  # part of the file got out before the disk filled
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            real(tensors, path, metadata=metadata)

        checkpoint.save_file = save_file
        sets = [a for k, v in SETS.items() for a in ("--set", f"{k}={v}")]
        cli.main(["train", "tiny", "--dataset", "swiss-roll", "--steps", str(STEPS), "--out",
                  str(run), "--device", "cpu", *sets])  # fmt: skip

    code, err = forked(child)
    lines = [ln for ln in err.splitlines() if ln.strip() and not PROGRESS.match(ln)]
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert "No space left" in lines[0] and "step 2" in lines[0] and "--resume" in lines[0]
    assert saved_step(run) == 2
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no staging left behind
    resumes_exactly(run, straight)


def test_a_torn_metrics_line_does_not_block_resume(tmp_path, tiny_plugin, straight):
    run = train("tiny", "swiss-roll", steps=4, out=tmp_path / "run", **SETS, **KW).path
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 5, "lo')  # the disk filled in the middle of a line
    resumes_exactly(run, straight)


def test_a_start_that_fails_leaves_nothing_that_blocks_a_retry(tmp_path, tiny_plugin):
    from gm.errors import TrainingStopped

    run = tmp_path / "new" / "run"
    with pytest.raises(TrainingStopped, match="no checkpoint was written"):
        train("tiny", "swiss-roll", steps=4, out=run, nan_at_step=1, **KW)
    assert not run.exists()  # it made the folder, so it took it back
    train("tiny", "swiss-roll", steps=2, out=run, **KW)  # the same --out works again
    assert checkpoint.has_checkpoint(run)


NAP = """
import os, signal, time
import gm
from gm.specs import CommandSpec

@gm.hookimpl
def gm_commands():
    return [CommandSpec("nap", "gm_nap_plugin:nap", "a verb that gets a signal")]

def nap():
    os.kill(os.getpid(), signal.{sig})
    time.sleep(30)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_a_signal_in_a_plugin_verb_exits_with_its_code_and_one_line(tmp_path, sig):
    from conftest import error_lines, gm_run, make_dist

    nap = make_dist(tmp_path / "nap", "gm-nap", "nap", "gm_nap_plugin", NAP.format(sig=sig.name))
    out = gm_run("nap", paths=(nap,), timeout=60)
    assert out.returncode == 128 + sig, out.stderr
    assert error_lines(out) == [f"gm: interrupted ({sig.name})."] and "Traceback" not in out.stderr


@pytest.mark.parametrize("verb", ["sample", "evaluate"])
def test_a_signal_in_sample_or_evaluate_leaves_no_file(tmp_path, tiny_plugin, verb):
    run = train("tiny", "swiss-roll", steps=2, out=tmp_path / "run", **KW).path
    out = tmp_path / "s.npy"

    def child():
        from gm import cli

        def write_half_then_signal(self, samples, path, options):
            path.write_bytes(b"\x93NUMPY half")  # the first bytes reached the disk ...
            os.kill(os.getpid(), signal.SIGTERM)  # ... when the signal came

        def evaluate(self, data, split, options):
            os.kill(os.getpid(), signal.SIGINT)
            return {}

        Trainer.write_samples = write_half_then_signal
        type(build.from_record(checkpoint.read_record(run))).evaluate = evaluate
        args = (
            ["sample", str(run), "--out", str(out)] if verb == "sample" else ["evaluate", str(run)]
        )
        cli.main([*args, "--device", "cpu"])

    code, err = forked(child)
    assert code == (143 if verb == "sample" else 130), err
    assert [ln for ln in err.splitlines() if ln.strip() and not PROGRESS.match(ln)] == [
        f"gm: interrupted ({'SIGTERM' if verb == 'sample' else 'SIGINT'})."
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no half-written samples


# --- one writer per run folder; writer errors; stuck starts; late signals; hostile files ---
def gm_proc(*args):
    """A real `gm` process (with the tiny plugin) started now; read it with .communicate()."""
    import subprocess
    import sys

    from conftest import env_with

    return subprocess.Popen([sys.executable, "-m", "gm", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env_with(TINY))  # fmt: skip


def said(stderr: str) -> list[str]:
    """The lines a person reads on stderr: no progress, no warnings about other plugins."""
    return [
        ln for ln in stderr.splitlines()
        if ln.strip() and not PROGRESS.match(ln) and not ln.startswith("gm: warning:")
    ]  # fmt: skip


TRAIN = ["train", "tiny", "--device", "cpu"]


@pytest.mark.slow  # real gm processes (several seconds each)
def test_two_writers_racing_for_one_folder_one_wins_the_other_says_so(tmp_path, tiny_plugin):
    run = tmp_path / "run"
    args = [*TRAIN, "-d", "swiss-roll", "--steps", "6", "--out", str(run), "--set",
            "checkpoint_every=2"]  # fmt: skip
    procs = [gm_proc(*args) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], outs
    lines = said(outs[codes.index(2)][1])
    assert len(lines) == 1 and "Traceback" not in outs[codes.index(2)][1], lines
    # the loser met the lock (naming the winner), or, started late, the winner's run
    assert "another gm process (pid" in lines[0] or "already holds a run" in lines[0], lines
    assert saved_step(run) == 6  # the winner's run is whole: nothing of it was removed
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


@pytest.mark.slow  # real gm processes (several seconds each)
def test_a_folder_another_process_writes_is_refused_naming_it(tmp_path, tiny_plugin):
    """The lock held by this test process: `--resume` and `--out` are refused with one line
    naming this pid, exit 2, and nothing in the folder changes (the holder's lock stays)."""
    from conftest import gm_run

    run = train("tiny", "swiss-roll", steps=2, out=tmp_path / "run", **KW).path
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, args in ((run, ["--resume", str(run), "--steps", "4"]),
                         (empty, ["-d", "swiss-roll", "--out", str(empty)])):  # fmt: skip
        lock = checkpoint.RunLock.acquire(folder)
        try:
            before = listing(folder)
            out = gm_run(*TRAIN, *args)
            assert out.returncode == 2, out.stderr
            lines = said(out.stderr)
            assert len(lines) == 1 and f"another gm process (pid {os.getpid()})" in lines[0], lines
            assert listing(folder) == before
        finally:
            lock.release()
    assert saved_step(run) == 2 and [p.name for p in empty.iterdir()] == []


@pytest.mark.slow  # real gm processes (several seconds each)
def test_two_resumes_at_once_the_second_names_the_first(tmp_path, tiny_plugin):
    import time

    run = train("tiny", "swiss-roll", steps=2, out=tmp_path / "run",
                sleep=0.02, checkpoint_every=5, **KW).path  # fmt: skip
    first = gm_proc(*TRAIN, "--resume", str(run), "--steps", "100000")
    lock = run / checkpoint.LOCK
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.05)
    second = gm_proc(*TRAIN, "--resume", str(run), "--steps", "100000")
    _, err = second.communicate(timeout=180)
    assert second.returncode == 2 and said(err) == [
        f"gm: error: {run} is being written by another gm process (pid {first.pid}); wait "
        "for it to finish, or give another folder."
    ], err
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    step = int(re.search(r"after step (\d+)", err).group(1))
    assert saved_step(run) == step > 2  # the first resume saved where it stopped
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] <= step
    assert not lock.exists()


def test_the_safetensors_writer_failing_is_a_fault_with_the_checkpoint_kept(tmp_path, tiny_plugin, straight):  # fmt: skip
    """ENOSPC inside the weights writer comes as safetensors' own error, not an OSError."""
    from safetensors import SafetensorError

    run = tmp_path / "run"

    def child():
        from gm import cli

        real = checkpoint.save_file

        def save_file(tensors, path, metadata=None):
            if metadata.get("step") == "4":
                raise SafetensorError(
                    "Error while serializing: I/O error: No space left on device (os error 28)"
                )
            real(tensors, path, metadata=metadata)

        checkpoint.save_file = save_file
        sets = [a for k, v in SETS.items() for a in ("--set", f"{k}={v}")]
        cli.main([*TRAIN, "-d", "swiss-roll", "--steps", str(STEPS), "--out", str(run), *sets])

    code, err = forked(child)
    lines = said(err)
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert "No space left" in lines[0] and "step 2" in lines[0] and "--resume" in lines[0]
    assert saved_step(run) == 2
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no staging, no lock
    resumes_exactly(run, straight)


def kill_in_first_config_commit(run, at: str):
    """A child killed inside the first commit of config.json: once its temporary file exists
    (``made``), once it is written but not flushed (``written``), or before its rename
    (``flushed``)."""

    def child():
        real = {name: getattr(os, name) for name in ("chmod", "fsync", "replace")}

        def staged(path) -> bool:
            return ".config.json." in str(path) and not checkpoint.has_checkpoint(run)

        def chmod(path, *a, **kw):
            if at == "made" and staged(path):
                os.kill(os.getpid(), signal.SIGKILL)
            return real["chmod"](path, *a, **kw)

        def fsync(fd):
            if at == "written" and staged(os.readlink(f"/proc/self/fd/{fd}")):
                os.kill(os.getpid(), signal.SIGKILL)
            return real["fsync"](fd)

        def replace(src, dst, *a, **kw):
            if at == "flushed" and staged(src):
                os.kill(os.getpid(), signal.SIGKILL)
            return real["replace"](src, dst, *a, **kw)

        os.chmod, os.fsync, os.replace = chmod, fsync, replace
        train("tiny", "swiss-roll", steps=STEPS, out=run, **SETS, **KW)

    return forked(child)


@pytest.mark.parametrize("at", ["made", "written", "flushed"])
def test_a_kill_in_the_first_config_commit_leaves_a_folder_that_recovers(tmp_path, tiny_plugin, straight, at):  # fmt: skip
    import shutil

    from gm.errors import GMError

    run = tmp_path / "run"
    code, err = kill_in_first_config_commit(run, at)
    assert code == 128 + signal.SIGKILL, err
    names = sorted(p.name for p in run.iterdir())
    assert "config.json" not in names and any(n.startswith(".config.json.") for n in names)
    retry = tmp_path / "retry"
    shutil.copytree(run, retry)
    # a new run into the folder: gm's leftovers are its own, so the folder counts as empty
    again = train("tiny", "swiss-roll", steps=STEPS, out=retry, **SETS, **KW).path
    got = load_file(str(again / checkpoint.WEIGHTS))
    assert all(torch.equal(got[k], straight[k]) for k in straight)
    assert not [p for p in retry.iterdir() if p.name.startswith(".")]
    if at == "made":  # nothing of the config reached the file: say how to start again
        with pytest.raises(GMError, match="killed before its config was written"):
            train("tiny", None, steps=STEPS, resume=run, **KW)
    else:  # the staged config is whole: --resume takes it and starts from step 0
        resumes_exactly(run, straight)
        assert not [p for p in run.iterdir() if p.name.startswith(".")]


LATE = """
import atexit, os, signal, sys
sig, when = getattr(signal, sys.argv[1]), sys.argv[2]
if when == "atexit":
    atexit.register(lambda: os.kill(os.getpid(), sig))
else:  # right after the closing line of training, before anything else
    from gm import progress
    real = progress.line
    def line(text, *a, **kw):
        real(text, *a, **kw)
        if text.startswith("gm: trained"):
            os.kill(os.getpid(), sig)
    progress.line = line
sys.argv = ["gm", *sys.argv[3:]]
from gm.cli import main
main()
"""


@pytest.mark.parametrize(("sig", "when"), [(signal.SIGTERM, "after-last-step"),
                         (signal.SIGINT, "atexit"), (signal.SIGTERM, "atexit")])  # fmt: skip
@pytest.mark.slow  # 4 s (durations run, 1 thread, load 4-7)
def test_a_signal_after_the_last_step_exits_with_its_code_and_one_line(tmp_path, sig, when):
    import subprocess
    import sys

    from conftest import env_with

    run = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-c", LATE, sig.name, when, *TRAIN, "-d", "swiss-roll", "--steps", "3",
         "--out", str(run)],
        capture_output=True, text=True, env=env_with(TINY), timeout=180,
    )  # fmt: skip
    assert out.returncode == 128 + sig, out.stderr
    lines = said(out.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"gm: interrupted ({sig.name})"), out.stderr
    assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr
    assert saved_step(run) == 3 and not (run / checkpoint.LOCK).exists()


def fifo_weights(run, tmp, link: bool):
    import shutil

    dst = tmp / ("link" if link else "fifo")
    shutil.copytree(run, dst)
    (dst / checkpoint.WEIGHTS).unlink()
    if link:
        os.mkfifo(tmp / "pipe")
        (dst / checkpoint.WEIGHTS).symlink_to(tmp / "pipe")
    else:
        os.mkfifo(dst / checkpoint.WEIGHTS)
    return dst


def huge_config(run, tmp):
    """The run's config.json edited to a width of 10**5 (a 40 GB layer; a Hub download
    could hold it): refused from the weights' header before anything is built."""
    import shutil

    dst = tmp / "huge"
    shutil.copytree(run, dst)
    record = json.loads((dst / "config.json").read_text())
    record["config"]["width"] = 100_000
    (dst / "config.json").write_text(json.dumps(record))
    return dst


def fifo_metrics(run, tmp):
    import shutil

    dst = tmp / "metrics"
    shutil.copytree(run, dst)
    (dst / "metrics.jsonl").unlink()
    os.mkfifo(dst / "metrics.jsonl")
    return dst


@pytest.mark.slow  # real gm processes (several seconds each)
@pytest.mark.parametrize(
    ("make", "words", "verbs"),
    [
        (lambda r, t: fifo_weights(r, t, link=False), ["not a regular file"], ("sample", "resume")),
        (lambda r, t: fifo_weights(r, t, link=True), ["not a regular file"], ("sample", "resume")),
        (huge_config, ["does not match its config.json", "100000"], ("sample", "resume")),
        (fifo_metrics, ["metrics.jsonl is not a regular file"], ("resume",)),
    ],
    ids=["fifo", "symlink-to-fifo", "oversized-config", "fifo-metrics"],
)
def test_a_hostile_run_folder_is_refused_with_one_line(tmp_path, tiny_plugin, make, words, verbs):
    from conftest import gm_run

    run = train("tiny", "swiss-roll", steps=2, out=tmp_path / "run", **KW).path
    bad = make(run, tmp_path)
    before = listing(bad)
    commands = {"sample": ["sample", str(bad), "--out", str(tmp_path / "s.npy")],
                "resume": [*TRAIN, "--resume", str(bad), "--steps", "4"]}  # fmt: skip
    for args in (commands[v] for v in verbs):
        out = gm_run(*args, timeout=120)  # a FIFO opened blocking would hang here
        lines = said(out.stderr)
        assert out.returncode == 2 and len(lines) == 1, out.stderr
        assert all(w in lines[0] for w in words), lines
        assert listing(bad) == before and not (tmp_path / "s.npy").exists()


def test_flipped_bytes_in_the_weights_are_found_by_their_digest(tmp_path, tiny_plugin):
    from gm.errors import GMError

    run = train("tiny", "swiss-roll", steps=2, out=tmp_path / "run", **KW).path
    record = json.loads((run / "config.json").read_text())
    path = run / checkpoint.WEIGHTS
    assert record["sha256"][checkpoint.WEIGHTS] == checkpoint.sha256(path)
    assert record["sha256"][checkpoint.STATE] == checkpoint.sha256(run / checkpoint.STATE)
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0x10  # one bit of one weight: still a valid file of the right shapes
    path.write_bytes(bytes(blob))
    with pytest.raises(GMError, match=r"model\.safetensors is not the file its run recorded"):
        Run.open(run)
    with pytest.raises(GMError, match=r"model\.safetensors is not the file its run recorded"):
        train("tiny", None, steps=4, resume=run, **KW)
    del record["sha256"]  # a run from before digests loads as it did
    (run / "config.json").write_text(json.dumps(record))
    Run.open(run)


def test_every_installed_model_builds_on_the_meta_device():
    """Loading compares a run's config with its weights on the meta device before building
    for real; a model that cannot be built there would skip that check, silently."""
    from gm.build import resolve
    from gm.data import DataInfo

    infos = {
        "vector": DataInfo("v", "vector", (3,)),
        "image": DataInfo("i", "image", (1, 28, 28)),
        "sequence": DataInfo("s", "sequence", (20,), 10),
        "strokes": DataInfo("k", "strokes", (300, 3)),
    }
    for name, spec in plugins.registry("models").items():
        info = infos[(spec.modalities or ("vector",))[0]]
        cls, cfg = resolve(name, info)
        with torch.device("meta"):
            trainer = cls(cfg, info, torch.device("meta"))
        assert all(v.is_meta for v in checkpoint._weights(trainer).values()), name


# --- the same guards, in-process and fast (the mutation check of checkpoint.py runs these) ---
def test_a_lock_is_one_holders_until_released(tmp_path):
    from gm.errors import GMError

    lock = checkpoint.RunLock.acquire(tmp_path)
    assert (tmp_path / checkpoint.LOCK).read_text() == f"{os.getpid()}\n"
    with pytest.raises(GMError, match=rf"another gm process \(pid {os.getpid()}\)"):
        checkpoint.RunLock.acquire(tmp_path)  # a second open file: flock refuses it too
    lock.release()
    lock.release()  # twice is harmless: it closes nothing else (stdout, stderr)
    os.fstat(1), os.fstat(2)
    assert not (tmp_path / checkpoint.LOCK).exists()
    again = checkpoint.RunLock.acquire(tmp_path)
    again.release()


def test_a_reader_about_to_resume_sees_a_held_lock_and_creates_none(tmp_path):
    """A resume reads the checkpoint files before it locks the folder: a writer holding it
    is named first (its half-committed files would read as from different steps)."""
    from gm.errors import GMError

    checkpoint.RunLock.check_free(tmp_path)  # no lock file: free, and none is made
    assert not (tmp_path / checkpoint.LOCK).exists()
    lock = checkpoint.RunLock.acquire(tmp_path)
    with pytest.raises(
        GMError, match=rf"being written by another gm process \(pid {os.getpid()}\)"
    ):
        checkpoint.RunLock.check_free(tmp_path)
    lock.release()
    checkpoint.RunLock.check_free(tmp_path)  # released: free again
    assert not (tmp_path / checkpoint.LOCK).exists()


def test_a_lock_taken_on_a_removed_file_is_taken_again(tmp_path, monkeypatch):
    """A waiter that opened the lock file before its holder removed it must not believe it
    holds the folder: it locks the file that is there now."""
    import fcntl

    real = fcntl.flock
    calls = []

    def flock(fd, op):
        calls.append(fd)
        if len(calls) == 1:  # the holder finishes between our open and our flock
            (tmp_path / checkpoint.LOCK).unlink()
        return real(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    lock = checkpoint.RunLock.acquire(tmp_path)
    assert len(calls) == 2 and (tmp_path / checkpoint.LOCK).exists()
    assert os.fstat(lock.fd).st_ino == (tmp_path / checkpoint.LOCK).stat().st_ino
    lock.release()


def test_a_weights_header_must_describe_the_file_exactly(tmp_path):
    from safetensors.torch import save_file

    from gm.errors import GMError

    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(3, 2), "b": torch.ones(4)}, str(path), metadata={"step": "7"})
    size, header = checkpoint._header(path, {"a": (3, 2), "b": (4,)})
    assert size == path.stat().st_size and header["__metadata__"] == {"step": "7"}
    with pytest.raises(GMError, match=r"a is \(3, 2\) in the file but \(2, 3\)"):
        checkpoint._header(path, {"a": (2, 3), "b": (4,)})
    with pytest.raises(GMError, match=r"missing \['c'\]"):
        checkpoint._header(path, {"a": (3, 2), "b": (4,), "c": (1,)})
    with pytest.raises(GMError, match=r"unexpected \['b'\]"):
        checkpoint._header(path, {"a": (3, 2)})
    with pytest.raises(GMError, match="sha256 differs"):
        checkpoint._header(path, None, "0" * 64)
    checkpoint._header(path, None, checkpoint.sha256(path))
    blob = path.read_bytes()
    for bad in (blob[:-1], blob + b"\0", blob[:4], (10**9).to_bytes(8, "little") + blob[8:]):
        path.write_bytes(bad)
        with pytest.raises(GMError, match="not a valid safetensors file"):
            checkpoint._header(path)


def test_run_files_are_read_only_from_regular_files_of_a_sane_size(tmp_path):
    from gm.errors import GMError

    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(GMError, match="not a regular file"):
        checkpoint.read_regular(tmp_path / "fifo")
    (tmp_path / "f").write_bytes(b"x" * 10)
    assert checkpoint.read_regular(tmp_path / "f", limit=10) == b"x" * 10
    with pytest.raises(GMError, match="11 bytes, more than"):
        (tmp_path / "f").write_bytes(b"x" * 11)
        checkpoint.read_regular(tmp_path / "f", limit=10)


def test_the_committed_step_is_read_from_the_newest_checkpoint(tmp_path, tiny_plugin):
    run = train("tiny", "swiss-roll", steps=4, out=tmp_path / "run", **SETS, **KW).path
    assert checkpoint.committed_step(run) == 4
    assert checkpoint.committed_step(tmp_path) == 0
    pending = run / checkpoint.PENDING
    pending.mkdir()
    trainer = build.from_record(checkpoint.read_record(run))
    checkpoint.save_weights(pending, trainer, 9)  # a commit killed before its moves
    assert checkpoint.committed_step(run) == 9
