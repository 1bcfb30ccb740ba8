"""Layout of the figures and pages a reader looks at: one R² panel when there is one
architecture, R² axes set from the data (bars below the floor annotated, not silently clipped),
rotated feature-set labels, small-sample flags on verdicts over few cells, wide summary tables
that scroll instead of running off the page, and an MGE drawing whose labels survive being shown
at page width."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from snntopo.analysis.summary import verdict_blocks, verdict_table
from snntopo.plots.analysis import R2_AXIS_FLOOR, regression_figure
from snntopo.plots.graph import plot_mge
from snntopo.render import html

SETS = ["sparsity", "density", "ramanujan", "ramanujan+density", "mge"]


def _folds(archs, low=None):
    rng = np.random.default_rng(1)
    rows = []
    scopes = [("pooled", "all")] + [("arch", a) for a in archs]
    for scope, group in scopes:
        for fs in SETS:
            for model in ("ridge", "gbt"):
                for fold in range(4):
                    base = low if (low is not None and fs == "ramanujan") else 0.3
                    rows.append({"scope": scope, "group": group, "feature_set": fs,
                                 "model": model, "fold": fold,
                                 "r2": base + rng.normal(0, 0.05)})  # fmt: skip
    return pd.DataFrame(rows)


def _bar_panels(fig):
    return [ax for ax in fig.axes if ax.patches]


def test_one_architecture_gives_one_panel_two_give_three():
    fig = regression_figure(_folds(["resnet20"]), "accuracy")
    (ax,) = _bar_panels(fig)
    assert "resnet20" in ax.get_title() and "pooled" in ax.get_title()
    fig = regression_figure(_folds(["resnet20", "vgg16"]), "accuracy")
    assert len(_bar_panels(fig)) == 3


def test_r2_axis_comes_from_the_data_and_clipped_bars_are_annotated():
    # every bar near 0.3: the axis hugs the data (and 0), not a fixed [-1, 1]
    fig = regression_figure(_folds(["a", "b"]), "accuracy")
    for ax in _bar_panels(fig):
        lo, hi = ax.get_ylim()
        assert -0.2 < lo <= 0 and 0.3 < hi < 0.6
        assert not ax.texts
    # a feature set at R² -5: the axis stops at the floor and the bars say their value
    fig = regression_figure(_folds(["a", "b"], low=-5.0), "accuracy")
    for ax in _bar_panels(fig):
        assert ax.get_ylim()[0] == R2_AXIS_FLOOR
        notes = [float(t.get_text()) for t in ax.texts]
        assert len(notes) == 2 and all(v == pytest.approx(-5.0, abs=0.2) for v in notes)
    # a feature set at -1.5 is drawn whole (the old fixed axis cut it at -1)
    fig = regression_figure(_folds(["a", "b"], low=-1.5), "accuracy")
    for ax in _bar_panels(fig):
        lo = ax.get_ylim()[0]
        assert lo < min(p.get_height() for p in ax.patches if np.isfinite(p.get_height()))
        assert not ax.texts


def test_feature_set_labels_are_rotated_and_anchored():
    fig = regression_figure(_folds(["a"]), "accuracy")
    (ax,) = _bar_panels(fig)
    labels = ax.get_xticklabels()
    assert [t.get_text() for t in labels] == [
        "sparsity", "density", "ramanujan", "ramanujan+\ndensity", "mge"
    ]  # fmt: skip
    assert all(t.get_rotation() == 45 and t.get_ha() == "right" for t in labels)


def _ranking_verdicts(n_cells):
    return pd.DataFrame({
        "feature_set": ["mge", "mge"], "model": ["gbt", "gbt"],
        "dataset": ["digits", "all"], "arch": ["resnet20", "all"],
        "tau": [0.5, 0.5], "tau_layer_density": [0.1, 0.1],
        "n_cells": [n_cells, n_cells], "cells_beating_all_floors": [2, 2],
        "floor": [0.1, 0.1], "floor_name": ["layer density"] * 2, "helps": [True, True],
    })  # fmt: skip


@pytest.mark.parametrize(("n_cells", "flagged"), [(3, True), (1, True), (4, False), (12, False)])
def test_verdicts_over_three_cells_or_fewer_are_flagged(n_cells, flagged):
    res = {"ranking_verdicts": _ranking_verdicts(n_cells), "regression_verdicts": None}
    table = verdict_table(res, "mge")
    assert all(("small sample" in v) is flagged for v in table["ranking"])
    assert all(v.startswith("**helps**") for v in table["ranking"])
    blocks = verdict_blocks(res, SimpleNamespace(ranking_scope="arch"))
    text = " ".join(str(x) for _, x in blocks)
    assert ("Small sample." in text) is flagged
    if flagged:
        assert f"rest on {n_cells} cell(s)" in text


def test_wide_tables_scroll_inside_the_page():
    wide = pd.DataFrame({f"a rather long column name {i}": [1.0] for i in range(30)})
    page = html([("table", wide)], "t")
    style = page[page.index("<style>") + 7 : page.index("</style>")]
    rule = [r for r in style.split("}") if r.startswith("table{")][0]
    assert "overflow-x:auto" in rule and "max-width:100%" in rule and "display:block" in rule


@dataclass
class _Block:
    name: str
    shape: tuple
    start: int
    stop: int

    @property
    def size(self):
        return self.stop - self.start


@dataclass
class _Graph:
    """The attributes plot_mge reads, for a layered graph of ``k`` blocks."""

    k: int
    width: int = 4
    meta: dict = field(default_factory=lambda: {"encoding": "mge"})

    def __post_init__(self):
        self.blocks = [
            _Block(f"layer{i}.0.conv{i}", (self.width, 8, 8), i * self.width, (i + 1) * self.width)
            for i in range(self.k)
        ]
        self.n_nodes = self.k * self.width
        src, dst = [], []
        for i in range(self.k - 1):
            for a in range(self.width):
                for b in range(self.width):
                    src.append(i * self.width + a)
                    dst.append((i + 1) * self.width + b)
        self._src = np.array(src)
        self.indices = np.array(dst)
        self.weights = np.ones(len(src))
        self.n_edges = len(src)

    def sources(self):
        return self._src


def _png_size(path):
    head = path.read_bytes()[:24]
    return struct.unpack(">II", head[16:24])


@pytest.mark.parametrize("k", [4, 30])
def test_mge_drawing_fits_the_page_with_readable_labels(tmp_path, k):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    captured = {}
    orig = plt.Figure.savefig

    def spy(self, *a, **kw):
        ax = self.axes[0]
        captured["sizes"] = {t.get_fontsize() for t in ax.get_xticklabels()}
        captured["labels"] = [t.get_text() for t in ax.get_xticklabels()]
        return orig(self, *a, **kw)

    plt.Figure.savefig = spy
    try:
        out = plot_mge(_Graph(k), tmp_path / "mge.png")
    finally:
        plt.Figure.savefig = orig
    w, h = _png_size(out)
    # shown at ~1100 px: at most 1400 px wide, so labels shrink by at most ~20%
    assert w <= 1400 and h >= 400
    assert min(captured["sizes"]) >= 9
    assert captured["labels"][1] == "layer1.0.conv1  4x8x8"


def test_importance_heat_map_drops_the_lone_architecture_column():
    from snntopo.plots.analysis import importance_figure

    def imp(archs):
        rows = []
        groups = [("pooled", "all")] + [("arch", a) for a in archs] + [("sparsity", "0.9")]
        for scope, group in groups:
            for feat, share in (("cut_edges_norm", 0.7), ("cut_nodes_norm", 0.3)):
                rows.append({"scope": scope, "group": group, "feature": feat,
                             "family": "global", "share": share})  # fmt: skip
        return pd.DataFrame(rows)

    cols = [t.get_text() for t in importance_figure(imp(["resnet20"])).axes[0].get_xticklabels()]
    assert cols == ["pooled", "s=0.9"]
    cols = [t.get_text() for t in importance_figure(imp(["a", "b"])).axes[0].get_xticklabels()]
    assert cols == ["pooled", "a", "b", "s=0.9"]
