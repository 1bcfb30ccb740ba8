"""The one Markdown/HTML renderer: the analysis summary (``summary.md`` / ``summary.html``), the
predictions' report section (``predictions.md`` / ``predictions.html``) and ``report.html`` all
render through it.

A document is a list of blocks ``(kind, value)``: ``("h1", text)``, ``("h2", text)``,
``("p", text)``, ``("ul", [text, ...])``, ``("table", DataFrame)`` and ``("img", path)``. Text is
plain with two inline marks, ``**bold**`` and ```code```; :func:`html` escapes every text, cell
and attribute, so a metric name, a path or a user's value can never become markup. Tables are
formatted cell by cell with the caller's ``fmt`` (the summary rounds to three decimals, the
predictions to four significant digits). Torch- and pandas-free: a table is anything with
``columns`` and ``itertuples(index=False)``.
"""

from __future__ import annotations

import html as _html
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

Block = tuple[str, Any]
Fmt = Callable[[Any], str]

#: the page style of the summary and the predictions (report.html passes its own)
STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto;line-height:1.4}"
    # a table wider than the page scrolls inside its own box instead of running off the page
    "table{border-collapse:collapse;font-size:85%;margin:1em 0;display:block;max-width:100%;"
    "overflow-x:auto}"
    "th{vertical-align:bottom}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "img{max-width:100%}"
)


def escape(text: Any) -> str:
    """``text`` as HTML text or a quoted attribute value (``&``, ``<``, ``>``, both quotes)."""
    return _html.escape(str(text), quote=True)


def inline(text: str) -> str:
    """Escape, then turn ``**bold**`` and ```code``` into tags."""
    t = escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


def _rows(df: Any, fmt: Fmt) -> list[list[str]]:
    return [[fmt(v) for v in r] for r in df.itertuples(index=False)]


def md_table(df: Any, fmt: Fmt = str) -> str:
    """A Markdown pipe table (``|`` inside a cell escaped)."""

    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    head = "| " + " | ".join(cell(str(c)) for c in df.columns) + " |"
    sep = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(cell(c) for c in r) + " |" for r in _rows(df, fmt)]
    return "\n".join([head, sep, *rows])


def html_table(df: Any, fmt: Fmt = str, cls: str | None = None) -> str:
    """An HTML table with a header row; every cell escaped, then its inline marks (a verdict
    cell's ``**helps**``) turned into tags as in running text."""
    head = "".join(f"<th>{escape(c)}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in _rows(df, fmt)
    )
    attr = f' class="{escape(cls)}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def key_value_table(rows: Iterable[tuple[Any, Any]], cls: str | None = None) -> str:
    """A two-column HTML table, one ``(label, value)`` row each (label as a row header); both
    escaped."""
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    attr = f' class="{escape(cls)}"' if cls else ""
    return f"<table{attr}>{body}</table>"


def _rel(path: str | Path, base: str | Path | None) -> str:
    p = Path(path)
    return (p.relative_to(base) if base is not None else p).as_posix()


def markdown(blocks: Iterable[Block], base: str | Path | None = None, fmt: Fmt = str) -> str:
    """The document as Markdown (images linked relative to ``base``)."""
    out = []
    for kind, x in blocks:
        if kind == "h1":
            out.append(f"# {x}")
        elif kind == "h2":
            out.append(f"## {x}")
        elif kind == "p":
            out.append(x)
        elif kind == "ul":
            out.append("\n".join(f"- {i}" for i in x))
        elif kind == "table":
            out.append(md_table(x, fmt))
        elif kind == "img":
            rel = _rel(x, base)
            out.append(f"![{Path(rel).stem}]({rel})")
        else:
            raise ValueError(f"render: unknown block kind {kind!r}")
    return "\n\n".join(out) + "\n"


def html_body(blocks: Iterable[Block], base: str | Path | None = None, fmt: Fmt = str) -> str:
    """The document as the HTML of a page body (images linked relative to ``base``)."""
    parts = []
    for kind, x in blocks:
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{inline(x)}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{inline(x)}</p>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in x) + "</ul>")
        elif kind == "table":
            parts.append(html_table(x, fmt))
        elif kind == "img":
            rel = escape(_rel(x, base))
            parts.append(f"<p><img src='{rel}' alt='{rel}'></p>")
        else:
            raise ValueError(f"render: unknown block kind {kind!r}")
    return "\n".join(parts)


def page(title: str, body: str | Sequence[str], style: str = STYLE) -> str:
    """A whole HTML page around ``body`` (already HTML)."""
    text = body if isinstance(body, str) else "\n".join(body)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{style}</style></head><body>\n{text}\n</body></html>\n"
    )


def html(
    blocks: Iterable[Block],
    title: str,
    base: str | Path | None = None,
    fmt: Fmt = str,
    style: str = STYLE,
) -> str:
    """The document as a whole HTML page."""
    return page(title, html_body(blocks, base, fmt), style)
