"""Predict how well a mask will train from the topology of its masked *initial* network.

``fit_predictor`` fits, per (dataset, architecture), a model of the accuracy (or the drop, when the
tables carry dense baselines) on the MGE topometrics; ``predict`` applies it to the metrics of
masks that were never trained, and says where it extrapolates.

    y_hat = curve(sparsity) + ridge(features)

One module per job:

- :mod:`.model`: the one-scope model (sparsity curve + the analysis' ridge, backfitted), the
  conformal interval width, the training range of each feature;
- :mod:`.validation`: leave-one-method-out validation against the sparsity and layer-density
  baselines;
- :mod:`.fit`: ``fit_predictor`` (tables -> ``predictor.json``; ``exclude_features`` leaves
  columns out of the model and is recorded; by default the columns
  :func:`.fit.default_excluded_features` names);
- :mod:`.fileformat`: the file format, writing, and loading with validation of shape and meaning;
- :mod:`.apply`: reading metric files (the workflow's and ``snntopo metrics``'s), prediction,
  extrapolation marks, ranks among all known methods;
- :mod:`.report`: ``write_predictions`` (CSV, JSON and the report section).
"""

from __future__ import annotations

from .apply import extrapolation, metric_files, metric_table, predict, rank_against_known
from .fileformat import (
    FILE,
    FORMAT,
    FORMAT_VERSION,
    METRIC_DEFINITIONS,
    PredictorError,
    load_predictor,
    validate,
)
from .fit import (
    PAPER_MGE_TO_CANONICAL,
    default_excluded_features,
    feature_frames,
    fit_predictor,
)
from .model import apply_linear, apply_model, conformal_q, fit_linear, fit_model
from .report import display_frame, write_predictions
from .validation import DEFAULT_LEVEL, PREDICTORS, leave_one_method_out, lomo_verdicts

__all__ = [
    "DEFAULT_LEVEL",
    "FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "METRIC_DEFINITIONS",
    "PAPER_MGE_TO_CANONICAL",
    "PREDICTORS",
    "PredictorError",
    "apply_linear",
    "apply_model",
    "conformal_q",
    "default_excluded_features",
    "display_frame",
    "extrapolation",
    "feature_frames",
    "fit_linear",
    "fit_model",
    "fit_predictor",
    "leave_one_method_out",
    "load_predictor",
    "lomo_verdicts",
    "metric_files",
    "metric_table",
    "predict",
    "rank_against_known",
    "validate",
    "write_predictions",
]
