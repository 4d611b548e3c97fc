"""Template matching keeps every training row by default (no cap), and matches in bounded
chunks without changing which template is nearest."""

import numpy as np
import torch
from conftest import make_trainer, train_steps

from gm.data import DataInfo, Dataset
from gm_imputation import templates

ROWS = 12_500  # more than the 10,000 templates the memory used to keep at most


def many_rows() -> Dataset:
    g = torch.Generator().manual_seed(0)
    train = torch.rand(ROWS, 3, generator=g)
    return Dataset(DataInfo("many", "vector", (3,)), {"train": train, "test": train[:10]})


def by_rows(t: torch.Tensor) -> torch.Tensor:
    """Rows in lexicographic order of their values rounded to 1e-5 (round-off proof)."""
    key = np.round(t.double().numpy(), 5)
    return t[torch.from_numpy(np.lexsort(key.T[::-1]).copy())]


def test_every_training_row_is_a_template_and_row_12345_is_matched():
    data = many_rows()
    tr = make_trainer("template-matching", data)
    assert tr.config.batch_size == ROWS and len(tr.memory.rows) == ROWS
    train_steps(tr, data, tr.config.steps)
    assert bool(tr.memory.filled.all())
    assert bool(tr.memory.avail.bool().all())  # each template has all its values, not the mask's
    train = data.tensor("train")
    # stored in dataset units (through [0, 1] and back: float round-off), in shuffled order
    stored, sorted_train = by_rows(tr.memory.rows), by_rows(train)
    assert torch.allclose(stored, sorted_train, atol=1e-6, rtol=0)  # each row once, none lost
    query = train[12_345].clone()[None]
    truth = query[0, 2].item()
    query[0, 2] = float("nan")
    filled = tr.scaler.from_unit(tr.impute(tr.unit(query))[0])
    assert abs(filled[0, 2].item() - truth) < 1e-6  # copied from row 12,345, its twin
    assert filled[0, :2].tolist() == query[0, :2].tolist()


def test_max_templates_keeps_that_many():
    data = many_rows()
    tr = make_trainer("template-matching", data, max_templates=300)
    train_steps(tr, data, 1)
    assert len(tr.memory.rows) == 300 and bool(tr.memory.filled.all())


def test_chunked_matching_finds_the_same_templates(monkeypatch):
    data = many_rows()
    tr = make_trainer("template-matching", data, max_templates=2000, batch_size=2000)
    train_steps(tr, data, 1)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(64, 3, generator=g)
    on = (torch.rand(64, 3, generator=g) < 0.6).double()
    table = tr.table()
    whole = tr.memory.nearest(table, x, on)
    loo = tr.memory.nearest(table, table[:64], on, exclude_self=True)
    monkeypatch.setattr(templates, "NEAREST_CELLS", 2000 * 7)  # 7 queries a chunk, last short
    assert torch.equal(tr.memory.nearest(table, x, on), whole)
    assert torch.equal(tr.memory.nearest(table, table[:64], on, exclude_self=True), loo)
    assert (loo != torch.arange(64)).all()  # leave-one-out never picks the row itself


def test_eps_is_chosen_leave_one_out():
    """On values that predict nothing (independent uniform columns) a template's guess is
    poor, so leave-one-out picks a large eps; matching a template to itself would pick the
    smallest."""
    data = many_rows()
    tr = make_trainer("template-matching", data, max_templates=1000, batch_size=1000)
    train_steps(tr, data, 1)
    known = torch.tensor([[1.0, 1.0, 0.0]]).expand(50, -1)  # the third value hidden
    assert tr.choose_eps(known) >= 0.1
