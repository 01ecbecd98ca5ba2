"""The report's HTML text: one self-contained page (inline CSS, relative image links) that opens from disk.

A small inline script records, in ``<body data-images data-images-loaded data-errors>``, how many figures
loaded and which script errors occurred, so a headless browser can check the page without a server.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence

import pandas as pd

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: right; }
th { background: #f3f3f3; } td.label, th.label { text-align: left; }
u { text-decoration-thickness: 2px; } figure { margin: 1rem 0; } img { max-width: 100%; }
.notes { color: #555; font-size: 0.85rem; } pre { background: #f7f7f7; padding: 0.5rem; overflow-x: auto; }
"""
_CHECK = """
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)));
window.addEventListener('load', () => {
  const images = Array.from(document.images);
  const loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.images = images.length;
  document.body.dataset.imagesLoaded = loaded;
  document.body.dataset.errors = window.__errors.join(' | ');
});
"""


def html_table(table: pd.DataFrame, best: pd.DataFrame | None = None) -> str:
    """A table whose index columns are labels and whose best cells are underlined (as in the SAT paper)."""
    names = [str(n) for n in table.index.names]
    head = "".join(f'<th class="label">{html.escape(n)}</th>' for n in names)
    columns = (" ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in table.columns)
    head += "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = []
    for position, (index, values) in enumerate(zip(table.index, table.to_numpy())):
        labels = index if isinstance(index, tuple) else (index,)
        cells = "".join(f'<td class="label">{html.escape(str(v))}</td>' for v in labels)
        for column, value in enumerate(values):
            text = html.escape(_text(value))
            marked = best is not None and bool(best.iat[position, column])
            cells += f"<td>{'<u>' + text + '</u>' if marked else text}</td>"
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _text(value) -> str:
    if isinstance(value, str):
        return value
    return "-" if pd.isna(value) else f"{value:.2f}"


def figure(stem: str, caption: str) -> str:
    """An SVG figure with a link to its PNG twin (paths relative to the page)."""
    return (f'<figure><img src="{html.escape(stem)}.svg" alt="{html.escape(caption)}">'
            f'<figcaption>{html.escape(caption)} (<a href="{html.escape(stem)}.png">PNG</a>)</figcaption></figure>')


def page(title: str, sections: Sequence[tuple[str, str]], metadata: Mapping[str, Mapping], notes: Sequence[str]) -> str:
    """The whole page: sections of (heading, HTML), run metadata as JSON, and notes on coverage."""
    body = "".join(f"<section><h2>{html.escape(h)}</h2>{content}</section>" for h, content in sections)
    meta = "".join(
        f"<h3>{html.escape(name)}</h3><pre>{html.escape(json.dumps(config, indent=2, sort_keys=True, default=str))}"
        "</pre>" for name, config in metadata.items()
    )
    listed = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style><script>{_CHECK}</script></head><body><h1>{html.escape(title)}</h1>{body}"
        f'<section><h2>Coverage and notes</h2><ul class="notes">{listed}</ul></section>'
        f"<section><h2>Run metadata</h2>{meta}</section></body></html>\n"
    )
