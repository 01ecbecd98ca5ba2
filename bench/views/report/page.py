"""The report's HTML text: one self-contained page (inline CSS, relative image links) that opens from disk.

Tables sit in boxes that scroll horizontally when wide; interval cells keep value and interval on one line.
A small inline script records, in ``<body data-...>``, how many images loaded, the script errors, each image's
rendered and natural width (``data-image-sizes``, JSON), how many table boxes stick out of the page and how many
cells wrap onto a second line, so a headless browser can check the page without a server.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }
.table-box { max-width: 100%; overflow-x: auto; margin: 0.5rem 0 1.5rem; border: 1px solid #eee; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; } td.label, th.label { text-align: left; }
.ci { font-size: 0.75em; color: #666; } u { text-decoration-thickness: 2px; }
figure { margin: 1rem 0; } img { max-width: 100%; height: auto; }
.notes { color: #555; font-size: 0.85rem; } pre { background: #f7f7f7; padding: 0.5rem; overflow-x: auto; }
dl.header { display: grid; grid-template-columns: max-content auto; gap: 0.1rem 1rem; font-size: 0.9rem; }
dl.header dt { font-weight: 600; } dl.header dd { margin: 0; }
.pictures { display: flex; flex-wrap: wrap; gap: 0.5rem; } .pictures figure { margin: 0; max-width: 380px; }
"""
_CHECK = """
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
window.addEventListener('load', () => {
  const images = Array.from(document.images);
  const loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  const right = document.body.getBoundingClientRect().right + 1;
  const boxes = Array.from(document.querySelectorAll('.table-box'));
  const overflowing = boxes.filter(b => b.getBoundingClientRect().right > right).length;
  const wrapped = Array.from(document.querySelectorAll('td')).filter(td => {
    const range = document.createRange();
    range.selectNodeContents(td);
    const rects = Array.from(range.getClientRects()).filter(r => r.height > 0).sort((a, b) => a.top - b.top);
    let lines = 0, bottom = -Infinity;
    for (const r of rects) {
      if (r.top >= bottom - 0.5) { lines += 1; bottom = r.bottom; } else { bottom = Math.max(bottom, r.bottom); }
    }
    return lines > 1;
  }).length;
  const sizes = images.map(i => ({src: i.getAttribute('src'), width: i.clientWidth, natural: i.naturalWidth}));
  document.body.dataset.images = images.length;
  document.body.dataset.imagesLoaded = loaded;
  document.body.dataset.imageSizes = JSON.stringify(sizes);
  document.body.dataset.tableBoxes = boxes.length;
  document.body.dataset.overflowing = overflowing;
  document.body.dataset.pageScroll = document.documentElement.scrollWidth > window.innerWidth ? 1 : 0;
  document.body.dataset.wrapped = wrapped;
  document.body.dataset.errors = window.__errors.join(' | ');
});
"""


def html_table(
    table: pd.DataFrame, best: pd.DataFrame | None = None, lo: pd.DataFrame | None = None,
    hi: pd.DataFrame | None = None, links: Mapping[str, str] | None = None,
) -> str:
    """A table in a horizontally scrolling box: index columns are labels (the first linked where ``links`` names
    it), best cells underlined (as in the SAT paper), intervals in small type on the value's line."""
    names = [str(n) for n in table.index.names]
    head = "".join(f'<th class="label">{html.escape(n)}</th>' for n in names)
    columns = (" ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in table.columns)
    head += "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    low = lo.to_numpy() if lo is not None else np.full(table.shape, np.nan)
    high = hi.to_numpy() if hi is not None else np.full(table.shape, np.nan)
    rows = []
    for position, (index, values) in enumerate(zip(table.index, table.to_numpy())):
        labels = index if isinstance(index, tuple) else (index,)
        cells = ""
        for i, v in enumerate(labels):
            text = html.escape(str(v))
            if i == 0 and links and str(v) in links:
                text = f'<a href="{html.escape(links[str(v)])}">{text}</a>'
            cells += f'<td class="label">{text}</td>'
        for column, value in enumerate(values):
            text = html.escape(_text(value))
            if best is not None and bool(best.iat[position, column]):
                text = f"<u>{text}</u>"
            bounds = low[position, column], high[position, column]
            if not isinstance(value, str) and not pd.isna(value) and not pd.isna(bounds[0]):
                text += f' <span class="ci">[{bounds[0]:.2f}, {bounds[1]:.2f}]</span>'
            textual = isinstance(value, str) and not value.lstrip("+-").replace(".", "", 1).isdigit() and value != "-"
            cells += f'<td class="label">{text}</td>' if textual else f"<td>{text}</td>"
        rows.append(f"<tr>{cells}</tr>")
    return f'<div class="table-box"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _text(value) -> str:
    if isinstance(value, str):
        return value
    return "-" if pd.isna(value) else f"{value:.2f}"


def anchor(prefix: str, key: str) -> str:
    """An HTML id for a key (ids may not hold spaces): ``pictures-ct_left-kidney``."""
    return prefix + "-" + "".join(c if c.isalnum() or c in "_.-" else "-" for c in str(key))


def figure(stem: str, caption: str) -> str:
    """An SVG figure with a link to its PNG twin (paths relative to the page)."""
    return (f'<figure><img src="{html.escape(stem)}.svg" alt="{html.escape(caption)}">'
            f'<figcaption>{html.escape(caption)} (<a href="{html.escape(stem)}.png">PNG</a>)</figcaption></figure>')


def picture(path: str, caption: str) -> str:
    """A PNG picture with its caption."""
    return (f'<figure><a href="{html.escape(path)}"><img src="{html.escape(path)}" alt="{html.escape(caption)}"></a>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def header(facts: Mapping[str, str]) -> str:
    """The report's header: a definition list of facts (date, version, commit, settings, ...)."""
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts.items())
    return f'<dl class="header">{items}</dl>'


def page(
    title: str, sections: Sequence[tuple[str, str]], metadata: Mapping[str, Mapping], notes: Sequence[str],
    facts: Mapping[str, str] | None = None,
) -> str:
    """The whole page: header facts, sections of (heading, HTML), notes on coverage and the run metadata."""
    body = "".join(f"<section><h2>{html.escape(h)}</h2>{content}</section>" for h, content in sections)
    meta = "".join(
        f"<h3>{html.escape(name)}</h3><pre>{html.escape(json.dumps(config, indent=2, sort_keys=True, default=str))}"
        "</pre>" for name, config in metadata.items()
    )
    listed = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style><script>{_CHECK}</script></head><body><h1>{html.escape(title)}</h1>"
        f"{header(facts or {})}{body}"
        f'<section><h2>Coverage and notes</h2><ul class="notes">{listed}</ul></section>'
        f"<section><h2>Run metadata</h2>{meta}</section></body></html>\n"
    )
