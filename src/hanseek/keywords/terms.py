"""Terms: the units that get weighted and blanked, with their spans in the page text.

A term is a content morpheme (noun, verb/adjective stem, foreign word) or a noun compound written
as one word (빗살+무늬+토기 → 빗살무늬토기, 왕위+계승+권 → 왕위계승권). Each occurrence keeps the
span of its surface in the original text, which never includes particles or endings: the blank for
"뗀석기로" covers "뗀석기" and leaves "로".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hanseek.text.analyzer import FOREIGN_TAGS, NOUN_TAGS, PREDICATE_TAGS, KoreanAnalyzer, Morpheme

COMPOUND_TAG = "NNC"
_COMPOUND_START = NOUN_TAGS | {"XPN"}
# Noun-forming suffixes that belong to a compound (왕위계승권, 민주적); the plural 들 does not.
_SUFFIX_EXCLUDE = frozenset({"들"})
_MAX_COMPOUND_PARTS = 6
# Predicates that carry grammar rather than content (사냥을 했다, 있었다, 아니다).
LIGHT_PREDICATES = frozenset({"하", "되", "있", "없", "않", "아니", "이"})
# Bump when extraction changes: stored corpus statistics built with another version are stale.
EXTRACTOR_VERSION = 1


@dataclass(frozen=True, slots=True)
class TermOccurrence:
    """One occurrence of `term` (its dictionary form) at text[start:end] (`surface`)."""

    term: str
    tag: str
    start: int
    end: int
    surface: str
    parts: tuple[str, ...] = field(default=())

    @property
    def is_noun(self) -> bool:
        return self.tag in NOUN_TAGS or self.tag == COMPOUND_TAG

    @property
    def is_predicate(self) -> bool:
        return self.tag in PREDICATE_TAGS

    @property
    def is_foreign(self) -> bool:
        return self.tag in FOREIGN_TAGS


def term_key(form: str, tag: str) -> str:
    """The dictionary form used as the term's identity (stems get 다; Latin is lower-cased)."""
    if tag in PREDICATE_TAGS:
        return form + "다"
    if tag == "SL":
        return form.lower()
    return form


class TermExtractor:
    """Turns text into term occurrences using a `KoreanAnalyzer`."""

    def __init__(self, analyzer: KoreanAnalyzer, *, compounds: bool = True, predicates: bool = True) -> None:
        self.analyzer = analyzer
        self.compounds = compounds
        self.predicates = predicates

    def extract(self, text: str) -> list[TermOccurrence]:
        return self._from_morphemes(text, self.analyzer.morphemes(text))

    def extract_batch(self, texts: Sequence[str]) -> list[list[TermOccurrence]]:
        return [
            self._from_morphemes(t, ms)
            for t, ms in zip(texts, self.analyzer.morphemes_batch(texts), strict=True)
        ]

    def terms(self, text: str) -> list[str]:
        return [o.term for o in self.extract(text)]

    def _from_morphemes(self, text: str, ms: list[Morpheme]) -> list[TermOccurrence]:
        out: list[TermOccurrence] = []
        i = 0
        starts_compound = _COMPOUND_START
        while i < len(ms):
            j = self._compound_end(text, ms, i) if self.compounds and ms[i].tag in starts_compound else i
            if j > i:
                run = ms[i : j + 1]
                start, end = run[0].start, run[-1].end
                out.append(
                    TermOccurrence(
                        term="".join(m.form for m in run),
                        tag=COMPOUND_TAG,
                        start=start,
                        end=end,
                        surface=text[start:end],
                        parts=tuple(m.form for m in run),
                    )
                )
                i = j + 1
                continue
            m = ms[i]
            predicate = self.predicates and m.tag in PREDICATE_TAGS and m.form not in LIGHT_PREDICATES
            if m.tag in NOUN_TAGS or m.tag in FOREIGN_TAGS or predicate:
                out.append(
                    TermOccurrence(
                        term=term_key(m.form, m.tag),
                        tag=m.tag,
                        start=m.start,
                        end=m.end,
                        surface=text[m.start : m.end],
                    )
                )
            i += 1
        return out

    @staticmethod
    def _compound_end(text: str, ms: list[Morpheme], i: int) -> int:
        """Index of the last morpheme of a compound starting at i, or i if there is none.

        Grammar, inside one written word (no gap between spans): XPN* NOUN (NOUN | XSN)*, with at
        least two morphemes and at least one noun."""
        k = i
        while k < len(ms) and ms[k].tag == "XPN":
            k += 1
        if k >= len(ms) or ms[k].tag not in NOUN_TAGS or (k > i and not _touch(text, ms[k - 1], ms[k])):
            return i
        last = k
        while last + 1 < len(ms) and last + 1 - i < _MAX_COMPOUND_PARTS:
            nxt = ms[last + 1]
            if not _touch(text, ms[last], nxt):
                break
            if nxt.tag in NOUN_TAGS or (nxt.tag == "XSN" and nxt.form not in _SUFFIX_EXCLUDE):
                last += 1
                continue
            break
        return last if last > i else i


def _touch(text: str, left: Morpheme, right: Morpheme) -> bool:
    """Whether two morphemes are written as one word: nothing between them in the user's text but
    characters the analyser never saw (a zero-width space, a soft hyphen)."""
    from hanseek.text.normalize import is_dropped

    return right.start == left.end or (
        right.start > left.end and all(is_dropped(c) for c in text[left.end : right.start])
    )


def normalize_term(word: str) -> str:
    """A user-supplied word (dictionary, keyword list) in the form terms are keyed by: normalised
    text, no internal spaces (compounds are keyed without them), Latin lower-cased."""
    from hanseek.text.normalize import normalize

    return "".join(normalize(word).split()).lower()
