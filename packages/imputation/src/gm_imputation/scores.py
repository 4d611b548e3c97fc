"""Typed evaluation scores: what a model's ``score_batch`` returns, and the metrics they give.

A :class:`Scores` holds, per example of a batch, sums over its target values (the values
hidden by the mask that the data has). Each field's ``kind`` says what its total over a
split becomes (:func:`metrics`), with ``n_target`` target values in ``n`` examples:

- ``nll``: a negative log-likelihood (or an upper bound on one) -> ``{name}nll_per_value``
  (total / n_target) and ``{name}nll_paper`` (total / n / drop rate, the paper's figure);
- ``sq_err``: squared errors of a point imputation -> ``{name}rmse_missing``;
- ``per_value``: any other sum -> ``{name}per_value``.
"""

from __future__ import annotations

import dataclasses
import math

import torch


def _score(kind: str, name: str, required: bool = False):
    meta = {"kind": kind, "name": name}
    if required:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=None, metadata=meta)


@dataclasses.dataclass
class Scores:
    bound: torch.Tensor = _score("nll", "", required=True)  # the model's NLL (bound)
    sq_err: torch.Tensor = _score("sq_err", "", required=True)  # of the point imputation
    iw_bound: torch.Tensor | None = _score("nll", "iw_")  # importance-weighted bound
    primary_bound: torch.Tensor | None = _score("nll", "primary_")  # E_p[NLL_T], primary p
    single_sq_err: torch.Tensor | None = _score("sq_err", "single_")  # one roll-out's error
    nll_term: torch.Tensor | None = _score("per_value", "nll_term_")  # NLL_T part of bound
    kl: torch.Tensor | None = _score("per_value", "kl_")  # sum_t KL(q||p) part of bound
    oracle_bound: torch.Tensor | None = _score("nll", "oracle_")  # template matching's oracle
    oracle_sq_err: torch.Tensor | None = _score("sq_err", "oracle_")


Totals = dict[str, float]  # a split's sum of each Scores field that a model gives


def add(totals: Totals, scores: Scores) -> None:
    """Add a batch's scores to the running totals of a split (in float64)."""
    for f in dataclasses.fields(Scores):
        value = getattr(scores, f.name)
        if value is not None:
            totals[f.name] = totals.get(f.name, 0.0) + float(value.double().sum())


def metrics(totals: Totals, n_target: float, n: int, drop_rate: float) -> dict[str, float]:
    """A split's totals -> its metrics (see the module doc for each kind)."""
    out: dict[str, float] = {}
    for f in dataclasses.fields(Scores):
        if f.name not in totals:
            continue
        total, name, kind = totals[f.name], f.metadata["name"], f.metadata["kind"]
        if kind == "nll":
            out[name + "nll_per_value"] = total / n_target
            out[name + "nll_paper"] = total / n / drop_rate
        elif kind == "sq_err":
            out[name + "rmse_missing"] = math.sqrt(total / n_target)
        else:
            out[name + "per_value"] = total / n_target
    return out
