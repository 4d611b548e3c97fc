"""gm-imputation: imputation policies that refine a guess over steps, trained by guided
policy search (Bachman & Precup, *Data Generation as Sequential Decision Making*, NIPS 2015),
with the paper's baselines and ``gm impute`` for users' own data.

Importing this package is cheap: torch is imported by the modules that need it, and
``gm_imputation.GMImputer`` (the scikit-learn estimator) on first use.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "GMImputer":
        from gm_imputation.estimator import GMImputer

        return GMImputer
    raise AttributeError(f"module 'gm_imputation' has no attribute {name!r}")
