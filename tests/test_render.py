"""The one Markdown/HTML renderer: every text, cell and attribute is escaped; Markdown and HTML
come from the same blocks; the summary, the predictions and report.html use it."""

from __future__ import annotations

import ast
import html
import html.parser
import re
from pathlib import Path

import pandas as pd

from snntopo import render

REPO = Path(__file__).resolve().parents[1]
EVIL = "<script>alert('x')</script> & \"q\""


class _Collect(html.parser.HTMLParser):
    """Tags and text as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data):
        self.text.append(data)


def _parse(text: str) -> _Collect:
    p = _Collect()
    p.feed(text)
    return p


def test_html_escapes_text_cells_and_attributes(tmp_path):
    df = pd.DataFrame({EVIL: [EVIL, 0.5]})
    blocks = [
        ("h1", EVIL),
        ("p", f"**bold** and `code` {EVIL}"),
        ("ul", [EVIL]),
        ("table", df),
        ("img", tmp_path / "fig's.png"),
    ]
    page = render.html(blocks, EVIL, base=tmp_path)
    parsed = _parse(page)
    assert "script" not in parsed.tags
    assert parsed.tags.count("b") == 1 and parsed.tags.count("code") == 1
    text = "".join(parsed.text)
    # as text, once in each of: title, h1, p, li, th, td
    assert text.count(EVIL) == 6
    assert ("src", "fig's.png") in parsed.attrs and ("alt", "fig's.png") in parsed.attrs


def test_markdown_and_html_come_from_the_same_blocks(tmp_path):
    df = pd.DataFrame({"a": [1.23456, float("nan")], "b|c": ["x|y", "z"]})
    blocks = [("h2", "T"), ("p", "para"), ("table", df), ("img", tmp_path / "f" / "g.png")]

    def fmt(v):
        return "" if isinstance(v, float) and v != v else str(v)

    md = render.markdown(blocks, tmp_path, fmt)
    assert md == (
        "## T\n\npara\n\n| a | b\\|c |\n|---|---|\n| 1.23456 | x\\|y |\n|  | z |\n\n![g](f/g.png)\n"
    )
    page = render.html(blocks, "t", tmp_path, fmt)
    cells = [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", page)]
    assert cells == ["1.23456", "x|y", "", "z"]


def test_every_renderer_of_the_package_is_this_one():
    """No module but snntopo.render builds HTML tables, escapes HTML or writes a page head."""
    offenders = []
    for path in sorted((REPO / "src" / "snntopo").rglob("*.py")):
        if path.name == "render.py":
            continue
        src = path.read_text()
        tree = ast.parse(src)
        imports_html = any(
            (isinstance(n, ast.Import) and any(a.name == "html" for a in n.names))
            or (isinstance(n, ast.ImportFrom) and n.module == "html")
            for n in ast.walk(tree)
        )
        if imports_html or "<table" in src or "<!DOCTYPE" in src.upper() or ".to_html(" in src:
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []
