"""The hand-made one-page report (``results/report.html``): the grid, the PaI methods' accuracies
side by side, a drawing of one MGE and the analysis figures.

Why its own module: the page is presentation, not a pipeline stage, and it must stay readable when
the file is copied or mailed on its own, so every image is embedded as a ``data:`` URI (PNG,
base64) instead of linked. Only the link to the full analysis summary is relative.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from .captions import FIGURES, Caption


def data_uri(path: str | Path) -> str:
    """A file as a ``data:`` URI (the image travels inside the page)."""
    p = Path(path)
    mime = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}.get(
        p.suffix.lower(), "application/octet-stream"
    )
    return f"data:{mime};base64,{base64.b64encode(p.read_bytes()).decode('ascii')}"


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
    items = "".join(f"<li><b>{escape(k)}</b>: {escape(str(v))}</li>" for k, v in grid.items())
    acc = accuracy.to_html(index=False, border=0, classes="acc")
    mge = "".join(
        "<h2>The multipartite graph encoding (MGE) of one network</h2>\n" + _figure(f)
        for f in graph_figures
    )
    imgs = "\n".join(_figure(f) for f in figures if f.endswith(".png"))
    summary = (
        f'<p>Protocol, numbers and verdicts on the paper\'s claims: <a href="{escape(summary_href)}">'
        "analysis summary</a> (in <code>analysis/</code> beside this page).</p>"
        if summary_href
        else ""
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>snntopo report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto;padding:0 1em}}
table.acc{{border-collapse:collapse}}
table.acc td,table.acc th{{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}}
figcaption{{color:#444;font-size:90%}}</style></head>
<body>
<h1>snntopo report</h1>
<ul>{items}</ul>
{summary}
<h2>Test accuracy of the PaI methods (mean ± std over seeds)</h2>
{acc}
{mge}
<h2>Analysis figures</h2>
{imgs}
</body></html>
"""
