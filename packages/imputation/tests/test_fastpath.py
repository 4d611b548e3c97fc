"""The imputation roll-out's fast path: a compiled roll-out imputes what the eager one does
for a seed (the noise of every step is drawn up front on both paths), and the switches
reach the roll-out from the CLI. CUDA graphs need a GPU and are not exercised here."""

import pytest
import torch
from conftest import make_trainer, save_run, train_steps, vector_dataset
from test_cli import ROWS, gm, write_csv

from gm.data import load_dataset
from gm_imputation import policy

SMALL = {  # tiny nets and 2 steps: torch.compile on this CPU takes seconds per graph
    "gpsi-add": {"hidden": 16, "z_dim": 4, "refine_steps": 2},
    "lstm-add": {"hidden": 8, "z_dim": 4, "refine_steps": 2},
}


@pytest.mark.parametrize("model", sorted(SMALL))
@pytest.mark.slow  # 16 s (durations run, 1 thread, load 4-7)
def test_compiled_rollout_imputes_what_the_eager_one_does(model, monkeypatch):
    data = vector_dataset(100)
    tr = make_trainer(model, data, batch_size=20, **SMALL[model])
    train_steps(tr, data, 5)
    x = data.tensor("test")[:20].clone()
    x[torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.5] = float("nan")
    monkeypatch.setattr(policy, "CHUNK", 16)  # 2 samples x 20 rows: 3 chunks, the last padded

    def impute(seed, compile):
        torch.manual_seed(seed)
        return tr.impute(x, 2, compile=compile, cuda_graph="off")

    eager, fast = impute(3, "off"), impute(3, "on")
    assert torch.allclose(eager, fast, atol=1e-5, rtol=0)  # float tolerance: fused kernels
    assert torch.equal(impute(3, "on"), fast)  # the cached graph, run again
    other = impute(4, "on")
    assert (other - fast).abs().max() > 0.01  # another seed draws other imputations
    assert not torch.isnan(fast).any()


def spy_on_rollout(monkeypatch) -> list[tuple[str, str]]:
    """Record the (compile, cuda_graph) switches each primary roll-out gets (the real
    roll-out still runs)."""
    seen, real = [], policy.PrimaryRollout.__call__

    def call(self, x, known, steps, compile="auto", cuda_graph="auto"):
        seen.append((compile, cuda_graph))
        return real(self, x, known, steps, compile, cuda_graph)

    monkeypatch.setattr(policy.PrimaryRollout, "__call__", call)
    return seen


def test_switches_reach_the_rollout_from_the_cli(vector_run, tmp_path, capsys, monkeypatch):
    seen = spy_on_rollout(monkeypatch)
    src, out = write_csv(tmp_path / "in.csv", ROWS), tmp_path / "out.csv"
    assert gm(["impute", vector_run, "-i", src, "-o", out], capsys)[0] == 0
    assert seen[-1] == ("auto", "auto")
    args = ["impute", vector_run, "-i", src, "-o", out, "--compile", "off", "--cuda-graph", "off"]
    assert gm(args, capsys)[0] == 0
    assert seen[-1] == ("off", "off")
    args = ["sample", vector_run, "-n", "4", "-o", tmp_path / "s.npy", "--cuda-graph", "false"]
    assert gm(args, capsys)[0] == 0
    assert seen[-1] == ("auto", "off")  # a run's older true/false spelling still reads
    data = load_dataset("mog-grid")  # a registered dataset, for gm evaluate
    tr = make_trainer("gpsi-add", data, hidden=8, z_dim=2, batch_size=50)
    train_steps(tr, data, 2)
    run = save_run(tr, tmp_path / "mog", "gpsi-add", "mog-grid")
    args = ["evaluate", run, "--compile", "false", "--cuda-graph", "false", "--samples", "1"]
    assert gm(args, capsys)[0] == 0
    assert seen[-1] == ("off", "off")
    code, _, err = gm(
        ["sample", vector_run, "-o", tmp_path / "s.npy", "--compile", "maybe"], capsys
    )
    assert code == 2 and "compile" in err and "Traceback" not in err
    bad = tmp_path / "bad.csv"
    code, _, err = gm(["impute", vector_run, "-i", src, "-o", bad, "--compile", "maybe"], capsys)
    assert code == 2 and "--compile must be auto, on or off" in err and not bad.exists()
