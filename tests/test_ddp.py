"""Every installed model trains under torchrun with 2 gloo processes, and rank 0 alone writes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gm import plugins

# model -> (dataset, small config) for a few real steps on CPU
SMALL = {
    "gaussian": ("swiss-roll", []),
    "walkback": ("swiss-roll", ["hidden=32", "walk_steps=4"]),
    "diffusion": ("swiss-roll", ["hidden=32", "diffusion_steps=20"]),
    "professor-forcing": ("markov-chain", ["hidden=32"]),
    "scheduled-sampling": ("markov-chain", ["hidden=32"]),
    "gpsi-add": ("swiss-roll", ["hidden=32"]),
    "lstm-add": ("swiss-roll", ["hidden=16", "refine_steps=3"]),
}


def cases():
    models = plugins.registry("models")
    return [pytest.param(name, *SMALL[name], id=name) for name in SMALL if name in models]


@pytest.mark.parametrize(("model", "dataset", "sets"), cases())
def test_torchrun_two_processes(tmp_path, model, dataset, sets):
    run = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "gm",
        "train",
        model,
        "--dataset",
        dataset,
        "--steps",
        "6",
        "--out",
        str(run),
        "--device",
        "cpu",
        "--set",
        "log_every=2",
        "--set",
        "batch_size=16",
        *(a for s in sets for a in ("--set", s)),
    ]
    out = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    # every log_every row, in order, once; the engine may add an early row (first step, ~10 s)
    assert {2, 4, 6} <= set(steps) and steps == sorted(set(steps)) and steps[-1] == 6
    assert (run / "model.safetensors").exists()


# --- faults under torchrun: Ctrl-C, a stopped rank, a killed rank; then an exact resume ---
TINY = Path(__file__).parents[1] / "packages" / "core" / "tests" / "fixtures" / "tinyplugin"
N = 60  # steps of the reference run; every faulty run stops well before and resumes to N
SETS = ["batch_size=16", "log_every=2", "checkpoint_every=4", "sleep=0.02"]


def torchrun(*args, **kw):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "GM_DIST_TIMEOUT": "5",
        "PYTHONPATH": os.pathsep.join([str(TINY), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "gm", "train", "tiny", "--device", "cpu", *args]  # fmt: skip
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def workers(agent: int) -> dict[int, int]:
    """rank -> pid of torchrun's worker processes."""
    out = {}
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            env = Path(f"/proc/{d}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        rank = [e[5:] for e in env if e.startswith(b"RANK=")]
        if ppid == agent and rank:
            out[int(rank[0])] = int(d)
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def tensors(run):
    from safetensors.torch import load_file

    return load_file(str(run / "model.safetensors")), load_file(
        str(run / "trainer_state.safetensors")
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run = tmp_path_factory.mktemp("ref") / "run"
    p = torchrun("--dataset", "swiss-roll", "--steps", str(N), "--out", str(run),
                 *(a for s in SETS for a in ("--set", s)))  # fmt: skip
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    weights, state = tensors(run)
    # each rank drew its own noise, and the checkpoint holds both ranks' RNG states
    assert not torch.equal(state["rng.torch"], state["rng.rank1.torch"])
    return weights


@pytest.mark.parametrize("fault", ["ctrl-c", "sigstop", "sigkill"])
def test_torchrun_fault_then_exact_resume(tmp_path, reference, fault):
    run = tmp_path / "run"
    p = torchrun("--dataset", "swiss-roll", "--steps", str(N), "--out", str(run),
                 *(a for s in SETS for a in ("--set", s)), start_new_session=True)  # fmt: skip
    deadline = time.time() + 120
    while not (run / "model.safetensors").exists() and time.time() < deadline:
        time.sleep(0.02)
    ranks = workers(p.pid)
    assert sorted(ranks) == [0, 1]
    if fault == "ctrl-c":  # a terminal sends SIGINT to the whole group; torchrun forwards it
        os.killpg(p.pid, signal.SIGINT)
    elif fault == "sigkill":
        os.kill(ranks[1], signal.SIGKILL)
    else:
        os.kill(ranks[1], signal.SIGSTOP)
        while alive(ranks[0]) and time.time() < deadline:  # rank 0 gives up after 5 s
            time.sleep(0.05)
        os.kill(ranks[1], signal.SIGCONT)
    _, err = p.communicate(timeout=120)
    assert p.returncode != 0
    gm_lines = [ln for ln in err.splitlines() if ln.startswith("gm:")]
    if fault == "ctrl-c":
        assert len(gm_lines) == 1 and "saved to" in gm_lines[0], err[-3000:]
    if fault == "sigstop":
        assert any("rank 0: another process stopped answering" in ln for ln in gm_lines), err
    step = json.loads((run / "trainer_state.json").read_text())["step"]
    assert 4 <= step < N and not (run / ".checkpoint").exists()
    r = torchrun("--resume", str(run), "--steps", str(N))
    _, err = r.communicate(timeout=300)
    assert r.returncode == 0, err[-3000:]
    weights, _ = tensors(run)
    for k, v in reference.items():
        assert torch.equal(v, weights[k]), (fault, step, k)


def test_sigterm_to_the_agent_of_gm_torchrun_is_one_line_and_143(tmp_path):
    """``python -m gm.torchrun`` is torchrun whose agent, stopped by a signal, leaves no
    traceback: rank 0's line (saved at step N) is the one gm line, and the exit is 143."""
    run = tmp_path / "run"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(TINY), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "gm.torchrun", "--standalone", "--nproc-per-node=2", "-m", "gm",
           "train", "tiny", "--device", "cpu", "--dataset", "swiss-roll", "--steps", "100000",
           "--out", str(run), *(a for s in SETS for a in ("--set", s))]  # fmt: skip
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "model.safetensors").exists() and time.time() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143 and "Traceback" not in err, err[-3000:]
    gm_lines = [ln for ln in err.splitlines() if ln.startswith("gm:")]
    assert len(gm_lines) == 1 and "saved to" in gm_lines[0], err[-3000:]
    step = json.loads((run / "trainer_state.json").read_text())["step"]
    assert f"after step {step};" in gm_lines[0]
