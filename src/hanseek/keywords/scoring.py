"""Word weights for one page: TF-IDF, BM25, a subject dictionary, their combination, keyword floors.

Pure functions over counts, so the numbers can be checked by hand (docs/keywords.md has the formulas).

- IDF comes from two corpora: the subject's documents and the general background corpus. With a
  non-empty subject corpus, idf = λ·idf_subject + (1−λ)·idf_background (λ = `subject_weight`);
  otherwise the background alone.
- TF-IDF: score = tf · idf, idf = ln((1+N)/(1+df)) + 1 (the smoothed form, always ≥ 1).
- BM25: score = idf · tf·(k1+1) / (tf + k1·(1 − b + b·dl/avgdl)), idf = ln(1 + (N−df+0.5)/(df+0.5)).
  The page plays the document: dl is the page's length in terms, avgdl the subject corpus' average
  (background's when the subject is empty). `length_norm=False` means b = 0.
- dictionary: the subject dictionary's weight (0 for unlisted words).
- combined: α·bm25/max(bm25) + (1−α)·dictionary/max(dictionary).
Every method's scores are divided by the page maximum, giving weights in [0, 1]; a word on the
subject's keyword list then gets max(weight, floor).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from hanseek.keywords.terms import TermOccurrence


class Method(StrEnum):
    DICTIONARY = "dictionary"
    TFIDF = "tfidf"
    BM25 = "bm25"
    COMBINED = "combined"
    TF = "tf"  # baseline: raw frequency on the page


@dataclass(frozen=True)
class CorpusStats:
    """Document frequencies of (at least) the terms being scored, for one corpus."""

    n_docs: int
    total_terms: int
    df: Mapping[str, int]

    @property
    def avgdl(self) -> float:
        return self.total_terms / self.n_docs if self.n_docs else 0.0

    @staticmethod
    def empty() -> CorpusStats:
        return CorpusStats(0, 0, {})


@dataclass(frozen=True)
class ScoringParams:
    method: Method = Method.BM25
    k1: float = 1.2
    b: float = 0.75
    length_norm: bool = True
    subject_weight: float = 0.5
    combine_alpha: float = 0.5
    floor: float | None = None  # None: no floor applied


@dataclass(frozen=True)
class TermWeight:
    term: str
    tag: str
    weight: float  # normalised to [0, 1] on the page, after the floor
    score: float  # the method's raw score
    count: int
    components: dict[str, float | int | bool] = field(default_factory=dict)
    occurrences: tuple[TermOccurrence, ...] = ()

    @property
    def first(self) -> int:
        return self.occurrences[0].start if self.occurrences else 0


def idf_tfidf(n_docs: int, df: int) -> float:
    return math.log((1 + n_docs) / (1 + df)) + 1.0


def idf_bm25(n_docs: int, df: int) -> float:
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def bm25_tf(tf: int, dl: int, avgdl: float, k1: float, b: float) -> float:
    norm = 1.0 - b + b * (dl / avgdl) if avgdl > 0 else 1.0
    return tf * (k1 + 1.0) / (tf + k1 * norm)


def mixed_idf(
    term: str, subject: CorpusStats, background: CorpusStats, *, bm25: bool, subject_weight: float
) -> dict[str, float | int]:
    """IDF from subject and background corpora, with its parts (for the components)."""
    idf_fn = idf_bm25 if bm25 else idf_tfidf
    df_s = min(subject.df.get(term, 0), subject.n_docs)
    df_b = min(background.df.get(term, 0), background.n_docs)
    idf_s = idf_fn(subject.n_docs, df_s) if subject.n_docs else 0.0
    idf_b = idf_fn(background.n_docs, df_b) if background.n_docs else 0.0
    if subject.n_docs and background.n_docs:
        lam = subject_weight
    elif subject.n_docs:
        lam = 1.0
    else:
        lam = 0.0
    return {
        "df_subject": df_s,
        "df_background": df_b,
        "idf_subject": idf_s,
        "idf_background": idf_b,
        "idf": lam * idf_s + (1.0 - lam) * idf_b,
    }


def group_occurrences(occs: Sequence[TermOccurrence]) -> dict[str, list[TermOccurrence]]:
    """Occurrences per term, in order of first appearance."""
    groups: dict[str, list[TermOccurrence]] = {}
    for o in occs:
        groups.setdefault(o.term, []).append(o)
    return groups


def score_page(
    occs: Sequence[TermOccurrence],
    params: ScoringParams,
    *,
    subject: CorpusStats,
    background: CorpusStats,
    dictionary: Mapping[str, float] | None = None,
    floor_words: frozenset[str] = frozenset(),
) -> list[TermWeight]:
    """Weights of every term on the page, best first (ties: earlier first occurrence, then term)."""
    groups = group_occurrences(occs)
    dl = len(occs)
    avgdl = subject.avgdl if subject.n_docs else background.avgdl
    b = params.b if params.length_norm else 0.0
    dictionary = dictionary or {}
    method = params.method

    raw: dict[str, float] = {}
    comps: dict[str, dict[str, float | int | bool]] = {}
    for term, group in groups.items():
        tf = len(group)
        c: dict[str, float | int | bool] = {"tf": tf}
        if method in (Method.TFIDF,):
            c.update(mixed_idf(term, subject, background, bm25=False, subject_weight=params.subject_weight))
            raw[term] = tf * float(c["idf"])
        elif method in (Method.BM25, Method.COMBINED):
            c.update(mixed_idf(term, subject, background, bm25=True, subject_weight=params.subject_weight))
            sat = bm25_tf(tf, dl, avgdl, params.k1, b)
            c.update({"tf_saturated": sat, "dl": dl, "avgdl": avgdl, "k1": params.k1, "b": b})
            raw[term] = float(c["idf"]) * sat
        elif method is Method.TF:
            raw[term] = float(tf)
        if method in (Method.DICTIONARY, Method.COMBINED):
            c["dictionary"] = float(dictionary.get(term, 0.0))
            if method is Method.DICTIONARY:
                raw[term] = float(c["dictionary"])
        comps[term] = c

    if method is Method.COMBINED:
        bm25_max = max(raw.values(), default=0.0)
        dict_max = max((float(comps[t]["dictionary"]) for t in groups), default=0.0)
        alpha = params.combine_alpha if dict_max > 0 else 1.0
        for term in groups:
            part_bm25 = raw[term] / bm25_max if bm25_max > 0 else 0.0
            part_dict = float(comps[term]["dictionary"]) / dict_max if dict_max > 0 else 0.0
            comps[term]["bm25"] = raw[term]
            raw[term] = alpha * part_bm25 + (1.0 - alpha) * part_dict

    top = max(raw.values(), default=0.0)
    out = []
    for term, group in groups.items():
        weight = raw[term] / top if top > 0 else 0.0
        floored = params.floor is not None and term in floor_words and weight < params.floor
        if floored and params.floor is not None:
            weight = params.floor
        comps[term]["floored"] = floored
        out.append(
            TermWeight(
                term=term,
                tag=group[0].tag,
                weight=weight,
                score=raw[term],
                count=len(group),
                components=comps[term],
                occurrences=tuple(group),
            )
        )
    out.sort(key=lambda w: (-w.weight, w.first, w.term))
    return out
