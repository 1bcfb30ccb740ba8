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
    scopes = ["pooled", "dataset", "arch", "sparsity"]
    d = reg[reg["feature_set"].isin(sets) & reg["scope"].isin(scopes)]
    wide = d.pivot_table(
        index=["scope", "group", "model"], columns="feature_set", values="r2_oof", sort=False
    )
    return wide[[s for s in sets if s in wide.columns]].reset_index()


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
    """Per scope: ΔR² = r2_oof(a) − r2_oof(sparsity) over its groups and models (median, wins)."""
    w = _r2_wide(reg, ["sparsity", a])
    if a not in w or "sparsity" not in w or a == "sparsity":
        return {}
    w = w.assign(gain=w[a] - w["sparsity"])
    out = {}
    for scope, d in w.groupby("scope", sort=False):
        g = d["gain"].to_numpy()
        out[str(scope)] = {"n": len(g), "median": float(np.median(g)),
                           "wins": int((g > MARGIN).sum())}  # fmt: skip
    return out


def _gain_text(reg: pd.DataFrame, a: str) -> str:
    g = gain_over_sparsity(reg, a)
    if not g:
        return f"{a}: no sparsity-only baseline to compare with"
    parts = [f"{sc} median ΔR² {v['median']:+.3f} ({v['wins']}/{v['n']} cells > {MARGIN})"
             for sc, v in g.items()]  # fmt: skip
    return f"gain of `{a}` over the `sparsity`-only model: " + "; ".join(parts)


def _gain_wide(reg: pd.DataFrame, sets: list[str]) -> pd.DataFrame:
    w = _r2_wide(reg, ["sparsity", *sets])
    if "sparsity" not in w:
        return w
    out = w[["scope", "group", "model", "sparsity"]].rename(columns={"sparsity": "r2_sparsity"})
    for a in sets:
        if a in w and a != "sparsity":
            out[f"Δ{a}"] = w[a] - w["sparsity"]
    return out


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
                "features; gbt: histogram gradient boosting, 100 trees of ≤8 leaves).",
                f"Grouped {params.n_splits}-fold CV × {params.n_repeats} repeats (seed "
                f"{params.seed}); a group is one configuration (dataset, arch, method, sparsity), "
                "so the seeds of a configuration are never split between train and test. "
                "Scopes: pooled, per data set (when there are several), per architecture and "
                "per sparsity within a data set (each its own models).",
                "Every regression verdict is read against the `sparsity`-only model: an R² of 0.9 "
                "within one architecture can mean 'knows the sparsity', so each set's gain ΔR² "
                "over it is given per scope (within one sparsity level the `sparsity`-only model "
                "is a constant, so there ΔR² is the set's own R² plus the leave-out penalty of a "
                "constant). The ranking verdicts come first: within one sparsity level "
                "topology has to do the work.",
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
            "Ramanujan metric read as higher-is-better ('direct:'). The `sparsity` set carries no "
            "method information; its negative tau is the leave-out artefact (removing a "
            "configuration from training shifts the training mean against it) and is the floor.",
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
                "on the MGE topometrics; baselines: the sparsity curve alone (`sparsity`) and the "
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


def write_summary(
    res: dict[str, Any], meta: dict[str, Any], params: Any, out: Path, paths: dict[str, Path]
) -> dict[str, Path]:
    """Write summary.md and summary.html (figures linked relative to ``out``)."""
    blocks = build_blocks(res, meta, params, paths)
    write_text(out / "summary.md", render.markdown(blocks, out, fmt=_fmt))
    write_text(out / "summary.html", render.html(blocks, "snntopo analysis", out, fmt=_fmt))
    return {"summary_md": out / "summary.md", "summary": out / "summary.html"}
