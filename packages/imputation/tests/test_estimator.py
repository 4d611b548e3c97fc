"""GMImputer, gm impute as a scikit-learn estimator: scikit-learn's own check_estimator
(with an imputer's tags: NaN allowed), a Pipeline inside cross_val_score, DataFrames with
text columns, draws, and repeatability."""

import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")

from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

from gm_imputation import GMImputer  # noqa: E402


@pytest.mark.slow  # about 50 small fits: 10-20 s alone
def test_scikit_learns_check_estimator():
    check_estimator(GMImputer(max_steps=20, random_state=0))
    assert GMImputer().__sklearn_tags__().input_tags.allow_nan


def holed(n=120, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 1))
    x = np.hstack([z, 2 * z, -z]) + 0.1 * rng.normal(size=(n, 3))
    y = x.sum(1) + 0.1 * rng.normal(size=n)
    x[rng.random(x.shape) < 0.2] = np.nan
    return x, y


@pytest.mark.slow  # a 400-step fit: about 8 s alone
def test_fit_transform_fills_and_keeps_observed_values_and_repeats():
    x, _ = holed()
    imp = GMImputer(max_steps=400, random_state=0)
    out = imp.fit_transform(x)
    seen = ~np.isnan(x)
    assert not np.isnan(out).any() and np.array_equal(out[seen], x[seen])
    assert np.array_equal(imp.transform(x), out)  # random_state: the same fill
    again = pickle.loads(pickle.dumps(imp))
    assert np.array_equal(again.transform(x), out)
    assert imp.get_params()["max_steps"] == 400
    assert imp.set_params(sample_posterior=True).sample_posterior
    draws = imp.draws(x, 3)
    assert len(draws) == 3 and not np.array_equal(draws[0], draws[1])
    assert all(np.array_equal(d[seen], x[seen]) for d in draws)
    # the columns are tied (x1 = 2 x0): the point fill uses it, unlike a column mean
    miss = np.isnan(x[:, 1]) & seen[:, 0]
    err = np.abs(out[miss, 1] - 2 * x[miss, 0]).mean()
    assert err < 0.5 * np.abs(np.nanmean(x[:, 1]) - 2 * x[miss, 0]).mean()


@pytest.mark.slow  # 5 s (durations run, 1 thread, load 4-7)
def test_in_a_pipeline_and_cross_validation():
    x, y = holed()
    pipe = make_pipeline(GMImputer(max_steps=60, random_state=0), Ridge())
    scores = cross_val_score(pipe, x, y, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores)) and scores.mean() > 0.5


@pytest.mark.slow  # 9 s (durations run, 1 thread, load 4-7)
def test_a_dataframe_with_a_text_column():
    rng = np.random.default_rng(0)
    n = 120
    kind = rng.choice(["small", "large"], n)
    size = np.where(kind == "small", 1.0, 5.0) + 0.3 * rng.normal(size=n)
    count = rng.integers(0, 4, n)
    df = pd.DataFrame({"kind": kind, "size": size, "count": count})
    holed = df.copy()
    holed.loc[rng.random(n) < 0.2, "kind"] = None
    holed["count"] = holed["count"].astype("Int64")
    holed.loc[rng.random(n) < 0.2, "count"] = pd.NA
    out = GMImputer(max_steps=300, random_state=0).fit_transform(holed)
    assert list(out.columns) == ["kind", "size", "count"] and out.isna().sum().sum() == 0
    assert set(out["kind"]) <= {"small", "large"}
    hidden = holed["kind"].isna().to_numpy()
    assert (out["kind"][hidden] == df["kind"][hidden]).mean() >= 0.9  # read from the size
    assert (out["count"] == out["count"].round()).all()  # integers stay integers
    with pytest.raises(ValueError, match="never saw"):
        GMImputer(max_steps=5).fit(holed).transform(holed.assign(kind="medium"))
