"""Self-contained HTML pages: one file, the style and the PNG figures inline (base64), so a
page opens anywhere without its folder. The experiment report and the concepts page use it."""

from __future__ import annotations

import base64
import html
from pathlib import Path

CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
    "color:#222}table{border-collapse:collapse;margin:1em 0;font-size:14px}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}"
    "img{max-width:100%}figure{margin:1.5em 0}figcaption{color:#555;font-size:13px}"
)


def html_table(header: list[str], rows: list[list[str]]) -> str:
    """A table of plain text cells (escaped here)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(png: Path, caption: str, alt: str | None = None) -> str:
    """The PNG file inline, with its caption (``alt`` defaults to the caption)."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    alt = caption if alt is None else alt
    return (
        f"<figure><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def page(title: str, parts: list[str]) -> str:
    """A whole HTML document: ``title`` in the head, ``parts`` (HTML) one a line in the body."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )
