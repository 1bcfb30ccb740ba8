"""Grouped cross-validated regression of the target on each feature set (paper 4.2.1), with the
held-out permutation importance of the MGE topometrics (paper 4.2.2) computed on the same folds.

Scopes: ``pooled`` (one model on every network), ``arch`` (one model per architecture) and
``sparsity`` (one model per sparsity level). Within each scope the splits are drawn once and shared
by every feature set and model, so differences between sets are paired, not split noise.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import mean_absolute_error, r2_score

from .features import KEY_LIST, family_of, groups_of, usable_columns
from .models import constant_model, grouped_splits, make_model


@dataclass
class CVResult:
    """Fold scores (one row per scope/group/set/model/repeat/fold), out-of-fold predictions
    (mean over repeats, one row per network and set/model/scope) and importances (one row per
    scope/group/feature/repeat/fold)."""

    folds: pd.DataFrame
    predictions: pd.DataFrame
    importance: pd.DataFrame


def group_labels(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The group label of every row in each scope.

    With one data set: ``pooled`` = "all", ``arch`` = the architecture, ``sparsity`` = the level.
    With several, accuracies of different data sets are not on one scale, so a ``dataset`` scope is
    added and the architecture and sparsity groups are taken within a data set
    ("cifar10/resnet20", "cifar100/0.9"); ``pooled`` then spans every data set.
    """
    arch = frame["arch"].astype(str).to_numpy()
    spars = frame["sparsity"].map(lambda s: f"{s:g}").to_numpy().astype(str)
    out: dict[str, np.ndarray] = {"pooled": np.full(len(frame), "all", dtype=object)}
    ds = frame["dataset"].astype(str).to_numpy()
    if len(np.unique(ds)) > 1:
        out["dataset"] = ds.astype(object)
        out["arch"] = np.char.add(np.char.add(ds.astype(str), "/"), arch).astype(object)
        out["sparsity"] = np.char.add(np.char.add(ds.astype(str), "/"), spars).astype(object)
    else:
        out["arch"] = arch.astype(object)
        out["sparsity"] = spars.astype(object)
    return out


def _group_order(label: str) -> tuple[str, float]:
    """Sparsity groups in numeric order within each data set ("cifar10/0.6" < "cifar10/0.95")."""
    head, _, level = label.rpartition("/")
    return head, float(level)


def scopes_of(index: pd.MultiIndex) -> list[tuple[str, str, np.ndarray]]:
    """(scope, group label, boolean mask) for pooled, each data set (when there are several),
    each architecture and each sparsity (see :func:`group_labels`)."""
    frame = index.to_frame(index=False)
    labels = group_labels(frame)
    out: list[tuple[str, str, np.ndarray]] = []
    for scope, lab in labels.items():
        order = sorted(set(lab), key=_group_order if scope == "sparsity" else str)
        out += [(scope, str(g), lab == g) for g in order]
    return out


def cross_validate(
    sets: dict[str, pd.DataFrame],
    y: pd.Series,
    models: tuple[str, ...],
    n_splits: int,
    n_repeats: int,
    seed: int,
    importance_set: str | None = "mge",
    importance_model: str = "gbt",
    n_permutation_repeats: int = 5,
    progress=None,
) -> CVResult:
    """Run every (scope, feature set, model) through the same grouped splits."""
    index = next(iter(sets.values())).index
    y = y.loc[index]
    fold_rows: list[dict] = []
    pred_frames: list[pd.DataFrame] = []
    imp_rows: list[pd.DataFrame] = []
    for scope, label, mask in scopes_of(index):
        sub_index = index[mask]
        groups = groups_of(sub_index)
        splits = list(grouped_splits(groups, n_splits, n_repeats, seed))
        ys = y.to_numpy(float)[mask]
        if progress:
            progress(f"regression {scope}={label}: {mask.sum()} networks, {len(splits)} folds")
        for set_name, frame in sets.items():
            X_all = frame.loc[sub_index]
            cols = usable_columns(X_all)
            X = X_all[cols].to_numpy(float)
            for model_name in models:
                oof = np.zeros((n_repeats, len(ys)))
                for sp in splits:
                    est = make_model(model_name, seed) if cols else constant_model()
                    Xtr = X[sp.train] if cols else np.zeros((len(sp.train), 1))
                    Xte = X[sp.test] if cols else np.zeros((len(sp.test), 1))
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # RidgeCV/sklearn chatter on tiny folds
                        est.fit(Xtr, ys[sp.train])
                        pred = est.predict(Xte)
                    oof[sp.repeat, sp.test] = pred
                    fold_rows.append(
                        {
                            "scope": scope,
                            "group": label,
                            "feature_set": set_name,
                            "model": model_name,
                            "repeat": sp.repeat,
                            "fold": sp.fold,
                            "n_train": len(sp.train),
                            "n_test": len(sp.test),
                            "n_features": len(cols),
                            "r2": r2_score(ys[sp.test], pred),
                            "mae": mean_absolute_error(ys[sp.test], pred),
                        }
                    )
                    if set_name == importance_set and model_name == importance_model and cols:
                        pi = permutation_importance(
                            est,
                            Xte,
                            ys[sp.test],
                            scoring="neg_mean_absolute_error",
                            n_repeats=n_permutation_repeats,
                            random_state=seed + 7919 * sp.repeat + sp.fold,
                            n_jobs=1,
                        )
                        imp_rows.append(
                            pd.DataFrame(
                                {
                                    "scope": scope,
                                    "group": label,
                                    "feature": cols,
                                    "family": [family_of(c) for c in cols],
                                    "repeat": sp.repeat,
                                    "fold": sp.fold,
                                    "importance": pi.importances_mean,
                                }
                            )
                        )
                pred = sub_index.to_frame(index=False)
                pred["feature_set"] = set_name
                pred["model"] = model_name
                pred["scope"] = scope
                pred["y_true"] = ys
                pred["y_pred"] = oof.mean(axis=0)
                pred["oof_r2_by_repeat"] = np.mean([r2_score(ys, o) for o in oof])
                pred_frames.append(pred)
    return CVResult(
        folds=pd.DataFrame(fold_rows),
        predictions=pd.concat(pred_frames, ignore_index=True),
        importance=pd.concat(imp_rows, ignore_index=True) if imp_rows else pd.DataFrame(),
    )


def summarise_folds(folds: pd.DataFrame, predictions: pd.DataFrame, target: str) -> pd.DataFrame:
    """regression.csv: mean and std over folds of R2 and MAE, plus the out-of-fold R2.

    ``r2_oof`` is the R2 of all out-of-fold predictions of one repeat at once (averaged over
    repeats); it is steadier than per-fold R2 when test folds are small.
    """
    keys = ["scope", "group", "feature_set", "model"]
    agg = (
        folds.groupby(keys, sort=False)
        .agg(
            n_features=("n_features", "first"),
            n_folds=("fold", "size"),
            r2_mean=("r2", "mean"),
            r2_std=("r2", "std"),
            mae_mean=("mae", "mean"),
            mae_std=("mae", "std"),
        )
        .reset_index()
    )
    sizes = (
        folds[folds["repeat"] == 0].groupby(keys, sort=False)["n_test"].sum().rename("n_networks")
    )
    agg = agg.join(sizes, on=keys)
    labels = group_labels(predictions)
    group = np.empty(len(predictions), dtype=object)
    for scope, lab in labels.items():
        sel = (predictions["scope"] == scope).to_numpy()
        group[sel] = lab[sel]
    pred = predictions.assign(group=group)
    oof = pred.groupby(keys, sort=False)["oof_r2_by_repeat"].first().rename("r2_oof")
    n_cfg = pred.groupby(keys, sort=False).apply(
        lambda d: d[["dataset", "arch", "method", "sparsity"]].drop_duplicates().shape[0],
        include_groups=False,
    )
    agg = agg.join(oof, on=keys).join(n_cfg.rename("n_configs"), on=keys)
    agg.insert(4, "target", target)
    cols = [
        "scope", "group", "feature_set", "model", "target", "n_networks", "n_configs",
        "n_features", "n_folds", "r2_mean", "r2_std", "r2_oof", "mae_mean", "mae_std",
    ]  # fmt: skip
    return agg[cols]


def summarise_importance(imp: pd.DataFrame) -> pd.DataFrame:
    """importance.csv: mean/std over held-out folds of the MAE increase when a metric is permuted,
    its rank within the scope group (1 = most important) and its share of the positive total."""
    if imp.empty:
        return pd.DataFrame(
            columns=["scope", "group", "feature", "family", "importance_mean", "importance_std",
                     "n_folds", "rank", "share"]
        )  # fmt: skip
    agg = (
        imp.groupby(["scope", "group", "feature", "family"], sort=False)["importance"]
        .agg(importance_mean="mean", importance_std="std", n_folds="size")
        .reset_index()
    )
    g = agg.groupby(["scope", "group"])["importance_mean"]
    agg["rank"] = g.rank(ascending=False, method="min").astype(int)
    pos = agg["importance_mean"].clip(lower=0)
    total = pos.groupby([agg["scope"], agg["group"]]).transform("sum")
    agg["share"] = np.where(total > 0, pos / total.where(total > 0, 1), 0.0)
    return agg


__all__ = [
    "CVResult",
    "KEY_LIST",
    "cross_validate",
    "group_labels",
    "scopes_of",
    "summarise_folds",
    "summarise_importance",
]
