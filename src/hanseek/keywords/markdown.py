"""Markdown to plain study text, optionally remembering which spans were **bold**.

Enough Markdown for notes and textbooks: headings, lists, tables, links, inline HTML, code fences,
emphasis. Navigation (tables of contents made of in-page links), code blocks and HTML comments carry
no study content and are dropped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

_FENCE = re.compile(r"^```.*?^```[^\n]*$", re.S | re.M)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
# Line patterns use [ \t], never \s: \s also matches newlines, so under re.M a run of blank lines
# gave the engine every way of splitting it between two \s* groups (cubic time: a 2 KB body of
# blank lines took 26 s), and a match could swallow the blank lines around it.
_TOC_LINE = re.compile(r"^[ \t]*[-*+][ \t]*\[.*\]\(#[^)]*\)[ \t]*$", re.M)
_BR = re.compile(r"<br\s*/?>", re.I)
# HTML that notes carry (tables, line breaks, emphasis): known tag names with well-formed attributes
# only, so that text such as "a<b 이면 b>a" is not taken for a tag and deleted.
_TAG = re.compile(
    r"</?(?:a|abbr|b|big|blockquote|br|center|code|col|colgroup|dd|del|details|div|dl|dt|em|font|"
    r"h[1-6]|hr|i|img|ins|kbd|li|mark|ol|p|pre|q|s|small|span|strike|strong|sub|summary|sup|table|"
    r"tbody|td|tfoot|th|thead|tr|tt|u|ul)"
    r"""(?:\s+[a-zA-Z_:][-a-zA-Z0-9_:.]*(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*\s*/?>""",
    re.I,
)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]*", re.M)
_BULLET = re.compile(r"^[ \t]*(?:[-*+]|\d+[.)])[ \t]+", re.M)
_QUOTE = re.compile(r"^[ \t]*>[ \t]?", re.M)
_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$", re.M)
_STRIKE = re.compile(r"~~(.*?)~~", re.S)
_ITALIC = re.compile(r"(?<![\w*])_([^_\n]+)_(?![\w*])")
_CODE = re.compile(r"`([^`\n]*)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)


@dataclass(frozen=True)
class PlainText:
    text: str
    bold: tuple[tuple[int, int], ...]  # spans of text that were **bold**


def _table_row(line: str) -> str:
    if "|" not in line:
        return line
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return " / ".join(c for c in cells if c)


def markdown_to_text(md: str, *, keep_bold: bool = False) -> PlainText:
    """Plain text of `md`. With `keep_bold`, the `**` markers are removed and their spans kept;
    otherwise bold is simply unwrapped."""
    text = md.replace("\r\n", "\n")
    text = _FENCE.sub("", text)
    text = _COMMENT.sub("", text)
    text = _TOC_LINE.sub("", text)
    text = _TABLE_RULE.sub("", text)
    text = "\n".join(_table_row(line) for line in text.split("\n"))
    text = _BR.sub("\n", text)
    text = _TAG.sub(" ", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _HEADING.sub("", text)
    text = _BULLET.sub("", text)
    text = _QUOTE.sub("", text)
    text = _STRIKE.sub(r"\1", text)
    text = _ITALIC.sub(r"\1", text)
    text = _CODE.sub(r"\1", text)
    text = html.unescape(text)
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    text = re.sub(r" ?\n ?", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    if not keep_bold:
        return PlainText(_BOLD.sub(r"\1", text), ())
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    length = 0
    for m in _BOLD.finditer(text):
        before = text[pos : m.start()]
        out.append(before)
        length += len(before)
        inner = m.group(1)
        spans.append((length, length + len(inner)))
        out.append(inner)
        length += len(inner)
        pos = m.end()
    out.append(text[pos:])
    return PlainText("".join(out), tuple(spans))


def split_sections(md: str) -> list[str]:
    """Split Markdown at headings (#, ##, ###); each chunk keeps its heading line."""
    chunks: list[list[str]] = [[]]
    in_fence = False
    for line in md.replace("\r\n", "\n").split("\n"):
        if line.startswith("```"):
            in_fence = not in_fence
        if not in_fence and re.match(r"^\s{0,3}#{1,3}\s", line) and any(s.strip() for s in chunks[-1]):
            chunks.append([])
        chunks[-1].append(line)
    return ["\n".join(c).strip() for c in chunks if any(s.strip() for s in c)]
