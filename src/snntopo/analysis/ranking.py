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
#: feature sets that carry no information within one sparsity level: their tau is undefined
NO_WITHIN_CELL = ("sparsity",)
#: the naive transfer orders (see :func:`naive_orders`), as feature-set names in ranking.csv
NAIVE = ("naive:dataset", "naive:arch")
MARGIN = 0.02  # tau differences below this count as a tie


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


def naive_orders(measured: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    """The naive transfer order of every (dataset, arch, sparsity) cell: the methods ordered as
    they were *measured* elsewhere in the tables, the answer a researcher gives without any model.

    ``measured`` has ``dataset, arch, sparsity, method`` and ``y`` (the mean over seeds of one
    configuration). Two orders per cell, each only where the tables hold the source:

    - ``naive:dataset``: the same architecture and sparsity on the *other* data sets;
    - ``naive:arch``: the other architectures at the same sparsity on the same data set.

    With several sources the score of a method is its mean percentile rank over them (ranks, not
    accuracies, because data sets differ in difficulty); with one source it is exactly that
    source's order. Returns ``dataset, arch, sparsity, method, feature_set, pred_score``
    (higher = better).
    """
    sign = 1.0 if higher_is_better else -1.0
    m = measured[[*CELL, "method"]].copy()
    m["pct"] = (sign * measured["y"]).groupby([measured[c] for c in CELL]).rank(pct=True)
    out = []
    for name, same, other in (("naive:dataset", "arch", "dataset"),
                              ("naive:arch", "dataset", "arch")):  # fmt: skip
        src = m.rename(columns={other: "source", "pct": "pred_score"})
        j = m[[*CELL, "method"]].merge(src, on=[same, "sparsity", "method"])
        j = j[j[other] != j["source"]]
        if j.empty:
            continue
        agg = j.groupby([*CELL, "method"], sort=True)["pred_score"].mean().reset_index()
        out.append(agg.assign(feature_set=name))
    cols = [*CELL, "method", "feature_set", "pred_score"]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def rank_agreement(
    predictions: pd.DataFrame,
    higher_is_better: bool,
    direct: pd.DataFrame | None = None,
    naive: bool = True,
) -> pd.DataFrame:
    """ranking.csv: one row per predictor and (dataset, arch, sparsity) cell.

    ``predictions`` has the key columns plus ``feature_set, model, scope, y_true, y_pred``.
    ``direct`` (optional) has the key columns, ``y_true`` and one column per raw metric.
    ``naive``: add the naive transfer orders (:func:`naive_orders`) as predictors
    ``naive:dataset`` / ``naive:arch`` (model and scope ``none``) wherever the tables hold a
    source for them.

    A feature set in :data:`NO_WITHIN_CELL` (``sparsity``) cannot order methods within one
    sparsity: its tau and top-1 are left undefined (NaN). Its predictions do differ within a cell,
    but only because holding a configuration out shifts the training mean against it, which gives
    a spurious negative tau; that is no floor.
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
    if naive:
        truth = predictions.groupby([*CELL, "method"], sort=True)["y_true"].mean().reset_index()
        orders = naive_orders(truth.rename(columns={"y_true": "y"}), higher_is_better)
        if len(orders):
            truth["true_score"] = sign * truth["y_true"]
            nv = orders.merge(truth[[*CELL, "method", "true_score"]], on=[*CELL, "method"])
            per_method = pd.concat(
                [per_method, nv.assign(model="none", scope="none")[per_method.columns]],
                ignore_index=True,
            )
    out = (
        per_method.groupby([*PREDICTOR, *CELL], sort=True)
        .apply(_agreement, include_groups=False)
        .reset_index()
    )
    undefined = out["feature_set"].isin(NO_WITHIN_CELL)
    out.loc[undefined, ["kendall_tau", "top1_agree"]] = np.nan
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
