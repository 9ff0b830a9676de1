"""The report's document model: a `Document` is a title and a list of blocks (headings, text,
tables, figures, GIF galleries, collapsible details, code, bullet lists), built once and rendered
twice:

* `to_html(doc)` — one self-contained page: figures and GIFs as base64 `data:` URIs, the CSS
  inline, no script, font or link that leaves the file (`<link rel="icon" href="data:,">` stops
  the favicon request), so it opens offline, mails as one file and renders the same anywhere;
* `to_markdown(doc)` — the same content, its figures referenced as files under `figures/`
  (`assets(doc)` lists them, by file name, for the writer).

All text in a block is plain text, escaped by the renderers: a claim containing markup shows as
text in both formats, a `|` cannot break a Markdown table, a code fence in a config cannot close
the fence around it. A figure without an image renders as a "No data for …" line saying what was
missing.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2  # 1 is the title's level; sections are 2, their parts 3


@dataclass(frozen=True)
class Text:
    """A paragraph. `style`: "" (plain), "lede" (the study's description), "meta" (the line
    under the title) or "nodata" (what a section lacks; set off in both formats)."""

    text: str
    style: str = ""


@dataclass(frozen=True)
class Cell:
    """A table cell with more than text: `css` is its HTML class (e.g. the verdict's colour),
    `stress` how Markdown marks it ("italic" or "bold"), `detail` a smaller second line (in
    parentheses in Markdown)."""

    text: str
    css: str = ""
    stress: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Table:
    """Rows of cells under `columns`; the columns named in `numeric` are right-aligned."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str | Cell, ...], ...]
    numeric: tuple[str, ...] = ()


@dataclass(frozen=True)
class Figure:
    """A PNG figure, written to `figures/<stem>.png` beside the Markdown; `png` is None when there
    was nothing to draw, and `missing` says what was missing."""

    stem: str
    title: str
    caption: str
    png: bytes | None
    missing: str = ""

    @property
    def file(self) -> str:
        return f"{self.stem}.png"


@dataclass(frozen=True)
class GalleryItem:
    """One animated GIF: `file` is its name under `figures/`; `gif` is None when it could not be
    read, and `missing` says why."""

    caption: str
    alt: str
    file: str
    gif: bytes | None
    missing: str = ""


@dataclass(frozen=True)
class Gallery:
    """GIFs side by side (one process's rollouts)."""

    items: tuple[GalleryItem, ...]


@dataclass(frozen=True)
class Details:
    """Blocks behind a summary line: collapsed in HTML, the summary in bold in Markdown."""

    summary: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Code:
    text: str
    language: str = ""


@dataclass(frozen=True)
class Bullets:
    """A bullet list of (label, text) items, the label in bold; `style` is the list's HTML class."""

    items: tuple[tuple[str, str], ...]
    style: str = ""


Block = Heading | Text | Table | Figure | Gallery | Details | Code | Bullets


@dataclass(frozen=True)
class Document:
    title: str
    blocks: tuple[Block, ...]


def safe_name(text: str) -> str:
    """`text` as a file name under figures/: letters, digits, `.`, `_` and `-` only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:80] or "unit"


def _walk(blocks: Sequence[Block]) -> Iterator[Block]:
    for b in blocks:
        yield b
        if isinstance(b, Details):
            yield from _walk(b.blocks)


def assets(doc: Document) -> dict[str, bytes]:
    """The files the Markdown references under figures/, by file name (figures without an image
    and unreadable GIFs have none). Two different files under one name raise ValueError."""
    out: dict[str, bytes] = {}
    for b in _walk(doc.blocks):
        if isinstance(b, Figure):
            files = [(b.file, b.png)]
        elif isinstance(b, Gallery):
            files = [(i.file, i.gif) for i in b.items]
        else:
            continue
        for name, data in files:
            if data is None:
                continue
            if out.get(name, data) != data:
                raise ValueError(f"two figures of the report are both named {name!r}; give them distinct stems")
            out[name] = data
    return out


# ---------------------------------------------------------------------------------------------
# HTML

CSS = """
body { font: 15px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f;
       max-width: 1180px; margin: 2em auto; padding: 0 1.2em; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.lede { color: #444; } .meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #d8d8d8; padding: 0.35em 0.55em; vertical-align: top; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.seed { color: #555; font-style: italic; } .notes { color: #555; font-size: 0.9em; } .means { color: #666; font-size: 0.88em; margin-top: 0.2em; }
.verdict { font-weight: 600; color: #fff; text-align: center; white-space: nowrap; }
.v-supported { background: #2e8b57; } .v-refuted { background: #c0392b; }
.v-inconclusive { background: #8c8c8c; } .v-not-run { background: #e6e6e6; color: #6b6b6b; } .v-other { background: #5a5a5a; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; max-width: 60em; }
.nodata { color: #8a6d3b; background: #fcf8e3; padding: 0.4em 0.7em; display: inline-block; }
.rollouts { display: flex; flex-wrap: wrap; gap: 1.2em; } .rollouts figure { margin: 0; }
.rollouts img { image-rendering: pixelated; width: auto; min-width: 160px; }
pre { background: #f6f8fa; padding: 0.7em; overflow-x: auto; font-size: 0.85em; }
details { margin: 0.4em 0; } summary { cursor: pointer; }
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _class(*names: str) -> str:
    names = " ".join(n for n in names if n)
    return f' class="{_e(names)}"' if names else ""


def _html_cell(cell: str | Cell, numeric: bool) -> str:
    cell = cell if isinstance(cell, Cell) else Cell(cell)
    detail = f'<div class="means">{_e(cell.detail)}</div>' if cell.detail else ""
    return f"<td{_class('num' if numeric else '', cell.css)}>{_e(cell.text)}{detail}</td>"


def _html_block(b: Block) -> str:
    if isinstance(b, Heading):
        return f"<h{b.level}>{_e(b.text)}</h{b.level}>"
    if isinstance(b, Text):
        return f"<p{_class(b.style)}>{_e(b.text)}</p>"
    if isinstance(b, Table):
        numeric = [c in b.numeric for c in b.columns]
        head = "".join(f"<th>{_e(c)}</th>" for c in b.columns)
        body = "\n".join("<tr>" + "".join(_html_cell(c, n) for c, n in zip(row, numeric)) + "</tr>" for row in b.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"
    if isinstance(b, Figure):
        if b.png is None:
            return f'<p class="nodata">No data for “{_e(b.title)}”: {_e(b.missing)}.</p>'
        return f'<figure><img src="{_data_uri(b.png, "image/png")}" alt="{_e(b.title)}"><figcaption>{_e(b.caption)}</figcaption></figure>'
    if isinstance(b, Gallery):
        items = [
            f'<figure><img src="{_data_uri(i.gif, "image/gif")}" alt="{_e(i.alt)}"><figcaption>{_e(i.caption)}</figcaption></figure>'
            if i.gif is not None
            else f'<p class="nodata">{_e(i.caption)}: {_e(i.missing)}</p>'
            for i in b.items
        ]
        return '<div class="rollouts">' + "\n".join(items) + "</div>"
    if isinstance(b, Details):
        return f"<details><summary>{_e(b.summary)}</summary>" + "\n".join(_html_block(c) for c in b.blocks) + "</details>"
    if isinstance(b, Code):
        return f"<pre>{_e(b.text)}</pre>"
    if isinstance(b, Bullets):
        return f"<ul{_class(b.style)}>" + "".join(f"<li><b>{_e(label)}</b>: {_e(text)}</li>" for label, text in b.items) + "</ul>"
    raise TypeError(f"not a report block: {b!r}")


def to_html(doc: Document) -> str:
    """The document as one self-contained HTML page."""
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{_e(doc.title)}</title><style>{CSS}</style></head><body>\n<h1>{_e(doc.title)}</h1>"
    )
    return "\n".join([head, *(_html_block(b) for b in doc.blocks), "</body></html>"]) + "\n"


# ---------------------------------------------------------------------------------------------
# Markdown


def _m(x: Any) -> str:
    """Text made inert in Markdown: no raw HTML."""
    return html.escape("" if x is None else str(x), quote=False)


def _cell(x: Any) -> str:
    """Text made inert in a Markdown table cell (or link text): no raw HTML, no `|`, one line."""
    return _m(x).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _fence(text: str, lang: str = "") -> str:
    """`text` in a code fence longer than any run of backticks inside it."""
    ticks = "`" * max(3, 1 + max((len(t) for t in re.findall(r"`+", text)), default=0))
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _aside(text: str) -> str:
    """A line set off in italics (a `*` inside is escaped, so it cannot end the emphasis)."""
    return "_" + _m(text).replace("*", "\\*") + "_"


def _md_cell(cell: str | Cell) -> str:
    cell = cell if isinstance(cell, Cell) else Cell(cell)
    text = _cell(cell.text)
    if text.strip() and cell.stress == "italic":
        text = f"*{text}*"
    elif text.strip() and cell.stress == "bold":
        text = f"**{text}**"
    return text + (f" ({_cell(cell.detail)})" if cell.detail else "")


def _md_block(b: Block, figures: str) -> str:
    if isinstance(b, Heading):
        return f"{'#' * b.level} {_m(b.text)}"
    if isinstance(b, Text):
        return _aside(b.text) if b.style == "nodata" else _m(b.text)
    if isinstance(b, Table):
        lines = [
            "| " + " | ".join(_cell(c) for c in b.columns) + " |",
            "|" + "|".join("---:" if c in b.numeric else "---" for c in b.columns) + "|",
        ]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
        return "\n".join(lines)
    if isinstance(b, Figure):
        if b.png is None:
            return _aside(f"No data for “{b.title}”: {b.missing}.")
        return f"![{_cell(b.title)}]({figures}/{b.file})\n\n{_m(b.caption)}"
    if isinstance(b, Gallery):
        return "\n".join(
            f"- [{_cell(i.caption)}]({figures}/{i.file}): ![{_cell(i.alt)}]({figures}/{i.file})"
            if i.gif is not None
            else f"- {_m(i.caption)}: {_m(i.missing)}"
            for i in b.items
        )
    if isinstance(b, Details):
        return "\n\n".join([f"**{_m(b.summary)}**", *(_md_block(c, figures) for c in b.blocks)])
    if isinstance(b, Code):
        return _fence(b.text, b.language)
    if isinstance(b, Bullets):
        return "\n".join(f"- **{_m(label)}**: {_m(text)}" for label, text in b.items)
    raise TypeError(f"not a report block: {b!r}")


def to_markdown(doc: Document, figures: str = "figures") -> str:
    """The document in Markdown, its figures and GIFs referenced under the relative directory
    `figures` (where `assets(doc)` are to be written)."""
    return "\n\n".join([f"# {_m(doc.title)}", *(_md_block(b, figures) for b in doc.blocks)]) + "\n"


__all__ = [
    "Block",
    "Bullets",
    "Cell",
    "Code",
    "Details",
    "Document",
    "Figure",
    "Gallery",
    "GalleryItem",
    "Heading",
    "Table",
    "Text",
    "assets",
    "safe_name",
    "to_html",
    "to_markdown",
]
