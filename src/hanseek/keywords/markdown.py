"""Markdown to plain study text, optionally remembering which spans were **bold**.

Enough Markdown for notes and textbooks: headings, lists, tables, links, inline HTML, code fences,
emphasis. Navigation (tables of contents made of in-page links), code blocks and HTML comments carry
no study content and are dropped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_FENCE = re.compile(r"^```.*?^```[^\n]*$", re.S | re.M)
# Patterns that can fail after scanning far (a comment never closed, "[" with no "]" after it, a TOC
# bullet whose "(#" is never closed) also match what a failed attempt scanned, as text kept as it is
# (the group that marks a real match is then empty): every later start inside that stretch would
# fail the same way, so skipping it changes nothing but the time. Before session 18 each start
# scanned to the end again: quadratic (50,000 spaces or 100,000 "[" took many seconds of one core,
# holding the interpreter lock).
_COMMENT = re.compile(r"<!--(?:.*?(-->)|.*)", re.S)
# Line patterns use [ \t], never \s: \s also matches newlines, so under re.M a run of blank lines
# gave the engine every way of splitting it between two \s* groups (cubic time: a 2 KB body of
# blank lines took 26 s), and a match could swallow the blank lines around it.
# A TOC entry: "- [title](#anchor)". Only the line's last "](#" can start the anchor (after any
# earlier one there is a "](#" before the end of the line, where the closing ")" must stand), hence
# the atomic group. The anchor may run over line ends, as it always could; when it is not closed
# as an entry (no ")", or text after it), the match keeps the whole lines it scanned: their own
# entries would all have run into the same ")".
_TOC_LINE = re.compile(r"^[ \t]*[-*+][ \t]*\[(?>.*\]\(#)(?>(?:[^)\n]*\n)*)(?:[^)\n]*(\)[ \t]*$))?", re.M)
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
# ![alt](src) and [text](href): group 2 (the closing ")") is set only for a real one.
_IMAGE = re.compile(r"!\[([^\]]*+)(?:\]\([^)]*+(\))?)?")
_LINK = re.compile(r"\[([^\]]*+)(?:\]\([^)]*+(\))?)?")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]*", re.M)
_BULLET = re.compile(r"^[ \t]*(?:[-*+]|\d+[.)])[ \t]+", re.M)
_QUOTE = re.compile(r"^[ \t]*>[ \t]?", re.M)
# No two [ \t]* side by side (as around an optional "|" until session 18): a line of n blanks had
# n ways to be split between them at every try, quadratic (50,000 spaces took 42 s).
_TABLE_RULE = re.compile(r"^[ \t]*(?:\|[ \t]*)?:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*(?:\|[ \t]*)?$", re.M)
_STRIKE = re.compile(r"~~(.*?)~~", re.S)
_ITALIC = re.compile(r"(?<![\w*])_([^_\n]+)_(?![\w*])")
_CODE = re.compile(r"`([^`\n]*)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)
# What html.unescape takes for a decimal character reference ("&#" digits, ";" optional), when long.
_LONG_DECIMAL_REF = re.compile(r"&#([0-9]{8,})(;?)")
_SECTION_HEADING = re.compile(r"\s{0,3}#{1,3}\s")


@dataclass(frozen=True)
class PlainText:
    text: str
    bold: tuple[tuple[int, int], ...]  # spans of text that were **bold**


def _drop_if(group: int) -> Callable[[re.Match[str]], str]:
    """Replacement: nothing where `group` matched (a real match), else the text as it was."""
    return lambda m: "" if m.group(group) is not None else m.group(0)


def _unwrap(m: re.Match[str]) -> str:
    """A link or image becomes its text; a stretch that only looked like one stays as it was."""
    return m.group(1) if m.group(2) is not None else m.group(0)


def _short_decimal_ref(m: re.Match[str]) -> str:
    """A decimal character reference of 8 or more digits, as html.unescape can read it: U+FFFD when
    its value is past U+10FFFF (what html.unescape gives), else the same reference without its
    leading zeros. html.unescape converts the digits with int(), which refuses more than 4,300 of
    them (ValueError: a 500 until session 18)."""
    digits = m.group(1).lstrip("0")
    if len(digits) > 7:  # >= 10,000,000 > 0x10FFFF
        return "\ufffd"
    return f"&#{digits or '0'}{m.group(2)}"


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
    text = _COMMENT.sub(_drop_if(1), text)
    text = _TOC_LINE.sub(_drop_if(1), text)
    text = _TABLE_RULE.sub("", text)
    text = "\n".join(_table_row(line) for line in text.split("\n"))
    text = _BR.sub("\n", text)
    text = _TAG.sub(" ", text)
    text = _IMAGE.sub(_unwrap, text)
    text = _LINK.sub(_unwrap, text)
    text = _HEADING.sub("", text)
    text = _BULLET.sub("", text)
    text = _QUOTE.sub("", text)
    text = _STRIKE.sub(r"\1", text)
    text = _ITALIC.sub(r"\1", text)
    text = _CODE.sub(r"\1", text)
    text = html.unescape(_LONG_DECIMAL_REF.sub(_short_decimal_ref, text))
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
    return list(iter_sections(md))


def iter_sections(md: str) -> Iterator[str]:
    """`split_sections` one section at a time, so that a caller with a limit can stop early."""
    chunk: list[str] = []
    in_fence = False
    for line in md.replace("\r\n", "\n").split("\n"):
        if line.startswith("```"):
            in_fence = not in_fence
        if not in_fence and _SECTION_HEADING.match(line) and any(s.strip() for s in chunk):
            yield "\n".join(chunk).strip()
            chunk = []
        chunk.append(line)
    if any(s.strip() for s in chunk):
        yield "\n".join(chunk).strip()
