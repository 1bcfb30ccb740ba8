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
from sklearn.metrics import mean_absolute_error, r2_score

from .features import KEY_LIST, family_of, groups_of, usable_columns
from .models import FLOOR_MODELS, constant_model, grouped_splits, make_floor_model, make_model


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


def _permutation_importance(
    est, X: np.ndarray, y: np.ndarray, n_repeats: int, seed: int
) -> np.ndarray:
    """Mean increase of the MAE when one column of ``X`` is shuffled (``n_repeats`` shuffles per
    column), the same statistic as scikit-learn's ``permutation_importance`` with
    ``neg_mean_absolute_error``, computed with one ``predict`` call on all shuffled copies stacked
    (a tree ensemble's per-call overhead dominates on a test fold of a few dozen networks)."""
    rng = np.random.default_rng(seed)
    n, p = X.shape
    base = mean_absolute_error(y, est.predict(X))
    stack = np.repeat(X[None, :, :], p * n_repeats, axis=0)
    for j in range(p):
        for r in range(n_repeats):
            stack[j * n_repeats + r, :, j] = X[rng.permutation(n), j]
    pred = est.predict(stack.reshape(-1, X.shape[1])).reshape(p, n_repeats, n)
    mae = np.abs(pred - y[None, None, :]).mean(axis=2)
    return mae.mean(axis=1) - base


def _cv_scope(
    scope: str,
    label: str,
    sub_index: pd.MultiIndex,
    ys: np.ndarray,
    frames: dict[str, pd.DataFrame],
    models: tuple[str, ...],
    n_splits: int,
    n_repeats: int,
    seed: int,
    importance_set: str | None,
    importance_model: str,
    n_permutation_repeats: int,
) -> tuple[list[dict], list[pd.DataFrame], list[pd.DataFrame]]:
    """Every feature set and model of one scope group through the same grouped splits."""
    fold_rows: list[dict] = []
    pred_frames: list[pd.DataFrame] = []
    imp_rows: list[pd.DataFrame] = []
    groups = groups_of(sub_index)
    splits = list(grouped_splits(groups, n_splits, n_repeats, seed))
    for set_name, X_all in frames.items():
        cols = usable_columns(X_all)
        X = X_all[cols].to_numpy(float)
        set_models = models
        if set_name == "sparsity":  # the floor: best of the per-level curve and GBT on sparsity
            set_models = tuple(dict.fromkeys((*models, *FLOOR_MODELS)))
        for model_name in set_models:
            oof = np.zeros((n_repeats, len(ys)))
            for sp in splits:
                if not cols:
                    est = constant_model()
                elif model_name in FLOOR_MODELS and set_name == "sparsity":
                    est = make_floor_model(model_name, seed)
                else:
                    est = make_model(model_name, seed)
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
                    imp = _permutation_importance(
                        est, Xte, ys[sp.test], n_permutation_repeats,
                        seed + 7919 * sp.repeat + sp.fold,
                    )  # fmt: skip
                    imp_rows.append(
                        pd.DataFrame(
                            {
                                "scope": scope,
                                "group": label,
                                "feature": cols,
                                "family": [family_of(c) for c in cols],
                                "repeat": sp.repeat,
                                "fold": sp.fold,
                                "importance": imp,
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
            pred["oof_mae_by_repeat"] = np.mean([mean_absolute_error(ys, o) for o in oof])
            pred_frames.append(pred)
    return fold_rows, pred_frames, imp_rows


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
    n_jobs: int = 1,
) -> CVResult:
    """Run every (scope, feature set, model) through the same grouped splits.

    The ``sparsity`` set is also fitted with the floor models (:data:`FLOOR_MODELS`: the
    per-level mean curve and GBT on sparsity), whatever ``models`` says, so every scope group has
    its sparsity floor. ``n_jobs`` > 1 runs scope groups in that many worker processes (each
    fit single-threaded: one level of parallelism); results do not depend on it.
    """
    index = next(iter(sets.values())).index
    y = y.loc[index]
    tasks = []
    for scope, label, mask in scopes_of(index):
        sub_index = index[mask]
        if progress and n_jobs == 1:
            progress(f"regression {scope}={label}: {mask.sum()} networks")
        frames = {name: frame.loc[sub_index] for name, frame in sets.items()}
        args = (scope, label, sub_index, y.to_numpy(float)[mask], frames, models, n_splits,
                n_repeats, seed, importance_set, importance_model, n_permutation_repeats)  # fmt: skip
        tasks.append(args)
    if n_jobs > 1:
        from joblib import Parallel, delayed

        if progress:
            progress(f"regression: {len(tasks)} scope groups on {n_jobs} workers")
        from ..threads import thread_variables

        # the workers inherit the environment: one BLAS/OpenMP thread each, whatever cap the
        # caller runs under (one level of parallelism)
        with thread_variables(1):
            results = Parallel(n_jobs=n_jobs, backend="loky", inner_max_num_threads=1)(
                delayed(_cv_scope)(*a) for a in tasks
            )
    else:
        results = [_cv_scope(*a) for a in tasks]
    fold_rows = [r for res in results for r in res[0]]
    pred_frames = [f for res in results for f in res[1]]
    imp_rows = [f for res in results for f in res[2]]
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
    oof_mae = pred.groupby(keys, sort=False)["oof_mae_by_repeat"].first().rename("mae_oof")
    n_cfg = pred.groupby(keys, sort=False).apply(
        lambda d: d[["dataset", "arch", "method", "sparsity"]].drop_duplicates().shape[0],
        include_groups=False,
    )
    agg = agg.join(oof, on=keys).join(oof_mae, on=keys).join(n_cfg.rename("n_configs"), on=keys)
    agg.insert(4, "target", target)
    floor = sparsity_floor(agg)
    agg = agg.join(floor, on=["scope", "group"])
    agg["gain_r2_oof"] = agg["r2_oof"] - agg["floor_r2_oof"]
    agg["gain_mae_oof"] = agg["floor_mae_oof"] - agg["mae_oof"]
    cols = [
        "scope", "group", "feature_set", "model", "target", "n_networks", "n_configs",
        "n_features", "n_folds", "r2_mean", "r2_std", "r2_oof", "mae_mean", "mae_std", "mae_oof",
        "floor_model", "floor_r2_oof", "floor_mae_oof", "gain_r2_oof", "gain_mae_oof",
    ]  # fmt: skip
    return agg[cols]


def sparsity_floor(reg: pd.DataFrame) -> pd.DataFrame:
    """The sparsity floor of each (scope, group): the best sparsity-only model out of fold.

    Candidates are the ``sparsity`` set's floor models (:data:`FLOOR_MODELS`: the per-level mean
    curve and GBT on sparsity), scored by the same grouped CV as every other set. ``floor_r2_oof``
    is the higher out-of-fold R2 of the two (``floor_model`` names it) and ``floor_mae_oof`` the
    lower out-of-fold MAE, so a gain over the floor is a gain over the best sparsity-only model in
    either score, never over an underfit one. A ridge linear in sparsity is not a candidate: the
    accuracy-vs-sparsity curve is not linear, so it would set the floor too low.
    """
    cand = reg[(reg["feature_set"] == "sparsity") & reg["model"].isin(FLOOR_MODELS)]
    cols = ["floor_model", "floor_r2_oof", "floor_mae_oof"]
    if cand.empty:
        return pd.DataFrame(
            columns=cols, index=pd.MultiIndex.from_arrays([[], []], names=["scope", "group"])
        )
    g = cand.groupby(["scope", "group"], sort=False)
    best = cand.loc[g["r2_oof"].idxmax(), ["scope", "group", "model", "r2_oof"]]
    best = best.set_index(["scope", "group"]).rename(
        columns={"model": "floor_model", "r2_oof": "floor_r2_oof"}
    )
    best["floor_mae_oof"] = g["mae_oof"].min()
    return best[cols]


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
    "sparsity_floor",
    "summarise_folds",
    "summarise_importance",
]
