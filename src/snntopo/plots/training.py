"""The field's figures of a pruning-at-initialisation run, drawn from the trainings and the masks:
test accuracy against sparsity per method with the dense baseline, the training curves per method
and sparsity, and the per-layer density profile each method gives the same budget.

Why here and not in the analysis stage: these figures need only ``train.json`` and the masks'
metadata (no topology), and they are what a reader of any PaI paper looks for first, so the report
shows them above the analysis. The numbers behind each figure are kept as a table
(:func:`accuracy_by_sparsity`, :func:`mean_curves`, :func:`layer_density_profile`) so a test can
compare what is drawn with what the artifacts say. Torch-free: masks are read through their
safetensors header (:func:`snntopo.artifacts.read_safetensors_meta`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..names import DENSE  # noqa: E402

KEYS = ["dataset", "arch", "method", "sparsity", "seed"]


def load_trainings(paths: Iterable[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``train.json`` files as two tables: one row per network (keys, accuracy, epochs, device,
    versions) and one row per (network, epoch) of its history."""
    runs, hist = [], []
    for p in paths:
        s = json.loads(Path(p).read_text())
        keys = {k: s[k] for k in KEYS}
        keys["sparsity"] = float(keys["sparsity"])
        prov = s.get("provenance") or {}
        runs.append(
            {
                **keys,
                "accuracy": s["accuracy"],
                "epochs": (s.get("training") or {}).get("epochs"),
                "device": s.get("device"),
                "snntopo": prov.get("snntopo_version"),
                "python": prov.get("python"),
                "torch": s.get("torch_version"),
                "training": json.dumps(s.get("training") or {}, sort_keys=True),
            }
        )
        for row in s.get("history") or []:
            hist.append({**keys, **row})
    runs_df = pd.DataFrame(runs, columns=[*KEYS, "accuracy", "epochs", "device", "snntopo",
                                          "python", "torch", "training"])  # fmt: skip
    cols = [*KEYS, "epoch", "loss", "train_acc", "test_acc"]
    hist_df = pd.DataFrame(hist)
    hist_df = hist_df.reindex(columns=[*cols, *[c for c in hist_df.columns if c not in cols]])
    return runs_df, hist_df


def accuracy_by_sparsity(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample standard deviation (0 for one seed) of the test accuracy over seeds per
    (dataset, arch, method, sparsity); the dense baseline is method ``dense`` at sparsity 0."""
    g = runs.groupby(["dataset", "arch", "method", "sparsity"])["accuracy"]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def mean_curves(history: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, arch, method, sparsity, epoch): the training loss and test accuracy averaged
    over seeds (test accuracy only over the epochs that were evaluated)."""
    h = history.copy()
    h["test_acc"] = pd.to_numeric(h["test_acc"], errors="coerce")
    g = h.groupby(["dataset", "arch", "method", "sparsity", "epoch"])
    return g.agg(loss=("loss", "mean"), test_acc=("test_acc", "mean")).reset_index()


def load_mask_densities(paths: Iterable[str | Path]) -> pd.DataFrame:
    """The realised per-layer densities the masks record: one row per (network, layer), layers
    numbered in the order the mask lists them (the model's order)."""
    from ..artifacts import read_safetensors_meta

    rows = []
    for p in paths:
        meta = read_safetensors_meta(p)
        for i, (layer, d) in enumerate((meta.get("densities") or {}).items()):
            rows.append(
                {
                    "dataset": meta.get("dataset"),
                    "arch": meta.get("arch"),
                    "method": meta.get("method"),
                    "sparsity": float(meta.get("sparsity")),
                    "seed": meta.get("seed"),
                    "layer_index": i,
                    "layer": layer,
                    "density": float(d),
                }
            )
    return pd.DataFrame(rows, columns=[*KEYS, "layer_index", "layer", "density"])


def layer_density_profile(densities: pd.DataFrame) -> pd.DataFrame:
    """Mean layer density over seeds per (dataset, arch, method, sparsity, layer)."""
    g = densities.groupby(["dataset", "arch", "method", "sparsity", "layer_index", "layer"])
    return g["density"].mean().reset_index()


def method_colors(methods: Sequence[str]) -> dict[str, Any]:
    """One colour per method, the same in every figure (the dense baseline is black)."""
    cmap = plt.get_cmap("tab10")
    names = [m for m in dict.fromkeys(methods) if m != DENSE]
    return {DENSE: "black", **{m: cmap(i % 10) for i, m in enumerate(names)}}


def _panels(df: pd.DataFrame) -> list[tuple[str, str]]:
    return list(df[["dataset", "arch"]].drop_duplicates().itertuples(index=False, name=None))


def _sparsity_label(s: float) -> str:
    return f"{100 * s:g}%"


def accuracy_sparsity_figure(acc: pd.DataFrame, methods: Sequence[str] | None = None) -> Any:
    """Test accuracy against sparsity, one panel per (dataset, arch): one line per method (mean
    over seeds, error bars one standard deviation), the dense baseline as a horizontal line with a
    ±1 sd band. The x axis is the density ``1 - s`` on a log scale, reversed (sparser to the
    right), labelled with the sparsity: equal steps in it are equal factors of remaining weights.
    """
    methods = list(methods or acc["method"].unique())
    colors = method_colors(methods)
    panels = _panels(acc)
    ncol = min(len(panels), 3)
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 3.8 * nrow), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (ds, arch) in zip(axes.flat, panels, strict=False):
        d = acc[(acc["dataset"] == ds) & (acc["arch"] == arch)]
        sparse = d[d["method"] != DENSE]
        levels = sorted(sparse["sparsity"].unique())
        dense = d[d["method"] == DENSE]
        if len(dense):
            mu, sd = float(dense["mean"].iloc[0]), float(dense["std"].iloc[0])
            ax.axhline(
                mu, color="black", lw=1.2, ls="--", label=f"{DENSE} (n={dense['n'].iloc[0]})"
            )
            ax.axhspan(mu - sd, mu + sd, color="black", alpha=0.08, lw=0)
        for m in [m for m in methods if m != DENSE]:
            dm = sparse[sparse["method"] == m].sort_values("sparsity")
            if dm.empty:
                continue
            ax.errorbar(
                1 - dm["sparsity"].to_numpy(),
                dm["mean"].to_numpy(),
                yerr=dm["std"].to_numpy(),
                label=m,
                color=colors[m],
                marker="o",
                ms=4,
                lw=1.3,
                capsize=3,
            )
        ax.set_xscale("log")
        if levels:
            ax.set_xticks([1 - s for s in levels])
            ax.set_xticklabels([_sparsity_label(s) for s in levels])
            ax.minorticks_off()
            lo, hi = 1 - max(levels), 1 - min(levels)
            ax.set_xlim(hi * 1.25, lo / 1.25)  # reversed: sparser to the right
        ax.set_xlabel("sparsity (log scale of remaining weights)")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{ds} / {arch}")
        ax.grid(alpha=0.3)
    return _finish(fig, axes, "Test accuracy vs sparsity (mean ± sd over seeds)")


def training_curves_figure(curves: pd.DataFrame, methods: Sequence[str] | None = None) -> Any:
    """Training loss and test accuracy per epoch: for each (dataset, arch) one row of loss panels
    and one of test-accuracy panels, one column per sparsity, one line per method (mean over
    seeds); the dense baseline's curve in every panel (black, dashed) for reference."""
    methods = list(methods or curves["method"].unique())
    colors = method_colors(methods)
    panels = _panels(curves)
    levels = sorted(curves.loc[curves["method"] != DENSE, "sparsity"].unique())
    ncol = max(len(levels), 1)
    nrow = 2 * len(panels)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(3.4 * ncol + 1.5, 2.5 * nrow), squeeze=False, sharex=True
    )
    for r, (ds, arch) in enumerate(panels):
        d = curves[(curves["dataset"] == ds) & (curves["arch"] == arch)]
        dense = d[d["method"] == DENSE]
        for c, s in enumerate(levels):
            for k, (col, what) in enumerate((("loss", "training loss"), ("test_acc", "test acc."))):
                ax = axes[2 * r + k, c]
                if len(dense):
                    dd = dense.dropna(subset=[col])
                    ax.plot(dd["epoch"], dd[col], color="black", ls="--", lw=1, label=DENSE)
                for m in [m for m in methods if m != DENSE]:
                    dm = d[(d["method"] == m) & (d["sparsity"] == s)].dropna(subset=[col])
                    if len(dm):
                        ax.plot(dm["epoch"], dm[col], color=colors[m], lw=1.2, marker=".",
                                ms=3, label=m)  # fmt: skip
                if k == 0:
                    ax.set_title(f"{ds} / {arch}, sparsity {_sparsity_label(s)}", fontsize=9)
                if c == 0:
                    ax.set_ylabel(what)
                if 2 * r + k == nrow - 1:
                    ax.set_xlabel("epoch")
                ax.grid(alpha=0.3)
    handles, labels = {}, {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    labels = list(handles)
    fig.legend([handles[k] for k in labels], labels, loc="center left",
               bbox_to_anchor=(1.0, 0.5), frameon=False)  # fmt: skip
    fig.suptitle("Training curves (mean over seeds; dashed: the dense baseline)")
    fig.tight_layout()
    return fig


def layer_density_figure(profile: pd.DataFrame, methods: Sequence[str] | None = None) -> Any:
    """How each method distributes the same budget over the layers: the density of every
    prunable layer (in model order, log scale), one panel per (dataset, arch) and sparsity, one
    line per method (mean over seeds)."""
    methods = list(methods or profile["method"].unique())
    colors = method_colors(methods)
    cells = list(
        profile[["dataset", "arch", "sparsity"]]
        .drop_duplicates()
        .sort_values(["dataset", "arch", "sparsity"])
        .itertuples(index=False, name=None)
    )
    n_layers = int(profile["layer_index"].max()) + 1 if len(profile) else 1
    # a deep network gets one wide panel per row (its layer names must stay readable at page
    # width); a shallow one shares rows
    ncol = 1 if n_layers > 10 else min(len(cells), 3)
    nrow = -(-len(cells) // ncol)
    width = min(12.0, max(5.0, 0.4 * n_layers + 2.0))
    fig, axes = plt.subplots(nrow, ncol, figsize=(width * ncol, 4.2 * nrow), squeeze=False)
    for ax in axes.flat[len(cells) :]:
        ax.axis("off")
    for ax, (ds, arch, s) in zip(axes.flat, cells, strict=False):
        d = profile[(profile["dataset"] == ds) & (profile["arch"] == arch)]
        d = d[d["sparsity"] == s]
        for m in methods:
            dm = d[d["method"] == m].sort_values("layer_index")
            if len(dm):
                ax.plot(dm["layer_index"], dm["density"], color=colors[m], marker="o", ms=3,
                        lw=1.1, label=m)  # fmt: skip
        names = d.drop_duplicates("layer_index").sort_values("layer_index")
        ax.set_xticks(names["layer_index"].to_numpy())
        ax.set_xticklabels(names["layer"].map(_short_layer), rotation=90, fontsize=9)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.axhline(1 - s, color="grey", lw=0.8, ls=":")
        ax.set_ylabel("layer density")
        ax.set_title(f"{ds} / {arch}, sparsity {_sparsity_label(s)} (dotted: 1 - sparsity)",
                     fontsize=10)  # fmt: skip
        ax.grid(alpha=0.3)
    return _finish(fig, axes, "Per-layer density of the masks (mean over seeds)")


def _finish(fig: Any, axes: Any, title: str) -> Any:
    """The figure's one legend (the first panel's lines, right of the panels) and its title."""
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _short_layer(name: str) -> str:
    """A parameter name without its ``.weight`` suffix (``layer1.0.conv1``)."""
    return name.removesuffix(".weight")


def save_png(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as PNG atomically and close it."""
    from ..io import atomic_path

    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def write_training_figures(
    trainings: tuple[pd.DataFrame, pd.DataFrame],
    masks: Sequence[str | Path],
    out: dict[str, str | Path],
    methods: Sequence[str] | None = None,
) -> dict[str, Path]:
    """The three figures as PNG from ``trainings`` (:func:`load_trainings`, read once by the
    caller, which also shows the run's metadata): ``out`` maps ``accuracy_sparsity``,
    ``training_curves`` and ``layer_density`` to their paths (each written atomically)."""
    runs, hist = trainings
    if methods is not None:
        methods = [*[m for m in methods if m != DENSE], DENSE]
    written = {}
    written["accuracy_sparsity"] = save_png(
        accuracy_sparsity_figure(accuracy_by_sparsity(runs), methods), out["accuracy_sparsity"]
    )
    written["training_curves"] = save_png(
        training_curves_figure(mean_curves(hist), methods), out["training_curves"]
    )
    profile = layer_density_profile(load_mask_densities(masks))
    written["layer_density"] = save_png(
        layer_density_figure(profile, methods), out["layer_density"]
    )
    return written


def figure_arrays(fig: Any) -> dict[str, dict[str, np.ndarray]]:
    """The (x, y) data of each labelled line of a figure, by axes title then label (for tests and
    for checking a figure against its table)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for ax in fig.axes:
        lines = {}
        for line in ax.get_lines():
            lab = line.get_label()
            if not lab.startswith("_"):
                lines[lab] = np.column_stack([line.get_xdata(), line.get_ydata()])
        if lines:
            out[ax.get_title()] = lines
    return out
