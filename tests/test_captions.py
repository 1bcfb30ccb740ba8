"""One caption source: the Snakemake report's caption files are what ``snntopo.plots.captions``
generates, they render without docutils errors, and report.html shows the same captions."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
import pytest
from docutils.core import publish_parts

from snntopo.plots import captions
from snntopo.plots.report_html import render_report

REPO = Path(__file__).resolve().parents[1]


def test_checked_in_caption_files_are_the_generated_ones():
    generated = captions.rst_files(REPO / "report")
    on_disk = set((REPO / "report").glob("figures/*.rst")) | set(
        (REPO / "report").glob("tables/*.rst")
    )
    assert on_disk == set(generated)  # no stray caption file, none missing
    stale = [p.name for p, text in generated.items() if p.read_text(encoding="utf-8") != text]
    assert not stale, f"run: python -m snntopo.plots.captions report  ({stale})"


def test_every_caption_the_rules_name_exists():
    rules = "\n".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))
    named = set(re.findall(r"report/(figures|tables)/(\w+)\.rst", rules))
    assert ("figures", "mge") in named and ("tables", "pai_accuracy") in named
    for kind, stem in named:
        assert (REPO / "report" / kind / f"{stem}.rst").exists(), (kind, stem)
    # the analysis figures' captions are named by their stem (caption=f"...{Path(f).stem}.rst")
    assert set(captions.ANALYSIS_FIGURES) <= set(captions.FIGURES)


@pytest.mark.parametrize("path", sorted((REPO / "report").glob("*/*.rst")), ids=lambda p: p.stem)
def test_caption_renders_without_docutils_errors(path):
    errors = io.StringIO()
    parts = publish_parts(
        path.read_text(encoding="utf-8"),
        writer="html",
        settings_overrides={"warning_stream": errors, "report_level": 2},
    )
    assert errors.getvalue() == "" and "system-message" not in parts["body"]
    caption = {**captions.FIGURES, **captions.TABLES}[path.stem]
    # the rendered text is the caption itself (markup escaped, not interpreted)
    text = re.sub(r"<[^>]+>", "", parts["body"]).replace("\n", " ").strip()
    text = text.replace("&quot;", '"').replace("&amp;", "&")
    assert text == f"{caption.title} {caption.text}"


def test_ramanujan_caption_shows_absolute_rho():
    body = publish_parts(
        (REPO / "report" / "figures" / "ramanujan_density.rst").read_text(encoding="utf-8"),
        writer="html",
        settings_overrides={"report_level": 5},
    )["body"]
    assert "(|ρ| near 1)" in body


def test_report_page_shows_the_same_captions(tmp_path):
    figs = []
    for stem in (*captions.ANALYSIS_FIGURES, "mge"):
        f = tmp_path / f"{stem}.png"
        f.write_bytes(b"\x89PNG\r\n\x1a\n")
        figs.append(str(f))
    page = render_report(
        pd.DataFrame({"a": [1]}), figs[:-1], figs[-1:], {"datasets": ["digits"]}, None
    )
    shown = dict(re.findall(r'alt="(\w+)".*?<figcaption>(.*?)</figcaption>', page))
    assert set(shown) == {*captions.ANALYSIS_FIGURES, "mge"}
    for stem, html in shown.items():
        cap = captions.FIGURES[stem]
        plain = re.sub(r"<[^>]+>", "", html).replace("&#x27;", "'").replace("&quot;", '"')
        assert plain == f"{cap.title} {cap.text}"


@pytest.mark.parametrize("path", sorted((REPO / "report").glob("*/*.rst")), ids=lambda p: p.stem)
def test_caption_renders_as_snakemake_report_renders_it(path):
    """As ``snakemake --report`` does: the caption plus Snakemake's link targets, through Jinja
    (trim_blocks, lstrip_blocks), then docutils' HTML writer; a markup error would show as a red
    "Docutils System Messages" box (a ``system-message`` element) in the report."""
    from jinja2 import Environment

    links = "\n\n.. _Workflow: javascript:show_panel('workflow')\n"
    text = (
        Environment(trim_blocks=True, lstrip_blocks=True)
        .from_string(path.read_text(encoding="utf-8") + links)
        .render(snakemake=None, categories={}, files={})
    )
    errors = io.StringIO()
    body = publish_parts(text, writer="html", settings_overrides={"warning_stream": errors})["body"]
    assert "system-message" not in body and "System Message" not in body
    assert errors.getvalue() == ""
