"""HTML pieces for a self-contained report: escaped text, tables, embedded PNG pictures, and the
page around them with its inline style sheet (no scripts, no external resources)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence

__all__ = ["document", "figure", "number", "section", "table"]

STYLE = """
:root { --ink: #1d232a; --muted: #5b6673; --rule: #d8dde3; --band: #f4f6f8; --accent: #2864a8; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 64px; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 16px; }
h1 { font-size: 28px; margin: 8px 0 4px; }
h2 { font-size: 22px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--rule); }
h3 { font-size: 17px; margin: 24px 0 6px; color: var(--accent); }
.meta, .note, figcaption { color: var(--muted); font-size: 13px; }
nav { background: var(--band); padding: 8px 14px; border-radius: 6px; font-size: 14px; }
nav a { margin-right: 16px; color: var(--accent); text-decoration: none; }
ul.summary { padding-left: 20px; }
ul.summary li { margin: 4px 0; }
table { border-collapse: collapse; margin: 6px 0 4px; font-size: 13.5px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--rule); text-align: left;
         vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td:first-child { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fafbfc; }
figure { margin: 8px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--rule); }
code, pre { font: 12px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
pre { margin: 4px 0; white-space: pre-wrap; max-width: 420px; }
details summary { cursor: pointer; color: var(--accent); }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 6px;
          border: 1px solid #333; vertical-align: -1px; }
.bar { background: var(--accent); height: 12px; border-radius: 2px; min-width: 1px; }
.bars td { border: none; padding: 2px 10px; }
.bars td:nth-child(2) { width: 520px; }
"""


def number(value: float | None, digits: int = 4) -> str:
    """A number to ``digits`` significant digits (whole numbers below a million in full);
    "∞" for infinity, "–" where missing."""
    if value is None or math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if 10 ** (digits - 1) <= abs(value) < 1e6:  # 1247 mD, not 1.25e+03
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def table(
    head: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    numeric: Sequence[bool] | None = None,
    raw: bool = False,
    cls: str = "",
) -> str:
    """An HTML table. Cells are escaped unless ``raw`` (then they are HTML already);
    ``numeric`` marks the columns aligned right."""
    numeric = numeric or [False] * len(head)
    cell = (lambda text: text) if raw else html.escape
    head_html = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell(c)}</td>' if n else f"<td>{cell(c)}</td>"
            for c, n in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head_html}</tr></thead><tbody>{body}</tbody></table>"


def figure(png: bytes, *, alt: str, caption: str = "") -> str:
    """A PNG embedded as a ``data:`` URI, with its caption."""
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">{cap}</figure>'
    )


def section(ident: str, title: str, body: str, *, level: int = 2) -> str:
    """A ``<section>`` with an id (for the contents' links) and a heading."""
    return (
        f'<section id="{html.escape(ident)}"><h{level}>{html.escape(title)}</h{level}>'
        f"{body}</section>"
    )


def document(title: str, body: str) -> str:
    """The whole page: UTF-8, the inline style sheet, ``body``."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
