"""The hand-made one-page report (``results/report.html``): the run's metadata (with a warning
when it is a smoke run), the field's figures (accuracy vs sparsity, training curves, per-layer
density), the PaI methods' accuracies side by side, a drawing of one MGE and the analysis
figures.

Why its own module: the page is presentation, not a pipeline stage, and it must stay readable when
the file is copied or mailed on its own, so every image is embedded as a ``data:`` URI (PNG,
base64) instead of linked. Only the link to the full analysis summary is relative.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..render import escape, html_body, html_table, key_value_table, page
from .captions import FIGURES, Caption

#: the page's style (the summary's is :data:`snntopo.render.STYLE`)
STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:0 1em}"
    ".scroll{overflow-x:auto}"
    "table.acc{border-collapse:collapse}"
    "table.acc td,table.acc th{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}"
    "table.meta{border-collapse:collapse;font-size:92%}"
    "table.meta th{text-align:left;padding:1px 12px 1px 0;vertical-align:top;white-space:nowrap}"
    "table.meta td{padding:1px 0}"
    ".smoke{background:#fff3cd;border:2px solid #e0a800;padding:.6em 1em;margin:.8em 0}"
    "figcaption{color:#444;font-size:90%}"
)

#: the field's figures (:mod:`snntopo.plots.training`): stem -> section title, in page order
FIELD_FIGURES = {
    "accuracy_sparsity": "Test accuracy vs sparsity",
    "training_curves": "Training curves",
    "layer_density": "Per-layer density of the masks",
}


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


def smoke_warning(reasons: Sequence[str]) -> str:
    """The box that says a run is a smoke run (its reasons listed), or ``""``."""
    if not reasons:
        return ""
    items = "".join(f"<li>{escape(r)}</li>" for r in reasons)
    return (
        '<div class="smoke"><b>Smoke run, not a study.</b> These trainings are far shorter or '
        "smaller than the paper's, so the numbers below show that the pipeline works end to "
        f"end, not how the PaI methods or the topology compare:<ul>{items}</ul></div>"
    )


def render_report(
    accuracy: Any,
    figures: Sequence[str],
    graph_figures: Sequence[str],
    grid: Mapping[str, Any],
    summary_href: str | None = None,
    run_info: Mapping[str, Any] | None = None,
    field_figures: Sequence[str] = (),
) -> str:
    """The page's HTML. ``accuracy``: the table of :func:`snntopo.stages.report.accuracy_table`;
    ``figures``/``graph_figures``: PNG paths (embedded); ``summary_href``: a link to the analysis
    summary, relative to where the page is written. ``run_info``
    (:func:`snntopo.stages.report.run_metadata`): the run's metadata and smoke-run warnings,
    shown first instead of the bare grid; ``field_figures``: the PNGs of
    :mod:`snntopo.plots.training`, shown before the analysis."""
    body = ["<h1>snntopo report</h1>"]
    if run_info is not None:
        body.append(smoke_warning(run_info.get("warnings", ())))
        body.append(key_value_table(run_info["rows"], cls="meta"))
    else:
        body.append(html_body([("ul", [f"**{k}**: {v}" for k, v in grid.items()])]))
    if summary_href:
        body.append(
            "<p>Protocol, numbers and verdicts on the paper's claims: "
            f'<a href="{escape(summary_href)}">analysis summary</a> (in <code>analysis/</code> '
            "beside this page).</p>"
        )
    field = {Path(f).stem: f for f in field_figures}
    if "accuracy_sparsity" in field:
        body += [
            f"<h2>{FIELD_FIGURES['accuracy_sparsity']}</h2>",
            _figure(field["accuracy_sparsity"]),
        ]
    body += [
        "<h2>Test accuracy of the PaI methods (mean ± std over seeds)</h2>",
        f'<div class="scroll">{html_table(accuracy, fmt=_cell, cls="acc")}</div>',
    ]
    for stem in ("training_curves", "layer_density"):
        if stem in field:
            body += [f"<h2>{FIELD_FIGURES[stem]}</h2>", _figure(field[stem])]
    for f in graph_figures:
        body += ["<h2>The multipartite graph encoding (MGE) of one network</h2>", _figure(f)]
    body.append("<h2>Analysis figures</h2>")
    body += [_figure(f) for f in figures if f.endswith(".png")]
    return page("snntopo report", body, STYLE)
