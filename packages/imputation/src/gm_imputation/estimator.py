"""``GMImputer``: ``gm impute`` as a scikit-learn transformer (fit / transform, Pipeline,
cross_val_score, get_params / set_params).

``fit(X)`` trains gpsi-add on the observed cells of ``X`` (NaN = missing; no complete rows
are needed) exactly as ``gm impute FILE`` does (:mod:`gm_imputation.fit`);
``transform(X)`` fills the NaNs of ``X`` and copies every observed value unchanged. A
pandas DataFrame may hold text / categorical columns: they are used as predictors and
imputed with a level seen in the column, and come back as a DataFrame with the same
columns and dtypes. ``sample_posterior=True`` makes ``transform`` return one draw from the
model instead of the point imputation, and :meth:`GMImputer.draws` gives several
(multiple imputation), as IterativeImputer's ``sample_posterior`` does.

scikit-learn is needed only to use this module (``pip install scikit-learn``).
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from gm import build, plugins
from gm.errors import GMError
from gm_imputation import fit, mixed


class GMImputer(TransformerMixin, BaseEstimator):
    """Fill missing values with a sequential imputation policy (gpsi-add by default).

    Parameters: ``model`` (gpsi-add, gpsi-jump, lstm-add, lstm-jump); ``max_steps``
    (training steps; None: passes over the rows, cut short by early stopping on held-out
    cells); ``sample_posterior`` (transform draws instead of the point imputation);
    ``random_state`` (an int makes fit and transform repeatable); ``device``.
    """

    def __init__(
        self,
        model: str = "gpsi-add",
        max_steps: int | None = None,
        sample_posterior: bool = False,
        random_state: int | None = None,
        device: str = "cpu",
    ):
        self.model = model
        self.max_steps = max_steps
        self.sample_posterior = sample_posterior
        self.random_state = random_state
        self.device = device

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # --- input --------------------------------------------------------------------------
    def _codes(self, X, reset: bool) -> np.ndarray:
        """``X`` -> ``(N, C)`` codes; on ``reset`` also learns the schema from it."""
        frame = hasattr(X, "columns") and hasattr(X, "dtypes")
        if frame and any(_is_text(X[c]) for c in X.columns):
            return self._frame_codes(X, reset)
        x = validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan")
        if reset:
            self.schema_ = mixed.Schema.numeric(x, [str(c) for c in range(x.shape[1])])
            self.frame_columns_ = list(X.columns) if frame else None
            self.frame_dtypes_ = X.dtypes if frame else None
        return x

    def _frame_codes(self, X, reset: bool) -> np.ndarray:
        if reset:
            self.n_features_in_ = X.shape[1]
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
            self.frame_columns_, self.frame_dtypes_ = list(X.columns), X.dtypes
            cols = []
            for c in X.columns:
                if _is_text(X[c]):
                    seen = sorted({str(v) for v in X[c] if not _na(v)})
                    cols.append(mixed.Column(str(c), "category", seen))
                else:
                    v = X[c].to_numpy(dtype=np.float64, na_value=np.nan)
                    cols.append(mixed.numeric_column(str(c), v))
            self.schema_ = mixed.Schema(cols)
        elif list(X.columns) != self.frame_columns_:
            raise ValueError(
                f"X has columns {list(X.columns)} but GMImputer was fitted on "
                f"{self.frame_columns_}; give the same columns in the same order."
            )
        codes = np.empty(X.shape)
        for j, (c, col) in enumerate(zip(X.columns, self.schema_.columns, strict=True)):
            if col.kind == "category":
                index = {lv: i for i, lv in enumerate(col.levels)}
                texts = [None if _na(v) else str(v) for v in X[c]]
                unseen = [t for t in texts if t is not None and t not in index]
                if unseen:
                    raise ValueError(
                        f"column {c!r} holds {unseen[0]!r}, a value GMImputer never saw "
                        f"there in fit (it knows {col.levels[:5]})."
                    )
                codes[:, j] = [math.nan if t is None else index[t] for t in texts]
            else:
                codes[:, j] = X[c].to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(codes).any():
            raise ValueError("Input X contains infinity; use NaN for a missing value.")
        return codes

    # --- fit / transform ----------------------------------------------------------------
    def fit(self, X, y=None):
        codes = self._codes(X, reset=True)
        if len(codes) < 2:
            raise ValueError(
                f"GMImputer needs at least 2 samples to learn from; got n_samples = {len(codes)}."
            )
        empty = np.flatnonzero(np.isnan(codes).all(0))
        if len(empty):
            raise ValueError(f"column {empty[0]} of X is missing in every row; drop it.")
        seed = 0 if self.random_state is None else int(self.random_state)
        torch.manual_seed(seed)
        try:
            self.trainer_, self.report_ = fit.fit(
                codes,
                model=self.model,
                seed=seed,
                max_steps=self.max_steps,
                schema=self.schema_,
                names=[c.name for c in self.schema_.columns],
                device=self.device,
            )
        except GMError as err:
            raise ValueError(str(err)) from None
        return self

    def transform(self, X):
        check_is_fitted(self, "trainer_")
        codes = self._codes(X, reset=False)
        return self._back(X, self._fill(codes, 1, draw=self.sample_posterior)[0])

    def draws(self, X, n: int = 5) -> list:
        """``n`` draws of the missing values of ``X`` (multiple imputation): a list of
        ``n`` completed copies of ``X``."""
        check_is_fitted(self, "trainer_")
        codes = self._codes(X, reset=False)
        return [self._back(X, c) for c in self._fill(codes, n, draw=True)]

    def _fill(self, codes: np.ndarray, n: int, draw: bool) -> list[np.ndarray]:
        out = [np.array(codes) for _ in range(max(n, 2) if draw else 1)]
        if not np.isnan(codes).any() or len(codes) == 0:
            return out[:n]
        seed = 0 if self.random_state is None else int(self.random_state)
        with torch.random.fork_rng(devices=[]):  # repeatable without touching the caller's
            torch.manual_seed(seed)

            def write(k, a, rows):
                out[k][a : a + len(rows)] = rows

            fit.fill(self.trainer_, codes, write, samples=len(out))  # 2+: draws, 1: point
        return out[:n]

    def _back(self, X, codes: np.ndarray):
        """Codes -> what the user gave: a float array, or a DataFrame like ``X``."""
        if self.frame_columns_ is None or not hasattr(X, "columns"):
            return codes
        import pandas as pd

        data: dict[Any, Any] = {}
        for j, (c, col) in enumerate(zip(self.frame_columns_, self.schema_.columns, strict=True)):
            v = codes[:, j]
            if col.kind == "category":
                data[c] = [col.levels[int(k)] if k == k else None for k in v]
            else:
                data[c] = v
        out = pd.DataFrame(data, index=X.index)
        dtypes = self.frame_dtypes_
        assert dtypes is not None  # set with frame_columns_
        for c in self.frame_columns_:
            dtype = dtypes[c]
            if not out[c].isna().any():
                with contextlib.suppress(TypeError, ValueError):  # else keep what it is
                    out[c] = out[c].astype(dtype)
        return out

    # --- pickling: the trainer's weights as tensors, the trainer rebuilt ----------------
    def __getstate__(self):
        state = dict(self.__dict__)
        trainer = state.pop("trainer_", None)
        if trainer is not None:
            state["_trainer_state"] = {
                "config": copy.deepcopy(trainer.config),
                "info": trainer.info,
                "weights": {k: m.state_dict() for k, m in trainer.modules().items()},
            }
        return state

    def __setstate__(self, state):
        saved = state.pop("_trainer_state", None)
        self.__dict__.update(state)
        if saved is not None:
            cls = plugins.load(build.model_spec(self.model))
            trainer = build.trainer(cls, saved["config"], saved["info"], self.device)
            for k, module in trainer.modules().items():
                module.load_state_dict(saved["weights"][k])
            trainer.train(False)
            self.trainer_ = trainer


def _is_text(series) -> bool:
    kind = series.dtype.kind
    return kind in "OSU" or str(series.dtype) in ("category", "string")


def _na(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or str(v) in ("<NA>", "nan")
