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
) -> None:
    """A single HTML page: the grid, the accuracies of the PaI methods side by side, a drawing of
    one MGE and the analysis figures, linking to the full analysis summary (relative links)."""
    from html import escape

    out_dir = Path(out).parent

    def rel(path: str) -> str:
        return escape(str(Path(path).resolve().relative_to(out_dir.resolve())))

    imgs = "\n".join(
        f'<figure><img src="{rel(f)}" style="max-width:100%"><figcaption>'
        f"{escape(Path(f).stem)}</figcaption></figure>"
        for f in figures
        if f.endswith(".png")
    )
    acc = accuracy_table(networks_csv).to_html(index=False, border=0, classes="acc")
    mge = "".join(
        "<h2>The multipartite graph encoding (MGE) of one network</h2>\n"
        f'<img src="{rel(f)}" style="max-width:100%">\n'
        for f in graph_figures
    )
    grid = "".join(f"<li><b>{escape(k)}</b>: {escape(str(v))}</li>" for k, v in meta.items())
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>snntopo report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}
table.acc td,table.acc th{{padding:2px 8px;text-align:right}}</style></head>
<body>
<h1>snntopo report</h1>
<ul>{grid}</ul>
<p>Protocol, numbers and verdicts on the paper's claims:
<a href="{rel(summary_html)}">analysis summary</a>.</p>
<h2>Test accuracy of the PaI methods (mean ± std over seeds)</h2>
{acc}
{mge}
<h2>Analysis figures</h2>
{imgs}
</body></html>
"""
    write_text(out, html)


def plot_graph(graph_path: str, out: str) -> None:
    """Draw a stored MGE (layers as columns) for the report."""
    from ..encode.graph import load_graph
    from ..plots.graph import plot_mge

    with atomic_path(out) as tmp:
        plot_mge(load_graph(graph_path), tmp)
