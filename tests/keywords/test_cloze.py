import pytest

from hanseek.keywords.background import load_background
from hanseek.keywords.cloze import Blank, ClozeOptions, make_cloze, target_count
from hanseek.keywords.scoring import CorpusStats, Method, ScoringParams, TermWeight, score_page
from hanseek.keywords.terms import TermExtractor
from hanseek.text.analyzer import default_analyzer

PAGE = (
    "구석기 시대 사람들은 뗀석기로 사냥을 하였다. 신석기 시대에는 빗살무늬토기를 만들었고, "
    "농경과 목축을 시작하였다. 신석기 시대 사람들은 움집에 살았고 가락바퀴로 옷을 만들었다. "
    "청동기 시대에는 고인돌이 만들어졌고 반달돌칼로 곡식을 거두었다."
)


@pytest.fixture(scope="module")
def weights() -> list[TermWeight]:
    occs = TermExtractor(default_analyzer()).extract(PAGE)
    return score_page(occs, ScoringParams(), subject=CorpusStats.empty(), background=load_background().stats)


def test_blanks_cover_words_not_particles(weights: list[TermWeight]) -> None:
    cz = make_cloze(PAGE, weights, ClozeOptions(ratio=1.0, allow_duplicates=True))
    assert len(cz.blanks) == cz.candidates > 10
    grammar = [m for m in default_analyzer().morphemes(PAGE) if m.tag[0] in "JE"]  # particles, endings
    assert len(grammar) > 10
    for b in cz.blanks:
        assert PAGE[b.start : b.end] == b.answer
        assert not any(m.start < b.end and b.start < m.end for m in grammar), b
    stone = next(b for b in cz.blanks if b.answer == "뗀석기")
    assert PAGE[stone.end] == "로"  # the particle stays in the text
    assert f"({stone.number}) ______로" in cz.text


def test_numbered_in_reading_order_with_answer_key(weights: list[TermWeight]) -> None:
    cz = make_cloze(PAGE, weights, ClozeOptions(count=5))
    assert [b.number for b in cz.blanks] == [1, 2, 3, 4, 5]
    assert [b.start for b in cz.blanks] == sorted(b.start for b in cz.blanks)
    # Rebuilding the page from the segments and the answer key gives back the original text.
    rebuilt = "".join(s.answer if isinstance(s, Blank) else s for s in cz.segments)
    assert rebuilt == PAGE
    for b in cz.blanks:
        assert f"({b.number}) ______" in cz.text


def test_no_duplicate_words_unless_asked(weights: list[TermWeight]) -> None:
    cz = make_cloze(PAGE, weights, ClozeOptions(ratio=1.0))
    terms = [b.term for b in cz.blanks]
    assert len(terms) == len(set(terms))
    dup = make_cloze(PAGE, weights, ClozeOptions(ratio=1.0, allow_duplicates=True))
    assert len(dup.blanks) == dup.candidates
    assert len({b.term for b in dup.blanks}) < len(dup.blanks)  # 시대, 신석기 repeat


def test_count_ratio_and_determinism(weights: list[TermWeight]) -> None:
    a = make_cloze(PAGE, weights, ClozeOptions(count=4))
    b = make_cloze(PAGE, list(weights), ClozeOptions(count=4))
    assert a == b and len(a.blanks) == 4
    # The blanked words are the best-weighted eligible words.
    eligible = [w for w in weights if any(o.is_noun or o.is_foreign for o in w.occurrences)]
    assert sorted(x.weight for x in a.blanks) == sorted(w.weight for w in eligible[:4])
    r = make_cloze(PAGE, weights, ClozeOptions(ratio=0.25, allow_duplicates=True))
    assert len(r.blanks) == target_count(r.candidates, ClozeOptions(ratio=0.25))
    assert target_count(10, ClozeOptions(ratio=0.25)) == 3  # 2.5 rounds up
    # Halves as written, not as binary floating point has them (0.29 × 50 = 14.4999…).
    for ratio, n, want in ((0.29, 50, 15), (0.35, 90, 32), (0.58, 25, 15), (0.3, 5, 2), (0.7, 5, 4)):
        assert target_count(n, ClozeOptions(ratio=ratio)) == want, (ratio, n)
    assert target_count(10, ClozeOptions(ratio=0.01)) == 1  # never zero when asked for blanks
    assert target_count(0, ClozeOptions(ratio=0.5)) == 0


def test_predicates_only_when_asked(weights: list[TermWeight]) -> None:
    cz = make_cloze(PAGE, weights, ClozeOptions(ratio=1.0))
    assert all(b.tag not in {"VV", "VA"} for b in cz.blanks)
    cz = make_cloze(PAGE, weights, ClozeOptions(ratio=1.0, predicates=True))
    assert any(b.term == "만들다" for b in cz.blanks)


def test_ties_at_the_cut_are_spread_over_the_page() -> None:
    words = "가방, 나무, 다리, 라면, 마을, 바다, 사과, 아들, 자리, 차표"
    occs = TermExtractor(default_analyzer()).extract(words)
    assert len(occs) == 10
    ws = score_page(
        occs, ScoringParams(method=Method.TF), subject=CorpusStats.empty(), background=CorpusStats.empty()
    )
    cz = make_cloze(words, ws, ClozeOptions(count=2))
    # Ten words of equal weight: the two blanks are spread (3rd and 8th word), not the first two.
    assert [b.answer for b in cz.blanks] == ["다리", "아들"]
    assert make_cloze(words, ws, ClozeOptions(count=2)) == cz


def test_default_min_weight_keeps_words_of_weight_zero() -> None:
    # min_weight is inclusive: with the default 0, words the dictionary gives no weight can still be
    # blanked (a page with no dictionary words must not come back without blanks).
    words = "가방, 나무, 다리"
    occs = TermExtractor(default_analyzer()).extract(words)
    ws = score_page(
        occs,
        ScoringParams(method=Method.DICTIONARY),
        subject=CorpusStats.empty(),
        background=CorpusStats.empty(),
        dictionary={},
    )
    assert ws and all(w.weight == 0 for w in ws)
    cz = make_cloze(words, ws, ClozeOptions(count=1))
    assert cz.candidates == 3 and len(cz.blanks) == 1
    assert len(make_cloze(words, ws, ClozeOptions(count=1, min_weight=0.5)).blanks) == 0
