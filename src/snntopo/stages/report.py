"""Stages ``graph_figure`` and ``report``: the HTML page and the MGE drawing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..io import atomic_path, write_text

log = logging.getLogger("snntopo.stages")


def accuracy_table(networks_csv: str) -> Any:
    """Mean ± std test accuracy over seeds, one row per (dataset, arch, method), one column per
    sparsity, with the dense baseline beside it: the PaI methods side by side."""
    import pandas as pd

    df = pd.read_csv(networks_csv)
    grouped = df.groupby(["dataset", "arch", "method", "sparsity"])["accuracy"]
    cell = (
        grouped.mean().map("{:.3f}".format) + " ± " + grouped.std().fillna(0).map("{:.3f}".format)
    )
    table = cell.unstack("sparsity")
    table.columns = [f"s={c:g}" for c in table.columns]
    dense = df.groupby(["dataset", "arch", "method"])["dense_accuracy"].mean()
    table["dense"] = dense.reindex(table.index).map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    return table.reset_index()


def make_report(
    summary_html: str,
    figures: list[str],
    graph_figures: list[str],
    networks_csv: str,
    out: str,
    meta: dict[str, Any],
    out_accuracy: str | None = None,
) -> None:
    """``report.html`` (self-contained: images embedded, see :mod:`snntopo.plots.report_html`)
    and, with ``out_accuracy``, the accuracy table as CSV (a Snakemake report item)."""
    import os

    from ..io import write_csv
    from ..plots.report_html import render_report

    acc = accuracy_table(networks_csv)
    href = os.path.relpath(Path(summary_html).resolve(), Path(out).resolve().parent)
    write_text(out, render_report(acc, figures, graph_figures, meta, summary_href=href))
    if out_accuracy:
        write_csv(acc, out_accuracy)


def plot_graph(graph_path: str, out: str) -> None:
    """Draw a stored MGE (layers as columns) for the report."""
    from ..encode.graph import load_graph
    from ..plots.graph import plot_mge

    with atomic_path(out) as tmp:
        plot_mge(load_graph(graph_path), tmp)
