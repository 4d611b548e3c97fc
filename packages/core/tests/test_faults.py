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

from gm import checkpoint, plugins
from gm.engine import train
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
                    overrides=SETS, **KW)  # fmt: skip
        yield load_file(str(run / checkpoint.WEIGHTS))
    plugins.reset()


def resumes_exactly(run, straight):
    resumed = train("tiny", "swiss-roll", steps=STEPS, resume=run, **KW)
    got = load_file(str(resumed / checkpoint.WEIGHTS))
    assert got.keys() == straight.keys()
    for k in got:
        assert torch.equal(got[k], straight[k]), k
    assert not list(run.glob(".staging-*")) and not (run / checkpoint.PENDING).exists()
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))


def saved_step(run) -> int:
    trainer = checkpoint.build(checkpoint.read_record(run))
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
        train("tiny", "swiss-roll", steps=STEPS, out=run, overrides=SETS, **KW)

    return forked(child)


def count_commit_calls(tmp_path) -> int:
    run = train("tiny", "swiss-roll", steps=2, out=tmp_path / "count", overrides=SETS, **KW)
    trainer = checkpoint.build(checkpoint.read_record(run))
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


def test_sigkill_at_every_point_of_a_commit(tmp_path, tiny_plugin, straight):
    n = count_commit_calls(tmp_path)
    assert n >= 5  # three files, the commit rename, the moves into place
    found = []
    for k in range(n + 1):
        run = tmp_path / f"k{k}"
        code, err = kill_during_commit(run, at_step=4, k=k)
        assert code == 128 + signal.SIGKILL, (k, code, err)
        before = listing(run)
        checkpoint.load(run)  # a reader sees one whole checkpoint ...
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
    run = train("tiny", "swiss-roll", steps=4, out=tmp_path / "run", overrides=SETS, **KW)
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 5, "lo')  # the disk filled in the middle of a line
    resumes_exactly(run, straight)


def test_a_start_that_fails_leaves_nothing_that_blocks_a_retry(tmp_path, tiny_plugin):
    from gm.errors import TrainingStopped

    run = tmp_path / "new" / "run"
    with pytest.raises(TrainingStopped, match="no checkpoint was written"):
        train("tiny", "swiss-roll", steps=4, out=run, overrides={"nan_at_step": 1}, **KW)
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
    run = train("tiny", "swiss-roll", steps=2, out=tmp_path / "run", **KW)
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
        type(checkpoint.build(checkpoint.read_record(run))).evaluate = evaluate
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
