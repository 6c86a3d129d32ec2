"""BM25 and TF-IDF against numbers computed by hand on a toy corpus.

Subject corpus: d1 = 사과 배, d2 = 사과 포도, d3 = 사과 배 포도 포도 → N = 3, total 8 terms,
avgdl = 8/3, df(사과) = 3, df(배) = 2, df(포도) = 2. Page: 사과 사과 배 수박 (dl = 4).
"""

import math

import pytest

from hanseek.keywords.corpus import MemoryCorpus
from hanseek.keywords.scoring import CorpusStats, Method, ScoringParams, TermWeight, score_page
from hanseek.keywords.terms import TermOccurrence

PAGE = ["사과", "사과", "배", "수박"]


def occs(terms: list[str]) -> list[TermOccurrence]:
    out, pos = [], 0
    for t in terms:
        out.append(TermOccurrence(t, "NNG", pos, pos + len(t), t))
        pos += len(t) + 1
    return out


@pytest.fixture()
def subject() -> CorpusStats:
    c = MemoryCorpus()
    for doc in (["사과", "배"], ["사과", "포도"], ["사과", "배", "포도", "포도"]):
        c.add(doc)
    return c.stats()


def by_term(ws: list[TermWeight]) -> dict[str, TermWeight]:
    return {w.term: w for w in ws}


def test_tfidf_matches_hand_computation(subject: CorpusStats) -> None:
    ws = by_term(
        score_page(
            occs(PAGE), ScoringParams(method=Method.TFIDF), subject=subject, background=CorpusStats.empty()
        )
    )
    # idf = ln((1+N)/(1+df)) + 1: 사과 ln(4/4)+1 = 1; 배 ln(4/3)+1 = 1.287682; 수박 ln(4)+1 = 2.386294
    assert ws["사과"].score == pytest.approx(2.0)
    assert ws["배"].score == pytest.approx(1.287682, abs=1e-6)
    assert ws["수박"].score == pytest.approx(2.386294, abs=1e-6)
    assert ws["수박"].weight == pytest.approx(1.0)
    assert ws["사과"].weight == pytest.approx(2.0 / 2.386294, abs=1e-6)
    assert ws["배"].components["df_subject"] == 2 and ws["배"].components["tf"] == 1


def test_bm25_matches_hand_computation(subject: CorpusStats) -> None:
    ws = by_term(
        score_page(
            occs(PAGE), ScoringParams(method=Method.BM25), subject=subject, background=CorpusStats.empty()
        )
    )
    # idf = ln(1 + (N-df+.5)/(df+.5)): 사과 ln(8/7) = 0.133531, 배 ln(1.6) = 0.470004, 수박 ln(8) = 2.079442
    # K = k1 (1 - b + b dl/avgdl) = 1.2 (0.25 + 0.75*1.5) = 1.65; tf part = tf*2.2/(tf+K)
    assert ws["사과"].components["idf"] == pytest.approx(0.133531, abs=1e-6)
    assert ws["사과"].components["tf_saturated"] == pytest.approx(4.4 / 3.65, abs=1e-6)
    assert ws["사과"].score == pytest.approx(0.160969, abs=1e-6)
    assert ws["배"].score == pytest.approx(0.390192, abs=1e-6)
    assert ws["수박"].score == pytest.approx(1.726329, abs=1e-6)


def test_bm25_without_length_normalisation(subject: CorpusStats) -> None:
    params = ScoringParams(method=Method.BM25, length_norm=False)
    ws = by_term(score_page(occs(PAGE), params, subject=subject, background=CorpusStats.empty()))
    # b = 0: K = k1 = 1.2; 사과: 0.133531 * 2*2.2/3.2 = 0.183605; 배: 0.470004 * 2.2/2.2 = 0.470004
    assert ws["사과"].components["b"] == 0.0
    assert ws["사과"].score == pytest.approx(0.183605, abs=1e-6)
    assert ws["배"].score == pytest.approx(0.470004, abs=1e-6)


def test_subject_and_background_idf_mix(subject: CorpusStats) -> None:
    background = CorpusStats(n_docs=9, total_terms=90, df={"사과": 1, "수박": 8})
    ws = by_term(
        score_page(
            occs(PAGE),
            ScoringParams(method=Method.BM25, subject_weight=0.25),
            subject=subject,
            background=background,
        )
    )
    idf_bg = math.log(1 + (9 - 1 + 0.5) / 1.5)
    assert ws["사과"].components["idf_background"] == pytest.approx(idf_bg)
    assert ws["사과"].components["idf"] == pytest.approx(0.25 * 0.133531 + 0.75 * idf_bg, abs=1e-6)
    # The page length is compared with the subject corpus' average document length.
    assert ws["사과"].components["avgdl"] == pytest.approx(8 / 3)
    # Without subject documents the background alone decides.
    ws = by_term(score_page(occs(PAGE), ScoringParams(), subject=CorpusStats.empty(), background=background))
    assert ws["사과"].components["idf"] == pytest.approx(idf_bg)
    assert ws["사과"].components["avgdl"] == pytest.approx(10.0)


def test_dictionary_and_combined(subject: CorpusStats) -> None:
    d = {"배": 3.0, "포도": 9.0}
    ws = by_term(
        score_page(
            occs(PAGE),
            ScoringParams(method=Method.DICTIONARY),
            subject=subject,
            background=CorpusStats.empty(),
            dictionary=d,
        )
    )
    assert ws["배"].weight == pytest.approx(1.0) and ws["사과"].weight == 0.0
    ws = by_term(
        score_page(
            occs(PAGE),
            ScoringParams(method=Method.COMBINED, combine_alpha=0.5),
            subject=subject,
            background=CorpusStats.empty(),
            dictionary=d,
        )
    )
    # 0.5 * bm25/max(bm25) + 0.5 * dict/max(dict on the page)
    assert ws["배"].score == pytest.approx(0.5 * 0.390192 / 1.726329 + 0.5 * 1.0, abs=1e-6)
    assert ws["수박"].score == pytest.approx(0.5, abs=1e-6)


def test_floors_hold(subject: CorpusStats) -> None:
    params = ScoringParams(method=Method.BM25, floor=0.6)
    ws = score_page(
        occs(PAGE),
        params,
        subject=subject,
        background=CorpusStats.empty(),
        floor_words=frozenset({"사과", "수박"}),
    )
    w = by_term(ws)
    assert w["사과"].weight == pytest.approx(0.6) and w["사과"].components["floored"] is True
    assert (
        w["수박"].weight == pytest.approx(1.0) and w["수박"].components["floored"] is False
    )  # already above
    assert w["배"].weight < 0.6  # unlisted words are untouched
    assert [x.term for x in ws] == ["수박", "사과", "배"]


def test_ties_are_ordered_by_first_position_not_alphabetically() -> None:
    # Reverse alphabetical order on the page, so "first occurrence first" and "alphabetical" differ:
    # the cloze tie-spreading relies on equal-weight words coming in reading order.
    def order(terms: list[str]) -> list[str]:
        ws = score_page(
            occs(terms),
            ScoringParams(method=Method.TF),
            subject=CorpusStats.empty(),
            background=CorpusStats.empty(),
        )
        assert len({w.weight for w in ws}) == 1  # all tied
        return [w.term for w in ws]

    assert order(["다", "나", "가"]) == ["다", "나", "가"]
    assert order(["나", "가", "다"]) == ["나", "가", "다"]
