"""The training engine: exact resume, crash-safe checkpoints, Ctrl-C, the NaN guard."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import TINY, env_with, gm_run
from safetensors.torch import load_file

from gm import build, checkpoint, train
from gm.run import Run


def weights(run):
    return load_file(str(run / checkpoint.WEIGHTS))


def test_resume_is_bitwise_exact(tmp_path, tiny_plugin):
    # 2N steps straight vs N steps, then a fresh process-like resume for N more.
    # 40 steps over 10_000/32 batches per epoch; dropout and input noise use the RNG.
    straight = train(
        "tiny", "swiss-roll", steps=40, out=tmp_path / "a", device="cpu", progress=False
    ).path
    half = train(
        "tiny", "swiss-roll", steps=20, out=tmp_path / "b", device="cpu", progress=False
    ).path
    resumed = train("tiny", None, steps=40, resume=half, device="cpu", progress=False).path
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    state = json.loads((resumed / checkpoint.STATE_JSON).read_text())
    assert state["step"] == 40 and state["extra"] == {"steps_done": 40}
    steps = [
        json.loads(line)["step"] for line in (resumed / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 5, 10, 15, 20, 25, 30, 35, 40]  # a row at the first step too


def test_resume_across_an_epoch_boundary(tmp_path, tiny_plugin):
    # n=100 examples, batch 32: 3 batches per epoch, so the resume point is mid-epoch.
    opts = {"n": "100"}
    kw = dict(device="cpu", progress=False, data_options=opts, log_every=1)
    a = train("tiny", "swiss-roll", steps=8, out=tmp_path / "a", **kw).path
    b = train("tiny", "swiss-roll", steps=4, out=tmp_path / "b", **kw).path
    b = train("tiny", None, steps=8, resume=b, device="cpu", progress=False).path
    for k, v in weights(a).items():
        assert torch.equal(v, weights(b)[k]), k


def committing(run) -> bool:
    return bool(list(run.glob(".staging-*"))) or (run / checkpoint.PENDING).exists()


@pytest.mark.slow  # 9 s (durations run, 1 thread, load 4-7)
def test_sigkill_while_checkpointing_leaves_a_loadable_checkpoint(tmp_path, tiny_plugin):
    # A 1500x1500 layer makes each checkpoint ~27 MB, written every step. Each round waits
    # until a checkpoint is being written (a staging or committed folder exists) and kills
    # the process: a random point of the write, unlike test_faults' every call of it.
    run = tmp_path / "run"
    first = [
        "--dataset",
        "swiss-roll",
        "--out",
        str(run),
        "--set",
        "width=1500",
        "--set",
        "checkpoint_every=1",
        "--set",
        "log_every=1",
    ]
    env = env_with(TINY)
    mid_write = 0
    for round_ in range(4):
        extra = first if round_ == 0 else ["--resume", str(run)]
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gm",
                "train",
                "tiny",
                "--steps",
                "100000",
                "--device",
                "cpu",
                *extra,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 120
        while time.time() < deadline and not (
            (run / checkpoint.WEIGHTS).exists() and committing(run)
        ):
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        mid_write += committing(run)
        trainer = Run.open(run).trainer  # must not raise
        assert all(torch.isfinite(p).all() for p in trainer.parameters())
        # every checkpoint file is from one step, so an exact resume is still possible
        checkpoint.load_state(run, build.from_record(checkpoint.read_record(run)))
    assert mid_write, "no kill landed during a write; the test proved nothing"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
@pytest.mark.slow  # 17 s (durations run, 1 thread, load 4-7)
def test_a_signal_from_outside_saves_a_whole_step_and_resumes_exactly(tmp_path, tiny_plugin, sig):
    run = tmp_path / "run"
    sets = {"sleep": "0.01", "log_every": "3", "checkpoint_every": "100000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gm", "train", "tiny", "--dataset", "swiss-roll", "--out",
         str(run), *(a for k, v in sets.items() for a in ("--set", f"{k}={v}")),
         "--steps", "100000", "--device", "cpu"],
        env=env_with(TINY), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 60
    while not (run / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and "--resume" in err
    assert len([ln for ln in err.splitlines() if ln.startswith("gm:")]) == 1, err
    step = json.loads((run / checkpoint.STATE_JSON).read_text())["step"]
    logged = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert step >= max(logged) >= 3
    kw = dict(steps=step + 4, device="cpu", progress=False)
    straight = train("tiny", "swiss-roll", out=tmp_path / "straight", **sets, **kw).path
    resumed = train("tiny", None, resume=run, **kw).path
    for k, v in weights(straight).items():
        assert torch.equal(v, weights(resumed)[k]), k


@pytest.mark.slow  # 11 s (durations run, 1 thread, load 4-7)
def test_nan_loss_stops_cleanly_and_keeps_the_last_good_checkpoint(tmp_path, tiny_plugin):
    run = tmp_path / "run"
    out = gm_run(
        "train",
        "tiny",
        "--dataset",
        "swiss-roll",
        "--out",
        str(run),
        "--device",
        "cpu",
        "--set",
        "nan_at_step=27",
        "--set",
        "checkpoint_every=10",
        "--set",
        "log_every=5",
        "--steps",
        "60",
    )
    assert out.returncode == 1
    assert "NaN" in out.stderr and "step 20" in out.stderr and "Traceback" not in out.stderr
    assert json.loads((run / checkpoint.STATE_JSON).read_text())["step"] == 20
    trainer = Run.open(run).trainer
    assert all(torch.isfinite(p).all() for p in trainer.parameters())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_precision_setting_trains(tmp_path, tiny_plugin, precision):
    run = train(
        "tiny",
        "swiss-roll",
        steps=5,
        out=tmp_path / precision,
        device="cpu",
        progress=False,
        precision=precision,
    ).path
    assert json.loads((run / "config.json").read_text())["config"]["precision"] == precision


def test_periodic_and_final_sample_pictures(tmp_path, tiny_plugin):
    from PIL import Image

    run = train(
        "tiny",
        "swiss-roll",
        steps=10,
        out=tmp_path / "run",
        device="cpu",
        progress=False,
        sample_every=5,
    ).path
    for name in ("samples-0000005.png", "samples-0000010.png", "samples.png"):
        assert Image.open(run / name).size == (512, 512)


def test_sampling_during_training_leaves_the_training_rng_alone(tmp_path, tiny_plugin):
    plain = train(
        "tiny", "swiss-roll", steps=10, out=tmp_path / "a", device="cpu", progress=False
    ).path
    sampled = train(
        "tiny",
        "swiss-roll",
        steps=10,
        out=tmp_path / "b",
        device="cpu",
        progress=False,
        sample_every=3,
    ).path
    for k, v in weights(plain).items():
        assert torch.equal(v, weights(sampled)[k]), k


@pytest.mark.slow  # 4 s (durations run, 1 thread, load 4-7)
def test_compile_setting_compiles_the_modules(tiny_plugin):
    from gm.build import resolve
    from gm.data import load_dataset

    info = load_dataset("circle").info
    cls, cfg = resolve("tiny", info, overrides={"compile": "true"})
    trainer = cls(cfg, info)
    trainer.compile()
    assert all(m._compiled_call_impl is not None for m in trainer.modules().values())


@pytest.mark.slow  # 3 s (durations run, 1 thread, load 4-7)
def test_show_config_prints_the_resolved_config():
    out = gm_run("train", "tiny", "--dataset", "circle", "--set", "width=9", "--show-config")
    assert out.returncode == 0, out.stderr
    cfg = json.loads(out.stdout)
    assert cfg["width"] == 9 and cfg["steps"] == 20 and cfg["precision"] == "auto"


def test_fused_optimizer_matches_the_plain_loop(tmp_path, tiny_plugin):
    kw = dict(steps=15, device="cpu", progress=False)
    fused = train("tiny", "swiss-roll", out=tmp_path / "f", fused_optimizer=True, **kw).path
    plain = train("tiny", "swiss-roll", out=tmp_path / "p", fused_optimizer=False, **kw).path
    a, b = weights(fused), weights(plain)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
