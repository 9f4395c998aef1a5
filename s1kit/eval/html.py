"""Reports as documents: a few block types rendered to Markdown (terminals) or to an HTML page.

    doc = [Heading("Evaluation report"), Image("scaling.png", "scaling"),
           Table(["method", "Control %"], [["budget forcing", "100.0"]]), Para(["Control is ", Verdict("holds")])]
    text = to_markdown(doc)             # report.md
    page = to_html(doc)                 # report.html: one file, inline CSS, images relative, works offline
    page = markdown_to_html(text)       # a Markdown report of this module's subset, as a page

Everything is escaped; the page loads nothing from the network and opens from disk (its images are
relative paths beside it). A verdict is a badge (green holds, red does not, grey otherwise).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True)
class Strong:
    text: str


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Verdict:
    """A finding's verdict; ``kind`` is ok / bad / neutral (see :func:`verdict_kind`)."""

    text: str
    kind: str = ""

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", verdict_kind(self.text))


Inline = Union[str, Strong, Code, Verdict]
Cell = Union[Inline, list]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 1


@dataclass(frozen=True)
class Para:
    parts: list = field(default_factory=list)


@dataclass(frozen=True)
class Image:
    src: str
    alt: str = ""


@dataclass(frozen=True)
class Table:
    header: list
    rows: list


Block = Union[Heading, Para, Image, Table]


def verdict_kind(text: str) -> str:
    low = text.lower()
    if low.startswith(("does not", "not ")) or (low.endswith("better") and not low.startswith("s1k")):
        return "bad"
    if low in ("holds", "yes", "pass") or low.startswith("s1k better"):
        return "ok"
    return "neutral"


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def _inline(parts: Cell, style: dict) -> str:
    """Inline parts through ``style``: {type: text -> str} (str for plain text)."""
    parts = parts if isinstance(parts, list) else [parts]
    return "".join(style[type(p)](p) if type(p) in style else style[str](str(p)) for p in parts)


_MD = {Strong: lambda p: f"**{p.text}**", Verdict: lambda p: f"**{p.text}**", Code: lambda p: f"`{p.text}`",
       str: lambda text: text}


def _md_inline(parts: Cell) -> str:
    return _inline(parts, _MD)


def to_markdown(doc: list[Block]) -> str:
    lines: list[str] = []
    for block in doc:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Para):
            lines += [_md_inline(block.parts), ""]
        elif isinstance(block, Image):
            lines += [f"![{block.alt}]({block.src})", ""]
        else:
            lines.append("| " + " | ".join(_md_inline(c) for c in block.header) + " |")
            lines.append("|" + "---|" * len(block.header))
            lines += ["| " + " | ".join(_md_inline(c) for c in row) + " |" for row in block.rows]
            lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;max-width:1100px;
margin:2em auto;padding:0 1.5em;background:#fff}
h1{font-size:1.7em;border-bottom:2px solid #d0d7de;padding-bottom:.3em}
h2{font-size:1.3em;margin-top:1.8em;border-bottom:1px solid #d8dee4;padding-bottom:.2em}
h3{font-size:1.1em;margin-top:1.4em}
table{border-collapse:collapse;margin:.8em 0 1.2em;font-size:.92em}
th,td{border:1px solid #d0d7de;padding:.35em .7em;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
tr:nth-child(even) td{background:#fafbfc}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
figure{margin:1em 0}
img{max-width:100%;height:auto;border:1px solid #eaeef2;margin:.5em 0}
code{font:.9em ui-monospace,SFMono-Regular,Menlo,monospace;background:#f3f4f6;padding:.1em .3em;border-radius:4px}
.badge{display:inline-block;padding:.1em .6em;border-radius:1em;font-weight:600;font-size:.9em;white-space:nowrap}
.badge.ok{background:#dafbe1;color:#116329;border:1px solid #4ac26b}
.badge.bad{background:#ffebe9;color:#a40e26;border:1px solid #ff8182}
.badge.neutral{background:#eaeef2;color:#424a53;border:1px solid #afb8c1}
""".strip()

_NUMERIC = re.compile(r"^[-+]?[\d,]*\.?\d+%?( \[[-+\d., ]+\])?$|^n/a$")


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


_HTML = {Verdict: lambda p: f'<span class="badge {_esc(p.kind)}">{_esc(p.text)}</span>',
         Strong: lambda p: f"<strong>{_esc(p.text)}</strong>", Code: lambda p: f"<code>{_esc(p.text)}</code>",
         str: lambda text: _esc(text)}


def _html_inline(parts: Cell) -> str:
    return _inline(parts, _HTML)


def _numeric_columns(table: Table) -> set[int]:
    """Columns whose every body cell is a number (right-aligned)."""
    cols = set(range(len(table.header)))
    for row in table.rows:
        cols &= {j for j, c in enumerate(row) if isinstance(c, str) and _NUMERIC.match(c.strip())}
    return cols if table.rows else set()


def html_table(table: Table) -> str:
    num = _numeric_columns(table)
    head = "".join(f"<th{' class=num' if j in num else ''}>{_html_inline(c)}</th>" for j, c in enumerate(table.header))
    body = "\n".join("<tr>" + "".join(f"<td{' class=num' if j in num else ''}>{_html_inline(c)}</td>"
                                      for j, c in enumerate(row)) + "</tr>" for row in table.rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def html_block(block: Block) -> str:
    if isinstance(block, Heading):
        level = min(max(block.level, 1), 6)
        return f"<h{level}>{_esc(block.text)}</h{level}>"
    if isinstance(block, Para):
        return f"<p>{_html_inline(block.parts)}</p>"
    if isinstance(block, Image):
        return f'<figure><img src="{_esc(block.src)}" alt="{_esc(block.alt or block.src)}"></figure>'
    return html_table(block)


def to_html(doc: list[Block], title: str | None = None) -> str:
    """One self-contained page (inline CSS, no scripts, no network)."""
    title = title or next((b.text for b in doc if isinstance(b, Heading)), "s1kit report")
    body = "\n".join(html_block(b) for b in doc)
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_esc(title)}</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


# ---------------------------------------------------------------------------------------------
# Markdown (this module's subset) -> blocks
# ---------------------------------------------------------------------------------------------

_INLINE = re.compile(r"\*\*(.+?)\*\*|`([^`]+)`")
_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]+)\)$")


def parse_inline(text: str, verdicts: bool = False) -> list:
    """**x** -> Strong (Verdict in a verdict column), `x` -> Code, the rest text."""
    out: list = []
    pos = 0
    for m in _INLINE.finditer(text):
        if m.start() > pos:
            out.append(text[pos:m.start()])
        out.append(Code(m.group(2)) if m.group(2) is not None else (Verdict if verdicts else Strong)(m.group(1)))
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    if verdicts and out and all(isinstance(p, str) for p in out):
        return [Verdict("".join(out).strip())]
    return out


def _row(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def from_markdown(text: str) -> list[Block]:
    """Blocks of a Markdown text made of headings, paragraphs, images and pipe tables; a table
    column named 'verdict' becomes badges."""
    doc: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line:
            continue
        if line.startswith("|"):
            rows = [_row(line)]
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_row(lines[i]))
                i += 1
            rows = [r for r in rows if not set("".join(r)) <= set("-: ")]
            verdict_col = {j for j, h in enumerate(rows[0]) if h.lower() == "verdict"}
            cells = [[parse_inline(c, j in verdict_col) for j, c in enumerate(r)] for r in rows[1:]]
            doc.append(Table([parse_inline(h) for h in rows[0]], [[c[0] if len(c) == 1 and isinstance(c[0], str)
                                                                   else c for c in r] for r in cells]))
        elif (m := re.match(r"^(#{1,6}) (.*)$", line)):
            doc.append(Heading(m.group(2).strip(), len(m.group(1))))
        elif (m := _IMAGE.match(line)):
            doc.append(Image(m.group(2), m.group(1)))
        else:
            doc.append(Para(parse_inline(line)))
    return doc


def markdown_to_html(text: str, title: str | None = None) -> str:
    return to_html(from_markdown(text), title)
