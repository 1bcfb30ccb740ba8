"""The hand-made one-page report (``results/report.html``): the grid, the PaI methods' accuracies
side by side, a drawing of one MGE and the analysis figures.

Why its own module: the page is presentation, not a pipeline stage, and it must stay readable when
the file is copied or mailed on its own, so every image is embedded as a ``data:`` URI (PNG,
base64) instead of linked. Only the link to the full analysis summary is relative.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..render import escape, html_body, html_table, page
from .captions import FIGURES, Caption

#: the page's style (the summary's is :data:`snntopo.render.STYLE`)
STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:0 1em}"
    "table.acc{border-collapse:collapse}"
    "table.acc td,table.acc th{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}"
    "figcaption{color:#444;font-size:90%}"
)


def data_uri(path: str | Path) -> str:
    """A file as a ``data:`` URI (the image travels inside the page)."""
    p = Path(path)
    mime = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}.get(
        p.suffix.lower(), "application/octet-stream"
    )
    return f"data:{mime};base64,{base64.b64encode(p.read_bytes()).decode('ascii')}"


def _cell(v: Any) -> str:
    """An accuracy cell: its text, empty where the grid has no such network."""
    return "" if v is None or (isinstance(v, float) and v != v) else str(v)


def _figure(path: str) -> str:
    """A figure with its caption (:mod:`snntopo.plots.captions`, the Snakemake report's too)."""
    stem = Path(path).stem
    cap = FIGURES.get(stem, Caption(stem, ""))
    return (
        f'<figure><img src="{data_uri(path)}" alt="{escape(stem)}" style="max-width:100%">'
        f"<figcaption><b>{escape(cap.title)}</b> {escape(cap.text)}</figcaption></figure>"
    )


def render_report(
    accuracy: Any,
    figures: Sequence[str],
    graph_figures: Sequence[str],
    grid: Mapping[str, Any],
    summary_href: str | None = None,
) -> str:
    """The page's HTML. ``accuracy``: the table of :func:`snntopo.stages.report.accuracy_table`;
    ``figures``/``graph_figures``: PNG paths (embedded); ``summary_href``: a link to the analysis
    summary, relative to where the page is written."""
    grid_list = html_body([("ul", [f"**{k}**: {v}" for k, v in grid.items()])])
    body = ["<h1>snntopo report</h1>", grid_list]
    if summary_href:
        body.append(
            "<p>Protocol, numbers and verdicts on the paper's claims: "
            f'<a href="{escape(summary_href)}">analysis summary</a> (in <code>analysis/</code> '
            "beside this page).</p>"
        )
    body += [
        "<h2>Test accuracy of the PaI methods (mean ± std over seeds)</h2>",
        html_table(accuracy, fmt=_cell, cls="acc"),
    ]
    for f in graph_figures:
        body += ["<h2>The multipartite graph encoding (MGE) of one network</h2>", _figure(f)]
    body.append("<h2>Analysis figures</h2>")
    body += [_figure(f) for f in figures if f.endswith(".png")]
    return page("snntopo report", body, STYLE)
