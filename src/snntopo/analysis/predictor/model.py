"""The model of one (dataset, architecture) scope: ``y_hat = curve(sparsity) + ridge(features)``.

``curve`` is the mean target of the training methods at each sparsity level (linear interpolation
between levels, clamped outside), i.e. the best any sparsity-only model can do; the ridge is the
analysis' own (:func:`snntopo.analysis.models.make_model` ``"ridge"``: training-fold median
imputation, signed log, standardisation, clipping at +-CLIP sd, alpha by leave-one-out) fitted on
the residual, its numbers kept as plain lists (:func:`snntopo.analysis.models.ridge_parameters`) so
that a stored predictor is applied without scikit-learn. Curve and ridge are fitted jointly
(backfitting, :func:`fit_model`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..models import CLIP, make_model, ridge_parameters, signed_log1p


def fit_linear(X: np.ndarray, r: np.ndarray) -> dict[str, Any]:
    """The analysis' ridge on the residual ``r``; returns its parameters as plain lists."""
    if X.shape[1] == 0 or len(r) < 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # all-NaN columns
            med = np.nanmedian(X, axis=0) if X.shape[1] else np.zeros(0)
        med = np.where(np.isfinite(med), med, 0.0)
        Z = signed_log1p(np.where(np.isnan(X), med, X))
        scale = Z.std(axis=0) if len(Z) else np.ones(X.shape[1])
        return {
            "medians": med.tolist(),
            "mean": (Z.mean(axis=0) if len(Z) else np.zeros(X.shape[1])).tolist(),
            "scale": np.where(scale > 0, scale, 1.0).tolist(),
            "coef": [0.0] * X.shape[1],
            "intercept": float(np.mean(r)),
            "alpha": float("nan"),
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_model("ridge", seed=0).fit(X, r)
    return ridge_parameters(pipe)


def apply_linear(model: Mapping[str, Any], X: np.ndarray) -> np.ndarray:
    """The stored ridge on raw features ``X`` (NaN -> the training medians)."""
    med = np.asarray(model["medians"], float)
    Z = signed_log1p(np.where(np.isnan(X), med, X))
    mean, scale = np.asarray(model["mean"], float), np.asarray(model["scale"], float)
    Z = np.clip((Z - mean) / scale, -CLIP, CLIP)
    return Z @ np.asarray(model["coef"], float) + float(model["intercept"])


def fit_curve(s: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    """Mean target per sparsity level."""
    levels = np.unique(s)
    return {"levels": levels.tolist(), "values": [float(y[s == v].mean()) for v in levels]}


def apply_curve(curve: Mapping[str, Any], s: np.ndarray) -> np.ndarray:
    return np.interp(s, np.asarray(curve["levels"], float), np.asarray(curve["values"], float))


def fit_model(s: np.ndarray, X: np.ndarray, y: np.ndarray, rounds: int = 8) -> dict[str, Any]:
    """Curve and ridge fitted jointly by backfitting: the ridge on ``y - curve``, then the curve
    on ``y - ridge`` (its intercept folded into the curve), ``rounds`` times.

    The ridge's preprocessing (imputation, signed log, standardisation, clip) depends on ``X``
    only, so it is fitted once; each round refits only the pipeline's final ridge."""
    from sklearn.base import clone

    curve = fit_curve(s, y)
    if X.shape[1] == 0 or len(y) < 3:
        return {"curve": curve, "linear": fit_linear(X, y - apply_curve(curve, s))}
    pipe = make_model("ridge", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Z = pipe[:-1].fit_transform(X)  # fits the pipeline's own preprocessing steps
        est = clone(pipe[-1]).fit(Z, y - apply_curve(curve, s))
        for _ in range(rounds):
            curve = fit_curve(s, y - est.predict(Z))
            est = clone(pipe[-1]).fit(Z, y - apply_curve(curve, s))
    pipe.steps[-1] = (pipe.steps[-1][0], est)
    return {"curve": curve, "linear": ridge_parameters(pipe)}


def apply_model(model: Mapping[str, Any], s: np.ndarray, X: np.ndarray) -> np.ndarray:
    return apply_curve(model["curve"], s) + apply_linear(model["linear"], X)


def conformal_q(abs_res: np.ndarray, level: float) -> float:
    """The ceil((n+1) level)/n empirical quantile of absolute residuals (inf if too few)."""
    a = np.sort(abs_res[np.isfinite(abs_res)])
    n = len(a)
    k = math.ceil((n + 1) * level)
    return float(a[k - 1]) if 0 < k <= n else float("inf")


def feature_ranges(X: np.ndarray) -> dict[str, list[float]]:
    """Per feature (column of ``X``, NaN ignored): the training minimum, maximum, mean and
    standard deviation, stored so that a new network's distance from the training data can be
    stated in standard deviations."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-NaN columns
        out = {
            "min": np.nanmin(X, axis=0),
            "max": np.nanmax(X, axis=0),
            "mean": np.nanmean(X, axis=0),
            "std": np.nanstd(X, axis=0),
        }
    return {k: [float(x) for x in v] for k, v in out.items()}
