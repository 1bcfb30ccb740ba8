"""Regressors and the grouped cross-validation splitter.

Why grouped: the three seeds of one configuration (dataset, arch, method, sparsity) are near
duplicates (same method, same density profile, accuracies within a few tenths of a point). If one
seed sits in the training fold and another in the test fold, a regressor only has to remember the
configuration, and the held-out score measures memory, not generalisation to an unseen pruning
configuration. So every split keeps all seeds of a configuration on the same side.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from ..errors import ConfigError

MODELS = ("ridge", "gbt")
RIDGE_ALPHAS = np.logspace(-2, 3, 11)
CLIP = 5.0  # the ridge's standardised features are clipped to +-CLIP training standard deviations


def signed_log1p(X: np.ndarray) -> np.ndarray:
    """Compress heavy tails while keeping sign and order (defined for every real value)."""
    return np.sign(X) * np.log1p(np.abs(X))


def make_model(name: str, seed: int) -> Pipeline:
    """A fresh, unfitted pipeline: median imputation (fit on the training fold) then the model.

    - ``ridge``: standardised ridge regression, the linear baseline; alpha chosen from
      ``RIDGE_ALPHAS`` by efficient leave-one-out on the training fold only (the test fold is never
      seen). Features first go through a signed log (``sign(x) log(1 + |x|)``) and, after
      standardisation, are clipped to +-5 training standard deviations: several topometrics
      (motif counts, spectral radii) span orders of magnitude, and without this a single test
      network far outside the training range makes a linear model extrapolate to absurd values
      (we saw fold R2 of -1e12 on the paper tables). Trees are invariant to monotone transforms,
      so ``gbt`` gets the raw values.
    - ``gbt``: histogram gradient-boosted trees sized for a few hundred networks (50 shallow trees
      with learning rate 0.2, at most 8 leaves, 5 samples per leaf, 32 bins per feature), which
      keeps one fit at ~20-80 ms on one core. A fit's cost is mostly per-tree overhead and, with
      many features, per-bin split search; halving the trees (doubling the rate) and binning a
      few hundred networks into 32 instead of 255 bins left the published tables' verdicts
      unchanged (docs/benchmarks.md).
    """
    imputer = SimpleImputer(strategy="median", keep_empty_features=True)
    if name == "ridge":
        return make_pipeline(
            imputer,
            FunctionTransformer(signed_log1p),
            StandardScaler(),
            FunctionTransformer(np.clip, kw_args={"a_min": -CLIP, "a_max": CLIP}),
            RidgeCV(alphas=RIDGE_ALPHAS),
        )
    if name == "gbt":
        gbt = HistGradientBoostingRegressor(
            max_iter=50,
            learning_rate=0.2,
            max_leaf_nodes=8,
            min_samples_leaf=5,
            max_bins=32,
            l2_regularization=1e-3,
            early_stopping=False,
            random_state=seed,
        )
        return make_pipeline(imputer, gbt)
    raise ConfigError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")


def ridge_parameters(pipe: Pipeline) -> dict[str, Any]:
    """The numbers of a fitted ``make_model("ridge", ...)`` pipeline as plain lists, enough to
    apply it without scikit-learn: ``clip((signed_log1p(x, NaN -> medians) - mean) / scale,
    +-CLIP) @ coef + intercept`` (the accuracy predictor stores these; its
    ``apply_linear`` is checked against ``pipe.predict`` in the tests)."""
    imputer, scaler, ridge = pipe[0], pipe[2], pipe[-1]
    return {
        "medians": np.asarray(imputer.statistics_, float).tolist(),
        "mean": np.asarray(scaler.mean_, float).tolist(),
        "scale": np.asarray(scaler.scale_, float).tolist(),
        "coef": np.asarray(ridge.coef_, float).tolist(),
        "intercept": float(ridge.intercept_),
        "alpha": float(ridge.alpha_),
    }


def constant_model() -> Pipeline:
    """Predicts the training-fold mean: used when a feature set has no informative column."""
    return make_pipeline(DummyRegressor(strategy="mean"))


@dataclass(frozen=True)
class Split:
    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray


def grouped_splits(groups: np.ndarray, n_splits: int, n_repeats: int, seed: int) -> Iterator[Split]:
    """Repeated GroupKFold with a fresh shuffled group-to-fold assignment per repeat.

    ``n_splits`` is capped at the number of groups. Repeat ``r`` uses ``random_state=seed + r``,
    so the splits are a function of ``seed`` alone and identical for every feature set and model
    (paired comparison).
    """
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ConfigError(
            f"grouped cross-validation needs at least 2 configurations, got {n_groups}"
        )
    if n_splits < 2 or n_repeats < 1:
        raise ConfigError(f"need n_splits >= 2 and n_repeats >= 1 (got {n_splits}, {n_repeats})")
    k = min(n_splits, n_groups)
    dummy = np.zeros(len(groups))
    for r in range(n_repeats):
        cv = GroupKFold(n_splits=k, shuffle=True, random_state=seed + r)
        for f, (tr, te) in enumerate(cv.split(dummy, groups=groups)):
            yield Split(r, f, tr, te)


# --------------------------------------------------------------------------- the sparsity floor
#: the sparsity-only models whose better out-of-fold score is the floor of every regression gain
FLOOR_MODELS = ("curve", "gbt")


class SparsityCurve:
    """The per-sparsity-level mean curve: the mean training target at each sparsity level,
    linearly interpolated between levels and clamped outside them (an unseen level gets its
    neighbours' line). Reads the first column of ``X`` as the sparsity; a minimal scikit-learn
    style regressor (``fit``/``predict``) so it runs through the same folds as the other models.
    """

    def fit(self, X: np.ndarray, y: np.ndarray) -> SparsityCurve:
        s = np.asarray(X, float)[:, 0]
        y = np.asarray(y, float)
        self.levels_, inverse = np.unique(s, return_inverse=True)
        self.values_ = np.bincount(inverse, weights=y) / np.bincount(inverse)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(X, float)[:, 0], self.levels_, self.values_)


def make_floor_model(name: str, seed: int) -> Pipeline | SparsityCurve:
    """A fresh sparsity-only floor model: ``curve`` (:class:`SparsityCurve`) or ``gbt``."""
    if name == "curve":
        return SparsityCurve()
    return make_model(name, seed)


def limit_threads(threads: int):
    """Context manager capping BLAS and OpenMP threads (scikit-learn's gradient boosting, numpy)
    to ``threads`` inside the block, through threadpoolctl: no environment variable is read or
    set, so a caller's explicit choice is what counts."""
    from threadpoolctl import threadpool_limits

    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    return threadpool_limits(limits=int(threads))
