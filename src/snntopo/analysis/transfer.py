"""Transfer: fit on one data set, rank the PaI methods on another (per architecture).

The question a researcher asks is "where will method X rank on data set B?", and the answer used
in practice is "as it ranked on data set A". So, per architecture and ordered pair of data sets
(A, B) that both hold it:

- each predictor (a feature set and model) is fit on *every* network of A and predicts B's
  networks; within each sparsity of B the methods are ordered by their mean prediction;
- the naive order is the methods' mean accuracy measured on A at the same sparsity (no model);

and each order is compared with the order measured on B (Kendall tau-b, top-1). A topology set
"beats the naive order" in a cell when its tau exceeds the naive tau by more than
:data:`snntopo.analysis.ranking.MARGIN`.
"""

from __future__ import annotations

import warnings
from itertools import permutations

import numpy as np
import pandas as pd

from .features import usable_columns
from .models import make_model
from .ranking import MARGIN, _agreement

NAIVE = "naive"


def transfer_sets() -> tuple[str, ...]:
    """The feature sets compared in the transfer table (those present in the tables are used):
    every registered encoding's topometrics, all of them combined, and the layer-density
    profile (the registry is the one list of encodings)."""
    from ..encode import ENCODINGS

    return (*ENCODINGS.names(), "combined", "layer_density")


def _cell_agreement(keys: pd.DataFrame, true: np.ndarray, pred: np.ndarray, sign: float):
    d = keys.assign(true_score=sign * true, pred_score=pred)
    per = d.groupby(["sparsity", "method"])[["true_score", "pred_score"]].mean().reset_index()
    return per.groupby("sparsity").apply(_agreement, include_groups=False).reset_index()


def transfer(
    sets: dict[str, pd.DataFrame],
    y: pd.Series,
    higher_is_better: bool,
    models: tuple[str, ...],
    seed: int,
    feature_sets: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """transfer.csv: one row per (arch, fit data set, predicted data set, sparsity, predictor)."""
    sign = 1.0 if higher_is_better else -1.0
    index = next(iter(sets.values())).index
    keys = index.to_frame(index=False)
    ys = y.loc[index].to_numpy(float)
    used = [s for s in (transfer_sets() if feature_sets is None else feature_sets) if s in sets]
    rows = []
    for arch in sorted(keys["arch"].unique()):
        in_arch = (keys["arch"] == arch).to_numpy()
        datasets = sorted(keys.loc[in_arch, "dataset"].unique())
        for fit_ds, pred_ds in permutations(datasets, 2):
            fit = in_arch & (keys["dataset"] == fit_ds).to_numpy()
            te = in_arch & (keys["dataset"] == pred_ds).to_numpy()
            k_te = keys.loc[te, ["sparsity", "method"]].reset_index(drop=True)
            head = {"arch": arch, "fit_dataset": fit_ds, "pred_dataset": pred_ds}
            # naive: the methods' mean measured on the fit data set at the same sparsity
            src = keys.loc[fit, ["sparsity", "method"]].assign(y=sign * ys[fit])
            src = src.groupby(["sparsity", "method"])["y"].mean()
            naive = src.reindex(pd.MultiIndex.from_frame(k_te)).to_numpy()
            ok = ~np.isnan(naive)
            agg = _cell_agreement(k_te[ok], ys[te][ok], naive[ok], sign)
            rows.append(agg.assign(**head, feature_set=NAIVE, model="none"))
            for fs in used:
                X_all = sets[fs]
                cols = usable_columns(X_all.loc[index[fit]])
                if not cols:
                    continue
                Xf = X_all.loc[index[fit], cols].to_numpy(float)
                Xp = X_all.loc[index[te], cols].to_numpy(float)
                for model in models:
                    est = make_model(model, seed)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        est.fit(Xf, ys[fit])
                        pred = sign * est.predict(Xp)
                    agg = _cell_agreement(k_te, ys[te], pred, sign)
                    rows.append(agg.assign(**head, feature_set=fs, model=model))
    if not rows:
        return pd.DataFrame()
    out = pd.concat(rows, ignore_index=True)
    cols = ["arch", "fit_dataset", "pred_dataset", "sparsity", "feature_set", "model",
            "n_methods", "kendall_tau", "top1_agree", "best_method", "predicted_best"]  # fmt: skip
    out = out[cols]
    nv = out[out["feature_set"] == NAIVE][["arch", "fit_dataset", "pred_dataset", "sparsity",
                                           "kendall_tau"]]  # fmt: skip
    out = out.merge(
        nv.rename(columns={"kendall_tau": "naive_tau"}),
        on=["arch", "fit_dataset", "pred_dataset", "sparsity"],
        how="left",
    )
    out["beats_naive"] = out["kendall_tau"] > out["naive_tau"] + MARGIN
    return out.sort_values(
        ["fit_dataset", "pred_dataset", "arch", "sparsity", "feature_set", "model"]
    ).reset_index(drop=True)


def summarise_transfer(cells: pd.DataFrame) -> pd.DataFrame:
    """transfer_summary.csv: per (fit, predicted data set, predictor): mean tau over the cells of
    every architecture, top-1 rate, and in how many cells the predictor beats the naive order /
    loses to it."""
    if cells.empty:
        return cells
    g = cells.groupby(["fit_dataset", "pred_dataset", "feature_set", "model"], sort=False)
    out = g.agg(
        n_cells=("kendall_tau", "size"),
        kendall_tau_mean=("kendall_tau", "mean"),
        naive_tau_mean=("naive_tau", "mean"),
        top1_rate=("top1_agree", "mean"),
        cells_beating_naive=("beats_naive", "sum"),
    )
    out["cells_losing_to_naive"] = g.apply(
        lambda d: int((d["kendall_tau"] < d["naive_tau"] - MARGIN).sum()), include_groups=False
    )
    out["cells_beating_naive"] = out["cells_beating_naive"].astype(int)
    return out.reset_index()
