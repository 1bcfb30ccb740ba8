"""Leave-one-method-out validation of the model and its two baselines, per (dataset, arch).

The situation of a user with a new PaI method: each method is held out in turn, the model is fit
on the others and predicts the held-out method at every sparsity. Reported per scope: MAE, the
coverage of the interval, and the held-out method's predicted vs true rank among the methods at
each sparsity. The interval is ``y_hat +- q`` with ``q`` the ``level`` quantile (finite-sample
corrected) of the absolute leave-one-method-out residuals; its coverage is measured the same way,
with ``q`` recomputed without the held-out method's residuals. Scopes with fewer than
:data:`MIN_METHODS` methods cannot be validated this way and are left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..features import higher_is_better
from .model import apply_model, conformal_q, fit_model

DEFAULT_LEVEL = 0.9
PREDICTORS = ("mge", "layer_density", "sparsity")  # the model, then the two baselines
MIN_METHODS = 3  # leave-one-method-out needs two methods to fit on and one to hold out


def _rank(value: float, others: np.ndarray, higher: bool) -> int:
    """1 + the number of ``others`` strictly better than ``value``."""
    better = others > value if higher else others < value
    return int(np.count_nonzero(better)) + 1


def _scope_frames(index: pd.MultiIndex) -> list[tuple[str, str, np.ndarray]]:
    frame = index.to_frame(index=False)
    out = []
    for (ds, arch), part in frame.groupby(["dataset", "arch"], sort=True):
        mask = np.zeros(len(frame), bool)
        mask[part.index.to_numpy()] = True
        out.append((str(ds), str(arch), mask))
    return out


def leave_one_method_out(
    frames: dict[str, pd.DataFrame], y: pd.Series, target: str, level: float = DEFAULT_LEVEL
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Leave-one-method-out per (dataset, arch) for the model and both baselines.

    Returns ``(per_network, per_method, summary)``: held-out predictions; one row per (scope,
    predictor, held-out method) with MAE, interval coverage and rank error; one row per (scope,
    predictor) with the means.
    """
    higher = higher_is_better(target)
    index = frames["mge"].index
    keys = index.to_frame(index=False)
    rows, net_frames = [], []
    for ds, arch, mask in _scope_frames(index):
        k = keys.loc[mask].reset_index(drop=True)
        ys = y.to_numpy(float)[mask]
        s = k["sparsity"].to_numpy(float)
        methods = sorted(k["method"].unique())
        if len(methods) < MIN_METHODS:
            continue
        true_means = k.assign(y=ys).groupby(["method", "sparsity"])["y"].mean()
        for name in PREDICTORS:
            if name not in frames:
                continue
            F = frames[name].loc[index[mask]]
            F = F[[c for c in F.columns if F[c].nunique(dropna=True) > 1]]
            X = F.to_numpy(float)
            pred = np.full(len(ys), np.nan)
            for m in methods:
                te = (k["method"] == m).to_numpy()
                model = fit_model(s[~te], X[~te], ys[~te])
                pred[te] = apply_model(model, s[te], X[te])
            res = np.abs(pred - ys)
            net_frames.append(k.assign(predictor=name, y_true=ys, y_pred=pred))
            for m in methods:
                te = (k["method"] == m).to_numpy()
                q = conformal_q(res[~te], level)
                ranks = []
                pm = pd.Series(pred[te]).groupby(s[te]).mean()
                for sp, value in pm.items():
                    others = true_means.drop(m, level="method").xs(sp, level="sparsity")
                    ranks.append(
                        (
                            _rank(value, others.to_numpy(), higher),
                            _rank(true_means[(m, sp)], others.to_numpy(), higher),
                        )
                    )
                r = np.array(ranks)
                rows.append(
                    {
                        "dataset": ds,
                        "arch": arch,
                        "predictor": name,
                        "held_out": m,
                        "n_networks": int(te.sum()),
                        "mae": float(res[te].mean()),
                        "interval_halfwidth": q,
                        "coverage": float(np.mean(res[te] <= q)),
                        "rank_abs_error": float(np.abs(r[:, 0] - r[:, 1]).mean()),
                        "rank_exact": float(np.mean(r[:, 0] == r[:, 1])),
                        "predicted_ranks": " ".join(map(str, r[:, 0])),
                        "true_ranks": " ".join(map(str, r[:, 1])),
                    }
                )
    per_method = pd.DataFrame(rows)
    per_network = pd.concat(net_frames, ignore_index=True) if net_frames else pd.DataFrame()
    if per_method.empty:
        return per_network, per_method, pd.DataFrame()
    g = per_method.groupby(["dataset", "arch", "predictor"], sort=False)
    summary = g.apply(
        lambda d: pd.Series(
            {
                "n_methods": len(d),
                "n_networks": int(d["n_networks"].sum()),
                "mae": float(np.average(d["mae"], weights=d["n_networks"])),
                "coverage": float(np.average(d["coverage"], weights=d["n_networks"])),
                "rank_abs_error": float(d["rank_abs_error"].mean()),
                "rank_exact": float(d["rank_exact"].mean()),
            }
        ),
        include_groups=False,
    ).reset_index()
    return per_network, per_method, summary


MAE_MARGIN = 0.05  # "beats": MAE more than 5 % below the better baseline
RANK_MARGIN = 0.1  # "beats": mean rank error more than 0.1 places below the better baseline


def lomo_verdicts(summary: pd.DataFrame) -> pd.DataFrame:
    """Per scope: the model's MAE and rank error beside both baselines, and whether it beats both
    (by more than :data:`MAE_MARGIN` relative MAE / :data:`RANK_MARGIN` places)."""
    if summary.empty:
        return summary
    wide = summary.pivot_table(
        index=["dataset", "arch"], columns="predictor", values=["mae", "rank_abs_error", "coverage"]
    )
    out = pd.DataFrame(index=wide.index)
    for p in PREDICTORS:
        if ("mae", p) in wide:
            out[f"mae_{p}"] = wide[("mae", p)]
            out[f"rank_err_{p}"] = wide[("rank_abs_error", p)]
    out["coverage_mge"] = wide[("coverage", "mge")]
    base = [f"mae_{p}" for p in ("sparsity", "layer_density") if f"mae_{p}" in out]
    out["mge_beats_baselines_mae"] = out["mae_mge"] < (1 - MAE_MARGIN) * out[base].min(axis=1)
    rbase = [f"rank_err_{p}" for p in ("sparsity", "layer_density") if f"rank_err_{p}" in out]
    out["mge_beats_baselines_rank"] = out["rank_err_mge"] < out[rbase].min(axis=1) - RANK_MARGIN
    return out.reset_index()
