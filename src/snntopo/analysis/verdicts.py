"""Verdicts against honest floors: "topology helps" is written only where a topology feature set
beats every floor.

Regression floors (per scope group, out-of-fold on the same grouped folds): the best
sparsity-only model (:func:`snntopo.analysis.regression.sparsity_floor`) and the layer-density
profile (``layer_density``, every layer's density: how many weights each layer keeps, not which).

Ranking floors (Kendall tau of the measured vs predicted order of the PaI methods within one
(dataset, arch, sparsity) cell): 0 (chance), the layer-density profile model, and the naive
transfer orders (:func:`snntopo.analysis.ranking.naive_orders`: the methods' order measured on
the other data sets / architectures) wherever the tables hold one. A sparsity-only model has no
ranking floor: it cannot order methods within one sparsity (its tau is undefined).

For each feature set, one model is used everywhere: the one with the better mean over all
groups (regression: out-of-fold R2 over the ``arch`` scope; ranking: mean tau over all cells),
and the layer-density floor is chosen the same way, so neither side gets a per-cell pick.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .ranking import CELL, MARGIN, NAIVE

REGRESSION_COLUMNS = [
    "feature_set", "model", "dataset", "arch", "r2", "r2_sparsity_floor", "sparsity_floor_model",
    "r2_layer_density", "gain_r2", "mae", "mae_sparsity_floor", "mae_layer_density", "gain_mae",
    "helps",
]  # fmt: skip
CELL_COLUMNS = [*CELL, "tau", "feature_set", "model", "floor", "beats_all"]
VERDICT_COLUMNS = ["feature_set", "model", "dataset", "arch", "tau", "n_cells",
                   "cells_beating_all_floors", "floor", "floor_name", "helps"]  # fmt: skip
VERDICT_SCOPE = "arch"  # the per-(dataset, architecture) models: the cleanest comparison
LAYER_DENSITY = "layer_density"


def topology_sets(feature_sets) -> list[str]:
    """The feature sets that carry topology (every encoding's topometrics, and all combined)."""
    from ..names import encoding_names

    names = [*encoding_names("multipartite"), *encoding_names("bipartite"), "combined"]
    return [s for s in names if s in set(feature_sets)]


def _scope_keys(group: str, several_datasets: bool, dataset: str | None) -> tuple[str, str]:
    if several_datasets:
        ds, _, arch = group.partition("/")
        return ds, arch
    return str(dataset), group


def best_model(reg: pd.DataFrame, feature_set: str, scope: str = VERDICT_SCOPE) -> str | None:
    """The model of ``feature_set`` with the higher mean out-of-fold R2 over ``scope``'s groups."""
    d = reg[(reg["feature_set"] == feature_set) & (reg["scope"] == scope)]
    if d.empty:
        return None
    return str(d.groupby("model")["r2_oof"].mean().idxmax())


def regression_verdicts(reg: pd.DataFrame, dataset: str | None = None) -> pd.DataFrame:
    """One row per (topology set, dataset, arch): its R2 and MAE beside the sparsity floor and the
    layer-density profile, the gains over the floor, and ``helps`` (R2 gain over both floors
    > :data:`MARGIN` and a lower MAE than both). ``dataset`` names the data set when the tables
    hold only one (the arch groups are then bare architecture names)."""
    arch = reg[reg["scope"] == VERDICT_SCOPE]
    several = arch["group"].str.contains("/").any()
    ld_model = best_model(reg, LAYER_DENSITY)
    rows = []
    for fs in topology_sets(reg["feature_set"].unique()):
        model = best_model(reg, fs)
        for _, r in arch[(arch["feature_set"] == fs) & (arch["model"] == model)].iterrows():
            ds, a = _scope_keys(r["group"], several, dataset)
            ld = arch[(arch["feature_set"] == LAYER_DENSITY) & (arch["model"] == ld_model)
                      & (arch["group"] == r["group"])]  # fmt: skip
            ld_r2 = float(ld["r2_oof"].iloc[0]) if len(ld) else np.nan
            ld_mae = float(ld["mae_oof"].iloc[0]) if len(ld) else np.nan
            best_r2 = np.nanmax([r["floor_r2_oof"], ld_r2])
            best_mae = np.nanmin([r["floor_mae_oof"], ld_mae])
            rows.append(
                {
                    "feature_set": fs,
                    "model": model,
                    "dataset": ds,
                    "arch": a,
                    "r2": r["r2_oof"],
                    "r2_sparsity_floor": r["floor_r2_oof"],
                    "sparsity_floor_model": r["floor_model"],
                    "r2_layer_density": ld_r2,
                    "gain_r2": r["r2_oof"] - r["floor_r2_oof"],
                    "mae": r["mae_oof"],
                    "mae_sparsity_floor": r["floor_mae_oof"],
                    "mae_layer_density": ld_mae,
                    "gain_mae": r["floor_mae_oof"] - r["mae_oof"],
                    "helps": bool(r["r2_oof"] > best_r2 + MARGIN and r["mae_oof"] < best_mae),
                }
            )
    return pd.DataFrame(rows, columns=REGRESSION_COLUMNS)


def _best_ranking_model(rk: pd.DataFrame, feature_set: str) -> str | None:
    d = rk[rk["feature_set"] == feature_set]
    if d.empty or d["kendall_tau"].isna().all():
        return None
    return str(d.groupby("model")["kendall_tau"].mean().idxmax())


def ranking_cells(ranking: pd.DataFrame, scope: str = VERDICT_SCOPE) -> pd.DataFrame:
    """One row per (topology set, dataset, arch, sparsity) cell: its tau and every floor's.

    ``floor`` is the highest of 0, the layer-density tau and the naive transfer taus present in
    that cell; ``beats_all`` is tau > floor + :data:`MARGIN`.
    """
    rk = ranking[(ranking["scope"] == scope) | ranking["feature_set"].isin(NAIVE)]
    key = [*CELL]
    ld_model = _best_ranking_model(rk, LAYER_DENSITY)
    floors = pd.DataFrame(columns=key)
    parts = []
    if ld_model is not None:
        ld = rk[(rk["feature_set"] == LAYER_DENSITY) & (rk["model"] == ld_model)]
        parts.append(ld[key + ["kendall_tau"]].rename(columns={"kendall_tau": "tau_layer_density"}))
    for name in NAIVE:
        nv = rk[rk["feature_set"] == name]
        if len(nv):
            col = "tau_" + name.replace(":", "_")
            parts.append(nv[key + ["kendall_tau"]].rename(columns={"kendall_tau": col}))
    for p in parts:
        floors = p if floors.empty else floors.merge(p, on=key, how="outer")
    rows = []
    for fs in topology_sets(rk["feature_set"].unique()):
        model = _best_ranking_model(rk, fs)
        if model is None:
            continue
        d = rk[(rk["feature_set"] == fs) & (rk["model"] == model)][key + ["kendall_tau"]]
        d = d.rename(columns={"kendall_tau": "tau"}).assign(feature_set=fs, model=model)
        if not floors.empty:
            d = d.merge(floors, on=key, how="left")
        rows.append(d)
    if not rows:
        return pd.DataFrame(columns=CELL_COLUMNS)
    cells = pd.concat(rows, ignore_index=True)
    fcols = [c for c in cells.columns if c.startswith("tau_")]
    cells["floor"] = np.fmax(cells[fcols].max(axis=1, skipna=True).fillna(0.0), 0.0)
    cells["beats_all"] = cells["tau"] > cells["floor"] + MARGIN
    return cells


def ranking_verdicts(cells: pd.DataFrame) -> pd.DataFrame:
    """Per (topology set, dataset, arch), and per set over all cells ("all"): mean tau beside the
    mean of each floor, the highest mean floor, the cells beating every floor, and ``helps``
    (mean tau > every floor's mean + :data:`MARGIN`)."""
    if cells.empty:
        return pd.DataFrame(columns=VERDICT_COLUMNS)
    fcols = [c for c in cells.columns if c.startswith("tau_")]
    everything = cells.assign(dataset="all", arch="all")
    both = pd.concat([cells, everything], ignore_index=True)
    g = both.groupby(["feature_set", "model", "dataset", "arch"], sort=False)
    out = g[["tau", *fcols]].mean()
    out["n_cells"] = g.size()
    out["cells_beating_all_floors"] = g["beats_all"].sum().astype(int)
    floor_means = out[fcols].assign(chance=0.0)
    out["floor"] = floor_means.max(axis=1)
    out["floor_name"] = floor_means.idxmax(axis=1).str.removeprefix("tau_")
    out["helps"] = out["tau"] > out["floor"] + MARGIN
    return out.reset_index()
