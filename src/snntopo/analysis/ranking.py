"""Ranking PaI methods (paper 4.2.3).

For each (dataset, arch, sparsity), the methods are ranked by their measured quality (mean over
seeds) and by each predictor. A predictor is either a regressor's out-of-fold prediction (its
configuration was never in the training fold, see :mod:`snntopo.analysis.models`) or a raw
Ramanujan metric averaged over layers and seeds, read as "higher is better" as in the Ramanujan
literature. Agreement: Kendall's tau-b (ties allowed) and top-1 agreement (the method the predictor
puts first is one of the measured best).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

CELL = ["dataset", "arch", "sparsity"]
PREDICTOR = ["feature_set", "model", "scope"]


def _agreement(cell: pd.DataFrame) -> pd.Series:
    true, pred = cell["true_score"].to_numpy(), cell["pred_score"].to_numpy()
    n = len(cell)
    if n < 2 or np.ptp(pred) == 0 or np.ptp(true) == 0:
        tau = np.nan
    else:
        tau = kendalltau(true, pred).statistic
    best_true = np.isclose(true, true.max(), rtol=0, atol=1e-12)
    top1 = float(best_true[int(np.argmax(pred))]) if n else np.nan
    return pd.Series(
        {
            "n_methods": n,
            "kendall_tau": tau,
            "top1_agree": top1,
            "best_method": cell["method"].to_numpy()[int(np.argmax(true))],
            "predicted_best": cell["method"].to_numpy()[int(np.argmax(pred))],
        }
    )


def rank_agreement(
    predictions: pd.DataFrame, higher_is_better: bool, direct: pd.DataFrame | None = None
) -> pd.DataFrame:
    """ranking.csv: one row per predictor and (dataset, arch, sparsity) cell.

    ``predictions`` has the key columns plus ``feature_set, model, scope, y_true, y_pred``.
    ``direct`` (optional) has the key columns, ``y_true`` and one column per raw metric.
    """
    sign = 1.0 if higher_is_better else -1.0
    frames = [
        predictions[[*CELL, "method", *PREDICTOR]].assign(
            true_score=sign * predictions["y_true"], pred_score=sign * predictions["y_pred"]
        )
    ]
    if direct is not None and not direct.empty:
        metrics = [c for c in direct.columns if c not in (*CELL, "method", "seed", "y_true")]
        long = direct.melt(
            id_vars=[*CELL, "method", "seed", "y_true"], value_vars=metrics, var_name="metric"
        )
        frames.append(
            pd.DataFrame(
                {
                    **{c: long[c] for c in (*CELL, "method")},
                    "feature_set": "direct:" + long["metric"],
                    "model": "none",
                    "scope": "none",
                    "true_score": sign * long["y_true"],
                    "pred_score": long["value"],  # raw metric: higher read as better
                }
            )
        )
    allp = pd.concat(frames, ignore_index=True)
    per_method = (
        allp.groupby([*PREDICTOR, *CELL, "method"], sort=True)[["true_score", "pred_score"]]
        .mean()  # mean over seeds; NaN metric values are skipped
        .reset_index()
        .dropna(subset=["pred_score"])
    )
    out = (
        per_method.groupby([*PREDICTOR, *CELL], sort=True)
        .apply(_agreement, include_groups=False)
        .reset_index()
    )
    return out


def summarise_ranking(ranking: pd.DataFrame) -> pd.DataFrame:
    """ranking_summary.csv: mean/std Kendall tau and top-1 rate per predictor, pooled and per arch."""
    pooled = ranking.assign(arch_group="all")
    arch = ranking["arch"].astype(str)
    if ranking["dataset"].nunique() > 1:  # an architecture within one data set
        arch = ranking["dataset"].astype(str) + "/" + arch
    per_arch = ranking.assign(arch_group=arch)
    both = pd.concat([pooled, per_arch], ignore_index=True)
    return (
        both.groupby([*PREDICTOR, "arch_group"], sort=False)
        .agg(
            n_cells=("kendall_tau", "size"),
            kendall_tau_mean=("kendall_tau", "mean"),
            kendall_tau_std=("kendall_tau", "std"),
            top1_rate=("top1_agree", "mean"),
        )
        .reset_index()
        .rename(columns={"arch_group": "arch"})
    )
