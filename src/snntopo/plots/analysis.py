"""Figures of the analysis stage (seaborn, Agg backend), each written as PNG and SVG atomically.

Why both formats: PNG is embedded in the HTML summary; SVG is for the paper-style report. Scatter
points are rasterised inside the SVG so the file stays small with ~10k layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..analysis.features import FAMILY_ORDER  # noqa: E402
from ..io import atomic_path  # noqa: E402
from ..names import encoding_names  # noqa: E402

SET_ORDER = (
    "sparsity",
    "density",
    "layer_density",
    "ramanujan",
    "ramanujan+density",
    *encoding_names("bipartite"),
    *encoding_names("multipartite"),
    "combined",
)


def save_figure(fig: plt.Figure, base: Path) -> dict[str, Path]:
    """Write ``base.png`` and ``base.svg`` atomically and close the figure."""
    out = {}
    for ext in ("png", "svg"):
        path = base.with_suffix(f".{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=120, bbox_inches="tight")
        out[f"figure_{base.name}_{ext}"] = path
    plt.close(fig)
    return out


def _order(names: pd.Series) -> list[str]:
    present = list(dict.fromkeys(names))
    return [s for s in SET_ORDER if s in present] + [s for s in present if s not in SET_ORDER]


#: lowest R2 the regression figure's axis shows; bars below it are annotated with their value
R2_AXIS_FLOOR = -3.0


def regression_panels(folds: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows and panel names of :func:`regression_figure`: ``pooled`` and one panel per
    architecture, except with a single architecture, whose panel would repeat the pooled one."""
    data = folds[folds["scope"].isin(["pooled", "arch"])].copy()
    archs = sorted(data.loc[data["scope"] == "arch", "group"].unique())
    if len(archs) <= 1:
        data = data[data["scope"] == "pooled"]
        return data.assign(panel="pooled"), ["pooled"]
    data["panel"] = np.where(data["scope"] == "pooled", "pooled", data["group"])
    return data, ["pooled", *archs]


def r2_limits(data: pd.DataFrame) -> tuple[float, float]:
    """y limits that hold every bar and whisker (mean ± sd over folds), 0 and a margin, never
    below :data:`R2_AXIS_FLOOR` nor above 1.05."""
    g = data.groupby(["panel", "feature_set", "model"])["r2"]
    mean, sd = g.mean(), g.std().fillna(0.0)
    lo = float(min(0.0, (mean - sd).min()))
    hi = float(max(0.0, (mean + sd).max()))
    pad = 0.05 * max(hi - lo, 0.2)
    return max(lo - pad, R2_AXIS_FLOOR), min(hi + pad, 1.05)


def _wrap_label(text: str, width: int = 14) -> str:
    """A feature-set name broken after ``+`` (mixtures) so tick labels stay short."""
    if len(text) <= width or "+" not in text:
        return text
    return text.replace("+", "+\n")


def regression_figure(folds: pd.DataFrame, target: str) -> plt.Figure:
    """Held-out R2 per feature set and model; one panel pooled and one per architecture (only
    the pooled one when there is a single architecture: the two would be identical).

    Bars are fold means, error bars one standard deviation over folds. The y axis is set from the
    data (bars and whiskers); a bar below :data:`R2_AXIS_FLOOR` (collapsed networks can give very
    negative R2) is cut there and its value written on it (the CSV has every value).
    """
    data, panels = regression_panels(folds)
    order = _order(data["feature_set"])
    g = sns.catplot(
        data=data,
        x="feature_set",
        y="r2",
        hue="model",
        col="panel",
        col_order=panels,
        order=order,
        kind="bar",
        errorbar="sd",
        col_wrap=min(len(panels), 2) if len(panels) > 1 else None,
        height=3.6,
        aspect=max(1.3, 0.28 * len(order)),
        sharey=True,
    )
    lo, hi = r2_limits(data)
    g.set(ylim=(lo, hi))
    g.set_axis_labels("", f"held-out R$^2$ ({target})")
    for ax in g.axes.flat:
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(ax.get_xticks())
        ax.set_xticklabels(
            [_wrap_label(t.get_text()) for t in ax.get_xticklabels()],
            rotation=45,
            ha="right",
            rotation_mode="anchor",
            fontsize=8,
        )
        for bar in ax.patches:
            h = bar.get_height()
            if np.isfinite(h) and h < lo:
                ax.annotate(
                    f"{h:.1f}",
                    (bar.get_x() + bar.get_width() / 2, lo),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    rotation=90,
                    color="darkred",
                    bbox={"fc": "white", "ec": "none", "pad": 1},
                )
    if len(panels) == 1:
        arch = sorted(folds.loc[folds["scope"] == "arch", "group"].unique())
        title = f"pooled ({arch[0]}, the only architecture)" if len(arch) == 1 else "pooled"
        g.axes.flat[0].set_title(title)
    g.figure.suptitle("Grouped-CV R$^2$ by feature set", y=1.02)
    return g.figure


def importance_figure(importance: pd.DataFrame) -> plt.Figure:
    """Heat map of each MGE metric's share of the positive permutation importance per group
    (without the architecture column when there is one architecture: it would repeat pooled)."""
    imp = importance.copy()
    if imp.loc[imp["scope"] == "arch", "group"].nunique() == 1:
        imp = imp[imp["scope"] != "arch"]  # one architecture: its column repeats "pooled"
    imp["column"] = np.where(
        imp["scope"] == "pooled",
        "pooled",
        np.where(imp["scope"] != "sparsity", imp["group"], "s=" + imp["group"].astype(str)),
    )
    fam_rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
    rows = (
        imp[["feature", "family"]]
        .drop_duplicates()
        .assign(k=lambda d: d["family"].map(fam_rank))
        .sort_values(["k", "feature"])
    )
    cols = list(dict.fromkeys(imp.sort_values(["scope", "group"])["column"]))
    cols = ["pooled", *[c for c in cols if c != "pooled"]] if "pooled" in cols else cols
    mat = imp.pivot_table(index="feature", columns="column", values="share").loc[
        rows["feature"], cols
    ]
    mat.index = [f"{f} ({fam})" for f, fam in zip(rows["feature"], rows["family"], strict=True)]
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(cols), 0.9 + 0.38 * len(mat)))
    sns.heatmap(mat, annot=True, fmt=".2f", cmap="viridis", cbar_kws={"label": "share"}, ax=ax)
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.set_title("MGE permutation importance (held-out folds, GBT)")
    return fig


def ranking_figure(summary: pd.DataFrame, scope: str) -> plt.Figure:
    """Mean Kendall tau over (dataset, arch, sparsity) cells per predictor."""
    data = summary[(summary["arch"] == "all") & summary["scope"].isin([scope, "none"])]
    data = data[data["kendall_tau_mean"].notna()].copy()  # sparsity alone: tau undefined
    data["predictor"] = np.where(
        data["model"] == "none", data["feature_set"], data["feature_set"] + " / " + data["model"]
    )
    data = data.sort_values("kendall_tau_mean")
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(data) + 1.2))
    colors = np.where(data["model"] == "none", "tab:gray", "tab:blue")
    ax.barh(data["predictor"], data["kendall_tau_mean"], xerr=data["kendall_tau_std"], color=colors)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlim(-1, 1)
    ax.set_xlabel("Kendall tau, measured vs predicted PaI ranking (mean ± sd over cells)")
    ax.set_title(
        f"PaI ranking agreement (models: {scope} scope; grey: no model, a raw Ramanujan metric "
        "or a naive transfer order)"
    )
    return fig


def ramanujan_figure(layers: pd.DataFrame, corr: pd.DataFrame) -> plt.Figure:
    """Each Ramanujan metric against layer density, one panel per metric, coloured by arch."""
    metrics = ["degree_bound", "iterative_spectral_gap", "iterative_degree_bound",
               "weighted_spectral_gap"]  # fmt: skip
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.6))
    for ax, m in zip(axes, metrics, strict=True):
        d = layers[["arch", "layer_density", m]].replace([np.inf, -np.inf], np.nan).dropna()
        sns.scatterplot(
            data=d, x="layer_density", y=m, hue="arch", s=6, alpha=0.5, linewidth=0,
            ax=ax, rasterized=True, legend=ax is axes[-1],
        )  # fmt: skip
        row = corr[(corr["arch"] == "all") & (corr["metric"] == m)]
        if len(row):
            r = row.iloc[0]
            ax.set_title(f"{m}\nPearson {r.pearson_r:.2f}, Spearman {r.spearman_rho:.2f}")
        ax.set_xscale("log")
    fig.suptitle("Ramanujan metrics vs layer density (per layer)", y=1.03)
    return fig


def write_figures(
    res: dict[str, Any], fig_dir: Path, ranking_scope: str = "arch"
) -> dict[str, Path]:
    """Every figure the results allow; returns name -> path."""
    fig_dir = Path(fig_dir)
    sns.set_theme(style="whitegrid", context="paper")
    out: dict[str, Path] = {}
    out.update(save_figure(regression_figure(res["regression_folds"], res["target"]),
                           fig_dir / "regression_r2"))  # fmt: skip
    # every figure is always written (a placeholder says why it is empty) so that a workflow can
    # declare the files as outputs
    if not res["importance"].empty:
        out.update(save_figure(importance_figure(res["importance"]), fig_dir / "importance"))
    else:
        out.update(save_figure(_placeholder("no permutation importance: too few networks"),
                               fig_dir / "importance"))  # fmt: skip
    out.update(save_figure(ranking_figure(res["ranking_summary"], ranking_scope),
                           fig_dir / "ranking_tau"))  # fmt: skip
    if "ramanujan_density" in res and res.get("ramanujan_layers") is not None:
        out.update(
            save_figure(
                ramanujan_figure(res["ramanujan_layers"], res["ramanujan_density"]),
                fig_dir / "ramanujan_density",
            )
        )
    else:
        out.update(save_figure(_placeholder("no Ramanujan metrics in these tables"),
                               fig_dir / "ramanujan_density"))  # fmt: skip
    return out


def _placeholder(text: str) -> plt.Figure:
    """A small figure that states why the real one could not be drawn."""
    fig, ax = plt.subplots(figsize=(5, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    return fig
