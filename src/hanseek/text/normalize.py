"""Text normalisation that remembers where every output character came from.

Kiwi works best on clean NFC text, but callers (blanking, highlighting) need offsets into the text
the user gave us. `normalize_with_map` returns the cleaned text plus, for each cleaned character,
the span of the original text it was produced from, so analysis results can be mapped back.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Horizontal white space (incl. NBSP, ideographic space, tabs); newlines are handled separately
# because paragraph breaks carry meaning on a study page.
_HSPACE = {"\t", "\v", "\f", " ", "\u00a0", "\u1680", "\u202f", "\u205f", "\u3000"} | {
    chr(c) for c in range(0x2000, 0x200B)
}
# Invisible format characters that only confuse the morphological analyser.
_DROP_FORMAT = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"}
# Anything the slow path would change; text without these (and already NFC) is returned as is.
_NEEDS_WORK = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u00a0\u00ad\u1680\u2000-\u200d\u2028-\u202f\u205f\u2060"
    "\u3000\ud800-\udfff\ufeff\uff01-\uff5e]|  | \n|\n |\n\n\n"
)
_LINE_BREAKS = {"\r", "\u2028", "\u2029", "\x85"}


@dataclass(frozen=True)
class NormalizedText:
    """`text` is the cleaned text; `starts[i]`/`ends[i]` give the original span of `text[i]`."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    identity: bool

    def span(self, start: int, length: int) -> tuple[int, int]:
        """Original (start, end) of the cleaned span [start, start+length)."""
        if self.identity:
            return start, start + length
        if length <= 0:
            pos = self.starts[start] if start < len(self.starts) else (self.ends[-1] if self.ends else 0)
            return pos, pos
        return self.starts[start], self.ends[start + length - 1]


def is_dropped(ch: str) -> bool:
    """Whether normalisation removes `ch` (an invisible format or control character)."""
    # Lone surrogates (Cs) reach Python from JSON escapes or surrogateescape decoding; Kiwi cannot
    # encode them, so they are dropped like control characters.
    category = unicodedata.category(ch)
    return ch in _DROP_FORMAT or category == "Cs" or (category == "Cc" and ch not in "\n\t\r\v\f")


def _fold_fullwidth(ch: str) -> str:
    # Full-width Latin/digits/punctuation (common in Korean documents and OCR) become ASCII; Kiwi
    # otherwise tags them SW instead of SL/SN.
    code = ord(ch)
    if 0xFF01 <= code <= 0xFF5E:
        return chr(code - 0xFEE0)
    return ch


def _nfc_segments(text: str) -> list[tuple[int, int]]:
    """Split into segments that NFC-normalise independently (a starter plus what composes onto it)."""
    segments: list[tuple[int, int]] = []
    seg_start = 0
    for i in range(1, len(text) + 1):
        if i == len(text):
            segments.append((seg_start, i))
            break
        ch = text[i]
        if unicodedata.combining(ch) == 0:
            seg = text[seg_start:i]
            nfc_seg = unicodedata.normalize("NFC", seg)
            # A starter that composes with what precedes it (Hangul conjoining vowels/finals,
            # a few Latin pairs) must stay in the same segment.
            if unicodedata.normalize("NFC", seg + ch) == nfc_seg + ch:
                segments.append((seg_start, i))
                seg_start = i
    return segments


def normalize_with_map(text: str) -> NormalizedText:
    """NFC, full-width ASCII folded, control/zero-width characters dropped, runs of horizontal
    white space collapsed to one space, CR/CRLF to LF, at most one blank line, outer white space
    stripped — with each output character mapped to its original span."""
    if unicodedata.is_normalized("NFC", text) and not _NEEDS_WORK.search(text) and text == text.strip():
        return NormalizedText(text, (), (), identity=True)

    # 1. Character clean-up; each kept character remembers its original span.
    chars: list[str] = []
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\r" and text[i + 1 : i + 2] == "\n":
            chars.append("\n")
            spans.append((i, i + 2))
            i += 2
            continue
        if ch in _LINE_BREAKS:
            ch = "\n"
        elif is_dropped(ch):
            i += 1
            continue
        elif ch in _HSPACE:
            ch = " "
        else:
            ch = _fold_fullwidth(ch)
        chars.append(ch)
        spans.append((i, i + 1))
        i += 1
    cleaned = "".join(chars)

    # 2. NFC per independent segment, so composed characters map to all the code points they replace.
    composed: list[tuple[str, int, int]] = []
    for seg_start, seg_end in _nfc_segments(cleaned):
        o_start, o_end = spans[seg_start][0], spans[seg_end - 1][1]
        nfc = unicodedata.normalize("NFC", cleaned[seg_start:seg_end])
        composed.extend((ch, o_start, o_end) for ch in nfc)

    # 3. White space: one space between words, no space around line breaks, at most one blank line.
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for ch, o_start, o_end in composed:
        if ch == " " and (not out or out[-1] in " \n"):
            if out:
                ends[-1] = o_end
            continue
        if ch == "\n":
            if out and out[-1] == " ":
                out.pop()
                ends.pop()
                o_start = starts.pop()
            if len(out) >= 2 and out[-1] == "\n" and out[-2] == "\n":
                ends[-1] = o_end
                continue
        out.append(ch)
        starts.append(o_start)
        ends.append(o_end)

    lo, hi = 0, len(out)
    while lo < hi and out[lo] in " \n":
        lo += 1
    while hi > lo and out[hi - 1] in " \n":
        hi -= 1
    return NormalizedText("".join(out[lo:hi]), tuple(starts[lo:hi]), tuple(ends[lo:hi]), identity=False)


def normalize(text: str) -> str:
    """The cleaned text only (see `normalize_with_map`)."""
    return normalize_with_map(text).text
