"""torchrun with 2 gloo processes: identical weights on both ranks, equal to one process on the
combined batch, and only rank 0 writes."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import TINY, env_with
from safetensors.torch import load_file

SCRIPT = """
import os, sys
from safetensors.torch import save_file
import gm.engine
from gm import distributed

# Every rank passes the buffer sync just before a checkpoint: record its weights there.
captured, sync = {}, distributed.sync_modules
def recording_sync(modules, buffers_only=False):
    sync(modules, buffers_only=buffers_only)
    if buffers_only:
        captured.update({f"{m}.{k}": v.detach().clone() for m, mod in modules.items()
                         for k, v in mod.state_dict().items()})
gm.engine.distributed.sync_modules = recording_sync
gm.train("gaussian", "swiss-roll", steps=12, out=sys.argv[1], device="cpu", progress=False,
                batch_size=64, log_every=4, lr=0.05)
save_file(captured, f"{sys.argv[2]}/rank{os.environ.get('RANK', '0')}.safetensors")
"""


@pytest.mark.slow  # 26 s (durations run, 1 thread, load 4-7)
def test_two_gloo_ranks_match_one_process_on_the_combined_batch(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env = env_with(TINY)
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            str(script),
            str(tmp_path / "ddp"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    (tmp_path / "single").mkdir()
    one = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one"), str(tmp_path / "single")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    r0, r1 = (
        load_file(str(tmp_path / "rank0.safetensors")),
        load_file(str(tmp_path / "rank1.safetensors")),
    )
    single = load_file(str(tmp_path / "single" / "rank0.safetensors"))
    written = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    for k in single:
        assert torch.equal(r0[k], r1[k]), f"ranks disagree on {k}"
        torch.testing.assert_close(r0[k], single[k], rtol=1e-5, atol=1e-6)
        assert torch.equal(written[k], r0[k])
    # only rank 0 wrote: one metrics line per logging step, not two
    steps = [
        json.loads(x)["step"] for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 4, 8, 12]  # a row at the first step too
