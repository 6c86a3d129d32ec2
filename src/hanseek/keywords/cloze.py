"""Blanks (빈칸): turn a page and its word weights into a numbered cloze with an answer key.

Only term surfaces are blanked (never particles or endings, which stay in the text), the choice
depends only on the weights and positions (deterministic), and each word is blanked once unless
duplicates are asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from hanseek.keywords.scoring import TermWeight
from hanseek.keywords.terms import TermOccurrence

BLANK = "({n}) ______"


@dataclass(frozen=True)
class Blank:
    number: int
    answer: str  # the surface text the blank replaces
    term: str  # its dictionary form
    tag: str
    weight: float
    start: int
    end: int


@dataclass(frozen=True)
class Cloze:
    text: str  # the page with blanks
    blanks: tuple[Blank, ...]  # the answer key, by number (= reading order)
    segments: tuple[str | Blank, ...]  # text pieces and blanks, in order (for rendering)
    candidates: int  # term occurrences that could be blanked


@dataclass(frozen=True)
class ClozeOptions:
    ratio: float | None = None  # share of candidate occurrences to blank
    count: int | None = None
    allow_duplicates: bool = False
    nouns: bool = True
    predicates: bool = False  # verb/adjective stems: blanking 만들 in 만들었다 is rarely useful
    foreign: bool = True
    min_weight: float = 0.0


def _eligible(o: TermOccurrence, opts: ClozeOptions) -> bool:
    return (
        (opts.nouns and o.is_noun) or (opts.predicates and o.is_predicate) or (opts.foreign and o.is_foreign)
    )


def target_count(candidates: int, opts: ClozeOptions) -> int:
    if opts.count is not None:
        return max(0, opts.count)
    ratio = 0.2 if opts.ratio is None else opts.ratio
    # Round half up (not banker's rounding) and never 0 blanks when something was asked for. In
    # decimal: 0.29 × 50 is 14.499999… in binary floating point, but 14.5 as written.
    n = int((Decimal(str(ratio)) * candidates).to_integral_value(rounding=ROUND_HALF_UP))
    return max(1, n) if ratio > 0 and candidates else 0


def _spread_ties(ranked: list[TermWeight], want: int) -> list[TermWeight]:
    """When the last blanks must be picked among words of equal weight (common on pages of rare
    words), take them evenly spread over the page instead of the first few, still deterministically."""
    if want <= 0 or want >= len(ranked) or ranked[want - 1].weight != ranked[want].weight:
        return ranked
    tie = ranked[want].weight
    above = [w for w in ranked if w.weight > tie]
    group = [w for w in ranked if w.weight == tie]  # already in order of first position
    rest = [w for w in ranked if w.weight < tie]
    k = want - len(above)
    step = len(group) / k
    picks = sorted({min(len(group) - 1, int((i + 0.5) * step)) for i in range(k)})
    first = [group[i] for i in picks]
    return above + first + [w for i, w in enumerate(group) if i not in set(picks)] + rest


def make_cloze(text: str, weights: Sequence[TermWeight], opts: ClozeOptions) -> Cloze:
    """Blank the highest-weighted eligible words of `text`; `weights` come from `score_page`."""
    ranked = [w for w in weights if w.weight >= opts.min_weight]
    eligible = {w.term: [o for o in w.occurrences if _eligible(o, opts)] for w in ranked}
    candidates = sum(len(v) for v in eligible.values())
    want = target_count(candidates, opts)

    if not opts.allow_duplicates:
        ranked = _spread_ties([w for w in ranked if eligible[w.term]], want)

    chosen: list[tuple[TermOccurrence, TermWeight]] = []
    taken: list[tuple[int, int]] = []
    # Best word first; ties were already broken by first position, then by term.
    for w in ranked:
        if len(chosen) >= want:
            break
        for o in eligible[w.term]:
            if len(chosen) >= want:
                break
            if any(o.start < e and s < o.end for s, e in taken):
                continue
            chosen.append((o, w))
            taken.append((o.start, o.end))
            if not opts.allow_duplicates:
                break

    chosen.sort(key=lambda p: p[0].start)
    blanks = tuple(
        Blank(
            number=i + 1,
            answer=o.surface,
            term=w.term,
            tag=o.tag,
            weight=w.weight,
            start=o.start,
            end=o.end,
        )
        for i, (o, w) in enumerate(chosen)
    )
    segments: list[str | Blank] = []
    pieces: list[str] = []
    pos = 0
    for b in blanks:
        if b.start > pos:
            segments.append(text[pos : b.start])
        pieces.append(text[pos : b.start])
        segments.append(b)
        pieces.append(BLANK.format(n=b.number))
        pos = b.end
    if pos < len(text):
        segments.append(text[pos:])
    pieces.append(text[pos:])
    return Cloze(text="".join(pieces), blanks=blanks, segments=tuple(segments), candidates=candidates)
