"""Plain-language summary (``summary.md`` and ``summary.html``) of the analysis.

It states the protocol and, for each of the paper's claims, what the numbers say, with a verdict
computed by a stated rule from the out-of-fold R2 and the ranking agreement, never copied from the
paper. Both files are rendered from the same list of blocks so they cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import render
from ..io import write_text
from ..names import encoding_names

MARGIN = 0.02  # R2 / tau differences below this count as a tie


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return "" if np.isnan(v) else f"{v:.3f}"
    return str(v)


def _r2_wide(reg: pd.DataFrame, sets: list[str]) -> pd.DataFrame:
    """Out-of-fold R2 per (scope, group, model) and feature set; ``sparsity`` is shown as the
    sparsity floor (the best sparsity-only model of that group, see
    :func:`snntopo.analysis.regression.sparsity_floor`), the same for every model's row."""
    scopes = ["pooled", "dataset", "arch", "sparsity"]
    d = reg[reg["feature_set"].isin(sets) & reg["scope"].isin(scopes)]
    d = d[~((d["feature_set"] == "sparsity") & ~d["model"].isin(_main_models(reg)))]
    wide = d.pivot_table(
        index=["scope", "group", "model"], columns="feature_set", values="r2_oof", sort=False
    )
    if "sparsity" in sets and "floor_r2_oof" in reg:
        floor = reg.groupby(["scope", "group"], sort=False)["floor_r2_oof"].first()
        idx = wide.index.droplevel("model")
        wide["sparsity"] = floor.reindex(idx).to_numpy()
    out = wide[[s for s in sets if s in wide.columns]].reset_index()
    return out.rename(columns={"sparsity": "sparsity_floor"}) if "sparsity" in sets else out


def _main_models(reg: pd.DataFrame) -> list[str]:
    """The models every feature set was fitted with (not the sparsity set's extra floor model)."""
    return sorted(set(reg.loc[reg["feature_set"] != "sparsity", "model"]))


def compare(reg: pd.DataFrame, a: str, b: str) -> dict[str, Any]:
    """Paired comparison of out-of-fold R2 of set ``a`` vs set ``b`` over all scope groups/models."""
    w = _r2_wide(reg, [a, b])
    if a not in w or b not in w:
        return {"n": 0, "wins": 0, "losses": 0, "ties": 0, "median_diff": np.nan, "by_scope": ""}
    diff = (w[a] - w[b]).to_numpy()
    by_scope = ", ".join(
        f"{sc}: {int((d > MARGIN).sum())}/{len(d)}"
        for sc, d in pd.Series(diff).groupby(w["scope"].to_numpy(), sort=False)
    )
    return {
        "n": len(diff),
        "wins": int((diff > MARGIN).sum()),
        "losses": int((diff < -MARGIN).sum()),
        "ties": int((np.abs(diff) <= MARGIN).sum()),
        "median_diff": float(np.median(diff)),
        "by_scope": by_scope,
    }


def gain_over_sparsity(reg: pd.DataFrame, a: str) -> dict[str, dict[str, Any]]:
    """Per scope: the gain of set ``a`` over the sparsity floor, ΔR² = r2_oof(a) − floor R² and
    ΔMAE = floor MAE − mae_oof(a), over its groups and models (medians, wins)."""
    if a == "sparsity" or "gain_r2_oof" not in reg:
        return {}
    d = reg[(reg["feature_set"] == a) & reg["floor_r2_oof"].notna()]
    out = {}
    for scope, part in d.groupby("scope", sort=False):
        g = part["gain_r2_oof"].to_numpy()
        out[str(scope)] = {
            "n": len(g),
            "median": float(np.median(g)),
            "median_mae": float(np.median(part["gain_mae_oof"])),
            "wins": int((g > MARGIN).sum()),
        }
    return out


def _gain_text(reg: pd.DataFrame, a: str) -> str:
    g = gain_over_sparsity(reg, a)
    if not g:
        return f"{a}: no sparsity floor to compare with"
    parts = [f"{sc} median ΔR² {v['median']:+.3f}, ΔMAE {v['median_mae']:+.4f} "
             f"({v['wins']}/{v['n']} cells ΔR² > {MARGIN})" for sc, v in g.items()]  # fmt: skip
    return f"gain of `{a}` over the sparsity floor: " + "; ".join(parts)


def _gain_wide(reg: pd.DataFrame, sets: list[str]) -> pd.DataFrame:
    """ΔR² over the sparsity floor per (scope, group, model) and set."""
    d = reg[reg["feature_set"].isin(sets) & reg["floor_r2_oof"].notna()]
    if d.empty:
        return pd.DataFrame()
    wide = d.pivot_table(
        index=["scope", "group", "model"], columns="feature_set", values="gain_r2_oof", sort=False
    )
    wide.columns = [f"Δ{c}" for c in wide.columns]
    floor = reg.groupby(["scope", "group"], sort=False)[["floor_model", "floor_r2_oof"]].first()
    fl = floor.reindex(wide.index.droplevel("model"))
    wide.insert(0, "r2_floor", fl["floor_r2_oof"].to_numpy())
    wide.insert(0, "floor_model", fl["floor_model"].to_numpy())
    cols = ["floor_model", "r2_floor", *[f"Δ{a}" for a in sets if f"Δ{a}" in wide.columns]]
    return wide[cols].reset_index()


def _counts(c: dict[str, Any], a: str, b: str) -> str:
    return (
        f"{a} beats {b} in {c['wins']} of {c['n']} scope/model cells ({c['by_scope']}), loses in "
        f"{c['losses']}, ties in {c['ties']} (tie: |ΔR²| ≤ {MARGIN}); median ΔR² "
        f"({a} − {b}) = {c['median_diff']:+.3f}"
    )


def _verdict(c: dict[str, Any], a: str, b: str) -> str:
    """Claim 'a is better than b': holds if a wins >= 75% of cells, partly if wins > losses."""
    if c["n"] == 0:
        return f"not testable ({a} or {b} missing)"
    if c["wins"] >= 0.75 * c["n"]:
        word = "holds"
    elif c["wins"] > c["losses"]:
        word = "partly holds"
    else:
        word = "does not hold"
    return f"**{word}**: " + _counts(c, a, b)


def _not_better_verdict(c: dict[str, Any], a: str, b: str) -> str:
    """Claim 'a is no better than b': holds if a wins in at most as many cells as it loses+ties."""
    if c["n"] == 0:
        return f"not testable ({a} or {b} missing)"
    word = "holds" if c["wins"] <= c["losses"] + c["ties"] else "does not hold"
    return f"**{word}**: " + _counts(c, a, b)


def build_blocks(res: dict[str, Any], meta: dict[str, Any], params: Any, figs: dict) -> list:
    """The summary as a list of (kind, payload) blocks: h1/h2/p/ul/table/img."""
    reg = res["regression"]
    target = res["target"]
    b: list[tuple[str, Any]] = [("h1", "snntopo analysis summary")]
    b += verdict_blocks(res, params)
    sets = meta["feature_sets"]
    b.append(("h2", "Protocol"))
    b.append(
        (
            "ul",
            [
                f"Tables: {meta['tables']} ({meta['tables_layout']} layout); "
                f"{meta['n_networks']} networks used.",
                f"Target: **{target}**"
                + (
                    " (no dense baselines in the tables, so the accuracy itself; within one "
                    "architecture a drop w.r.t. one dense accuracy is the same quantity shifted)"
                    if target == "accuracy"
                    else ""
                )
                + ".",
                "Feature sets (columns): "
                + ", ".join(f"{k} ({len(v)})" for k, v in sets.items())
                + ". `sparsity` = global sparsity only; `density` = global sparsity + mean/std/"
                "min/max of layer density (how many weights each layer keeps, not which); "
                "`layer_density` = every layer's density; BGE per-layer metrics are averaged "
                "over layers; Ramanujan metrics are averaged over layers per network.",
                f"Models: {', '.join(params.models)} (ridge: signed-log, standardised, clipped "
                "features; gbt: histogram gradient boosting, 50 trees of ≤8 leaves, learning "
                "rate 0.2, 32 bins per feature; the sparsity set also with the per-level mean curve, for "
                "the floor).",
                f"Grouped {params.n_splits}-fold CV × {params.n_repeats} repeats (seed "
                f"{params.seed}); a group is one configuration (dataset, arch, method, sparsity), "
                "so the seeds of a configuration are never split between train and test. "
                "Scopes: pooled, per data set (when there are several), per architecture and "
                "per sparsity within a data set (each its own models).",
                "Every regression verdict is read against the **sparsity floor**: the best "
                "sparsity-only model of the same scope group under the same folds (the "
                "per-sparsity-level mean curve or gradient-boosted trees on sparsity, whichever "
                "has the higher out-of-fold R²; MAE: the lower of the two). An R² of 0.9 within "
                "one architecture can mean 'knows the sparsity', so each set's gains ΔR² and ΔMAE "
                "over the floor are given per scope (within one sparsity level the floor is a "
                "constant, so there ΔR² is the set's own R² plus the leave-out penalty of a "
                "constant).",
                "Scores: R² and MAE per held-out fold (mean ± sd in regression.csv) and "
                "`r2_oof`, the R² of all out-of-fold predictions together (steadier on small "
                "folds; used for the verdicts below).",
                "NaN handling: ±inf → NaN; columns all-NaN or constant within a scope are "
                "dropped; other NaNs are imputed with the training-fold median.",
            ],
        )
    )
    norm, skip = res.get("normalised"), res.get("skipped")
    listed: set[str] = set()
    if norm is not None and len(norm):
        b.append(("p", f"Normalised on reading ({len(norm)} changes; normalised.csv):"))
        b.append(("table", norm))
        listed |= {f"{r.file}: {r.column}: {r.action}" for r in norm.itertuples()}
    if skip is not None and len(skip):
        b.append(("p", f"Skipped files ({len(skip)}; skipped.csv):"))
        b.append(("table", skip))
        listed |= {f"{r.file}: skipped: {r.reason}" for r in skip.itertuples()}
    elif meta["tables_layout"] == "paper":
        b.append(("p", "Skipped files: none (every published file was read)."))
    rest = [n for n in meta["notes"] if n not in listed]
    if rest:
        b.append(("p", "Data notes:"))
        b.append(("ul", rest))

    # Claim: mixture of MGE metrics ranks PaI better than Ramanujan metrics.
    b.append(
        ("h2", "1. Ranking: does a mixture of MGE metrics rank PaI methods better? (paper 4.2.3)")
    )
    rs = res["ranking_summary"]
    allr = rs[(rs["arch"] == "all") & rs["scope"].isin([params.ranking_scope, "none"])]
    allr = allr.sort_values("kendall_tau_mean", ascending=False)
    b.append(
        (
            "p",
            f"Per (dataset, arch, sparsity) cell the methods are ranked by measured {target} "
            f"(mean over seeds) and by each predictor's out-of-fold prediction ({params.ranking_scope}"
            "-scope models; the configuration is never in the training fold), or by a raw "
            "Ramanujan metric read as higher-is-better ('direct:'), or by the naive transfer "
            "order ('naive:dataset': the methods' order measured on the other data sets, same "
            "architecture and sparsity; 'naive:arch': on the other architectures, same data set "
            "and sparsity). The `sparsity` set carries no method information: its tau is "
            "undefined (empty), not a floor (its held-out predictions differ within a cell only "
            "because leaving a configuration out shifts the training mean against it).",
        )
    )
    mge_rows = allr[allr["feature_set"] == "mge"]
    ram_rows = allr[
        allr["feature_set"].str.startswith("direct:") | (allr["feature_set"] == "ramanujan")
    ]
    if len(mge_rows) and len(ram_rows):
        best_mge = mge_rows["kendall_tau_mean"].max()
        best_ram = ram_rows["kendall_tau_mean"].max()
        word = (
            "holds"
            if best_mge > best_ram + MARGIN
            else ("does not hold" if best_mge < best_ram - MARGIN else "is a tie")
        )
        b.append(
            (
                "p",
                f"Best MGE model: mean tau {best_mge:.3f}; best Ramanujan-based predictor: "
                f"{best_ram:.3f}. The claim **{word}** on these tables.",
            )
        )
    b.append(("table", allr[["feature_set", "model", "scope", "n_cells", "kendall_tau_mean",
                             "kendall_tau_std", "top1_rate"]]))  # fmt: skip
    if "figure_ranking_tau_png" in figs:
        b.append(("img", figs["figure_ranking_tau_png"]))
    if "transfer_summary" in res and len(res["transfer_summary"]):
        b += transfer_blocks(res)
    # Leave-one-method-out: the situation of a user with a new PaI method.
    b.append(("h2", "2. A new PaI method: leave-one-method-out prediction and rank"))
    if "lomo_verdicts" in res and len(res["lomo_verdicts"]):
        v = res["lomo_verdicts"]
        wins = v[v["mge_beats_baselines_mae"]]
        rwins = v[v["mge_beats_baselines_rank"]]
        b.append(
            (
                "p",
                "Each PaI method is held out in turn; a model fit on the other methods of the "
                "same (dataset, arch) predicts it at every sparsity. Model: sparsity curve + ridge "
                "on the MGE topometrics"
                + (
                    " (without "
                    + ", ".join(f"`{c}`" for c in res["lomo_excluded"])
                    + ": published columns computed on trained weights, which a mask at "
                    "initialisation cannot give; docs/reproduction.md)"
                    if res.get("lomo_excluded")
                    else ""
                )
                + "; baselines: the sparsity curve alone (`sparsity`) and the "
                "same construction on the layer-density profile (`layer_density`). Interval: "
                "± the 90% quantile of the other methods' held-out absolute errors; coverage is "
                "measured on the held-out method. Rank: the held-out method's predicted vs true "
                "place among all methods at each sparsity (mean |error|, 0 = always right). "
                "Beats = MAE more than 5% below the better baseline / rank error more than 0.1 "
                "places below it. "
                f"Topology beats both baselines in MAE in **{len(wins)} of {len(v)}** (dataset, "
                f"arch) scopes"
                + (f" ({', '.join(wins['dataset'] + '/' + wins['arch'])})" if len(wins) else "")
                + f", and in rank error in **{len(rwins)} of {len(v)}**"
                + (f" ({', '.join(rwins['dataset'] + '/' + rwins['arch'])})" if len(rwins) else "")
                + "; a claim that topology helps is made only there.",
            )
        )
        b.append(("table", v))
    else:
        b.append(("p", "Not testable: no MGE table (or fewer than 3 methods per scope)."))

    # Claim: Ramanujan metrics are only as good as layer density.
    b.append(("h2", "3. Are Ramanujan metrics only as good as layer density? (paper 4.1)"))
    if "ramanujan_density" in res:
        corr = res["ramanujan_density"]
        call = corr[corr["arch"] == "all"][
            ["encoding", "metric", "n_layers", "pearson_r", "spearman_rho"]
        ]
        b.append(("p", "Per-layer correlation of each Ramanujan metric with layer density:"))
        b.append(("table", call))
        c = compare(reg, "ramanujan", "density")
        c2 = compare(reg, "ramanujan+density", "density")
        b.append(("p", "Claim 'Ramanujan features predict no better than density': "
                  + _not_better_verdict(c, "ramanujan", "density")))  # fmt: skip
        b.append(
            ("p", "Claim 'Ramanujan adds nothing to density': "
             + _not_better_verdict(c2, "ramanujan+density", "density"))
        )  # fmt: skip
        for a in ("density", "ramanujan", "ramanujan+density"):
            b.append(("p", _gain_text(reg, a)))
        b.append(
            ("table", _r2_wide(reg, ["sparsity", "density", "ramanujan", "ramanujan+density"]))
        )
        if "figure_ramanujan_density_png" in figs:
            b.append(("img", figs["figure_ramanujan_density_png"]))
    else:
        b.append(("p", "Not testable: no Ramanujan layer table."))

    # Claim: MGE better than BGEs.
    b.append(("h2", "4. Are MGE topometrics better predictors than BGE metrics? (paper 4.2.1)"))
    for other in encoding_names("bipartite"):
        b.append(("p", f"MGE vs {other}: " + _verdict(compare(reg, "mge", other), "mge", other)))
    b.append(
        (
            "p",
            "Caveat: in the per-sparsity scope the models pool architectures, and every "
            "topometric also encodes the architecture (graph size, degree scale) while the density "
            "summaries barely do; the per-architecture scope is the cleanest comparison.",
        )
    )
    topo = [*encoding_names("multipartite"), *encoding_names("bipartite")]
    for a in (*topo, "combined"):
        b.append(("p", _gain_text(reg, a)))
    wide = ["sparsity", "density", *encoding_names("bipartite"), *encoding_names("multipartite")]
    b.append(("table", _r2_wide(reg, [*wide, "combined"])))
    b.append(("p", "ΔR² over the `sparsity`-only model (same scope, group and model):"))
    b.append(("table", _gain_wide(reg, ["density", "ramanujan", *topo, "combined"])))
    if "figure_regression_r2_png" in figs:
        b.append(("img", figs["figure_regression_r2_png"]))

    # Claim: importance depends on sparsity and architecture.
    b.append(("h2", "5. Which MGE metrics matter, and does it change? (paper 4.2.2)"))
    imp = res["importance"]
    if not imp.empty:
        top = (
            imp[imp["rank"] <= 3]
            .sort_values(["scope", "group", "rank"])
            .groupby(["scope", "group"], sort=False)
            .agg(top3=("feature", lambda s: ", ".join(s)), top1_share=("share", "max"))
            .reset_index()
        )
        sub = top[top["scope"] != "pooled"]
        distinct = sub.groupby("scope")["top3"].apply(lambda s: len({t.split(", ")[0] for t in s}))
        b.append(
            (
                "p",
                "Permutation importance = increase of held-out MAE when one metric is shuffled "
                "(GBT, test folds only). Top-3 metrics per group below; the most important metric "
                "differs across "
                + ", ".join(f"{k} groups: {v} distinct" for k, v in distinct.items())
                + ". The claim that importance changes with sparsity and architecture "
                + ("**holds**" if (distinct > 1).any() else "**does not hold**")
                + " in this sense (small test folds make single ranks noisy; see the std "
                "column in importance.csv).",
            )
        )
        b.append(("table", top))
        if "figure_importance_png" in figs:
            b.append(("img", figs["figure_importance_png"]))
    else:
        b.append(("p", "Not testable: no MGE table."))

    b.append(("h2", "Provenance"))
    b.append(
        ("p", "Library versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    )
    return b


def _yes(v: Any) -> str:
    return "**helps**" if bool(v) else "no"


#: a ranking verdict over this many cells or fewer is flagged as a small sample
SMALL_SAMPLE_CELLS = 3


def _small(n: Any) -> bool:
    return pd.notna(n) and int(n) <= SMALL_SAMPLE_CELLS


def verdict_table(res: dict[str, Any], feature_set: str = "mge") -> pd.DataFrame:
    """The lead table: per (dataset, arch), one topology set's ranking tau beside every ranking
    floor and its R² beside both regression floors, with the two verdicts."""
    rv, gv = res.get("ranking_verdicts"), res.get("regression_verdicts")
    parts = []
    if rv is not None and len(rv):
        r = rv[rv["feature_set"] == feature_set].copy()
        keep = {"dataset": "dataset", "arch": "arch", "tau": "τ", "tau_layer_density":
                "τ layer density", "tau_naive_dataset": "τ naive (data set)", "tau_naive_arch":
                "τ naive (arch)", "cells_beating_all_floors": "cells > all floors",
                "n_cells": "cells"}  # fmt: skip
        r = r[[c for c in keep if c in r.columns] + ["helps"]].rename(columns=keep)
        r["ranking"] = [
            _yes(h) + (" (small sample)" if _small(n) else "")
            for h, n in zip(r.pop("helps"), r["cells"], strict=True)
        ]
        r["cells > all floors"] = [
            f"{a}/{n}" for a, n in zip(r["cells > all floors"], r.pop("cells"), strict=True)
        ]
        parts.append(r)
    if gv is not None and len(gv):
        g = gv[gv["feature_set"] == feature_set]
        g = g[["dataset", "arch", "r2", "r2_sparsity_floor", "r2_layer_density", "gain_r2",
               "gain_mae", "helps"]].rename(columns={  # fmt: skip
            "r2": "R²", "r2_sparsity_floor": "R² sparsity floor",
            "r2_layer_density": "R² layer density", "gain_r2": "ΔR² over floor",
            "gain_mae": "ΔMAE over floor"})  # fmt: skip
        g["regression"] = g.pop("helps").map(_yes)
        parts.append(g)
    if not parts:
        return pd.DataFrame()
    out = parts[0]
    for p in parts[1:]:
        out = out.merge(p, on=["dataset", "arch"], how="outer")
    order = {"all": 1}
    return out.sort_values(["dataset", "arch"], key=lambda c: c.map(lambda v: (order.get(v, 0), v)))


def verdict_blocks(res: dict[str, Any], params: Any) -> list:
    """The summary's first section: where topology helps, against every floor."""
    b: list[tuple[str, Any]] = [("h2", "Verdict: where does topology help? (against every floor)")]
    rv, gv = res.get("ranking_verdicts"), res.get("regression_verdicts")
    if (rv is None or not len(rv)) and (gv is None or not len(gv)):
        b.append(("p", "Not testable: no topology feature table."))
        return b
    b.append(
        (
            "p",
            "Ranking (the PaI methods within one sparsity; models of the "
            f"{params.ranking_scope} scope, held-out predictions): Kendall τ against three "
            "floors — 0 (chance), the layer-density profile model (how many weights each layer "
            "keeps) and the naive transfer order (the methods' order *measured* on the other data "
            "sets, same architecture and sparsity, or on the other architectures, same data set), "
            "wherever the tables hold one. Regression (per data set and architecture): "
            "out-of-fold R² and MAE against the sparsity floor (best sparsity-only model: "
            "per-level mean curve or GBT on sparsity) and the layer-density profile. A verdict "
            f"**helps** is written only where topology beats every floor (τ or R² by more than "
            f"{MARGIN}, and a lower MAE); each set uses one model everywhere (its better mean), "
            "and so does the layer-density floor.",
        )
    )
    if "mge" in set(rv["feature_set"] if rv is not None and len(rv) else []) | set(
        gv["feature_set"] if gv is not None and len(gv) else []
    ):
        b.append(("p", "MGE topometrics, per data set and architecture (`all`: every cell):"))
        b.append(("table", verdict_table(res, "mge")))
    if rv is not None and len(rv) and any(_small(n) for n in rv["n_cells"]):
        fewest = int(rv["n_cells"].min())
        b.append(
            (
                "p",
                f"**Small sample.** Some ranking verdicts rest on {fewest} cell(s) "
                f"(≤ {SMALL_SAMPLE_CELLS}; a cell is one data set, architecture and sparsity): "
                "with so few rankings, one cell decides the verdict, and τ between a handful of "
                "methods takes only a few values. Read those verdicts as anecdotes, not evidence.",
            )
        )
    lines = []
    sets = list(
        dict.fromkeys(
            [
                *(rv["feature_set"] if rv is not None and len(rv) else []),
                *(gv["feature_set"] if gv is not None and len(gv) else []),
            ]
        )
    )
    for fs in sets:
        txt = [f"`{fs}`"]
        if rv is not None and len(rv):
            r = rv[(rv["feature_set"] == fs) & (rv["arch"] != "all")]
            a = rv[(rv["feature_set"] == fs) & (rv["arch"] == "all")]
            if len(r):
                txt.append(
                    f"ranking ({r['model'].iloc[0]}) helps in {int(r['helps'].sum())} of {len(r)} "
                    f"(data set, arch) scopes, beats every floor in "
                    f"{int(a['cells_beating_all_floors'].iloc[0])} of {int(a['n_cells'].iloc[0])} "
                    f"cells (mean τ {a['tau'].iloc[0]:.3f} vs highest floor "
                    f"{a['floor'].iloc[0]:.3f}, {a['floor_name'].iloc[0]})"
                    + (" — small sample" if _small(a["n_cells"].iloc[0]) else "")
                )
        if gv is not None and len(gv):
            g = gv[gv["feature_set"] == fs]
            if len(g):
                txt.append(
                    f"regression ({g['model'].iloc[0]}) helps in {int(g['helps'].sum())} of "
                    f"{len(g)} (median ΔR² over the sparsity floor {g['gain_r2'].median():+.3f})"
                )
        lines.append(": ".join(txt[:2]) + ("; " + txt[2] if len(txt) > 2 else ""))
    b.append(("ul", lines))
    ts = res.get("transfer_summary")
    if ts is not None and len(ts):
        b.append(("p", "Transfer (fit on one data set, rank the methods on another; details in "
                  "the transfer section): " + _transfer_line(ts)))  # fmt: skip
    return b


def _transfer_model(ts: pd.DataFrame, feature_set: str) -> str | None:
    """The model of ``feature_set`` with the higher mean transfer tau over every pair (one choice
    for all pairs, not a per-pair pick)."""
    d = ts[ts["feature_set"] == feature_set]
    if d.empty:
        return None
    return str(d.groupby("model")["kendall_tau_mean"].mean().idxmax())


def _transfer_line(ts: pd.DataFrame) -> str:
    model = _transfer_model(ts, "mge")
    if model is None:
        return "no MGE table."
    parts = []
    for (fit, pred), d in ts.groupby(["fit_dataset", "pred_dataset"], sort=False):
        naive = d.loc[d["feature_set"] == "naive", "kendall_tau_mean"]
        r = d[(d["feature_set"] == "mge") & (d["model"] == model)]
        if naive.empty or r.empty:
            continue
        r = r.iloc[0]
        parts.append(
            f"{fit} → {pred}: MGE τ {r['kendall_tau_mean']:.2f} vs naive order "
            f"{naive.iloc[0]:.2f}, beats it in {int(r['cells_beating_naive'])} of "
            f"{int(r['n_cells'])} cells"
        )
    return f"MGE model {model}; " + "; ".join(parts) + "."


def transfer_table(ts: pd.DataFrame) -> pd.DataFrame:
    """One row per (fit → predicted data set): the naive order's mean tau, then each predictor's
    mean tau with the cells where it beats the naive order ("0.42 (6/20)")."""
    order = {"naive": 0, "mge": 1, "rolled": 2, "rolled-channel": 3, "combined": 4,
             "layer_density": 5}  # fmt: skip
    d = ts.assign(k=ts["feature_set"].map(order).fillna(9)).sort_values(["k", "model"])
    d["predictor"] = np.where(d["model"] == "none", d["feature_set"],
                              d["feature_set"] + "/" + d["model"])  # fmt: skip
    d["value"] = [
        f"{t:.3f}" if fs == "naive" else f"{t:.3f} ({w}/{n})"
        for fs, t, w, n in zip(
            d["feature_set"],
            d["kendall_tau_mean"],
            d["cells_beating_naive"],
            d["n_cells"],
            strict=True,
        )  # fmt: skip
    ]
    d["pair"] = d["fit_dataset"] + " → " + d["pred_dataset"]
    wide = d.pivot_table(index="pair", columns="predictor", values="value", aggfunc="first",
                         sort=False)  # fmt: skip
    cols = list(dict.fromkeys(d["predictor"]))
    pairs = list(dict.fromkeys(ts["fit_dataset"] + " → " + ts["pred_dataset"]))
    return wide.loc[pairs, cols].reset_index().rename(columns={"pair": "fit → predict"})


def transfer_blocks(res: dict[str, Any]) -> list:
    ts = res["transfer_summary"]
    b: list[tuple[str, Any]] = [("h2", "Transfer: fit on one data set, rank on another")]
    b.append(
        (
            "p",
            "Per architecture and ordered pair of data sets (A → B): each model is fit on every "
            "network of A and predicts B's networks; within each sparsity of B the methods are "
            "ordered by mean prediction and compared with B's measured order (Kendall τ). The "
            "naive order is the methods' mean accuracy measured on A at the same sparsity — what "
            "a researcher would answer without any model. Each entry: mean τ over the cells "
            "(architectures × sparsities) and, in brackets, the cells where the predictor beats "
            f"the naive order (τ higher by more than {MARGIN}); transfer.csv has every cell, "
            "transfer_summary.csv the losses too.",
        )
    )
    b.append(("table", transfer_table(ts)))
    sub = ts[ts["feature_set"] != "naive"]
    n_pairs = sub.groupby(["feature_set", "model"]).apply(
        lambda d: int((d["kendall_tau_mean"] > d["naive_tau_mean"] + MARGIN).sum()),
        include_groups=False,
    )
    total = sub.groupby(["feature_set", "model"])[["cells_beating_naive", "n_cells"]].sum()
    lines = [
        f"`{fs}/{m}`: mean τ above the naive order's in {n_pairs[(fs, m)]} of "
        f"{ts[['fit_dataset', 'pred_dataset']].drop_duplicates().shape[0]} pairs; beats it in "
        f"{int(total.loc[(fs, m), 'cells_beating_naive'])} of "
        f"{int(total.loc[(fs, m), 'n_cells'])} cells"
        for fs, m in total.index
    ]
    b.append(("ul", lines))
    return b


def write_summary(
    res: dict[str, Any], meta: dict[str, Any], params: Any, out: Path, paths: dict[str, Path]
) -> dict[str, Path]:
    """Write summary.md and summary.html (figures linked relative to ``out``)."""
    blocks = build_blocks(res, meta, params, paths)
    write_text(out / "summary.md", render.markdown(blocks, out, fmt=_fmt))
    write_text(out / "summary.html", render.html(blocks, "snntopo analysis", out, fmt=_fmt))
    return {"summary_md": out / "summary.md", "summary": out / "summary.html"}
