"""CUDA-only paths (``pytest -m cuda``; bench/gpu.py runs them on the first GPU machine):
the primary roll-out as a CUDA graph (compiled or not, in padded chunks) imputes what the
eager roll-out does for a seed, its noise being drawn up front on every path."""

import pytest
import torch
from conftest import make_trainer, train_steps, vector_dataset

from gm.testing import cuda_only
from gm_imputation import policy

SMALL = {
    "gpsi-add": {"hidden": 16, "z_dim": 4, "refine_steps": 2},
    "lstm-add": {"hidden": 8, "z_dim": 4, "refine_steps": 2},
}


@cuda_only
@pytest.mark.parametrize("compile", ["off", "on"])
@pytest.mark.parametrize("model", sorted(SMALL))
def test_graphed_rollout_imputes_what_the_eager_one_does(model, compile, monkeypatch):
    data = vector_dataset(100)
    tr = make_trainer(model, data, batch_size=20, **SMALL[model])
    train_steps(tr, data, 5)
    tr.net.cuda()  # trained on the CPU; the roll-out runs where the net is
    x = data.tensor("test")[:20].clone()
    x[torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.5] = float("nan")
    x = x.cuda()
    monkeypatch.setattr(policy, "CHUNK", 16)  # 2 samples x 20 rows: 3 chunks, the last padded

    def impute(seed, fast):
        torch.manual_seed(seed)
        return tr.impute(
            x, 2, compile=compile if fast else "off", cuda_graph="on" if fast else "off"
        )

    eager, graphed = impute(3, False), impute(3, True)
    assert graphed.is_cuda and not torch.isnan(graphed).any()
    torch.testing.assert_close(graphed, eager, atol=1e-4, rtol=1e-4)
    assert torch.equal(impute(3, True), graphed)  # the kept graphs, replayed
    assert (impute(4, True) - graphed).abs().max() > 0.01  # another seed, other draws
