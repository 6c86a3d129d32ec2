import unicodedata

import pytest

from hanseek.keywords.terms import COMPOUND_TAG, TermExtractor, normalize_term
from hanseek.text.analyzer import default_analyzer


@pytest.fixture(scope="module")
def extractor() -> TermExtractor:
    return TermExtractor(default_analyzer())


def test_compound_nouns_become_one_term(extractor: TermExtractor) -> None:
    text = "신석기 시대에는 빗살무늬토기를 만들었다. 왕위계승권을 독점했다."
    occs = {o.term: o for o in extractor.extract(text)}
    comb = occs["빗살무늬토기"]
    assert comb.tag == COMPOUND_TAG and comb.parts == ("빗살", "무늬", "토기")
    assert text[comb.start : comb.end] == comb.surface == "빗살무늬토기"
    assert "왕위계승권" in occs  # noun + noun + suffix 권
    assert "빗살" not in occs and "토기" not in occs  # parts are not counted separately


@pytest.mark.parametrize("hidden", ["\u200b", "\u00ad", "\u200b\u00ad"])
def test_an_invisible_character_inside_a_compound_keeps_it_one_term(
    extractor: TermExtractor, hidden: str
) -> None:
    """The analyser never sees a zero-width space or soft hyphen (normalisation drops it), so the
    compound's parts touch in its text even though the user's text has a character between them."""
    text = f"신석기 시대에는 빗살{hidden}무늬토기를 만들었다."
    occs = {o.term: o for o in extractor.extract(text)}
    assert "빗살무늬토기" in occs and "빗살" not in occs, sorted(occs)
    assert occs["빗살무늬토기"].surface == f"빗살{hidden}무늬토기"
    spaced = {o.term for o in extractor.extract("신석기 시대에는 빗살 무늬토기를 만들었다.")}
    assert "빗살무늬토기" not in spaced  # a real space still separates two words


def test_surface_excludes_particles(extractor: TermExtractor) -> None:
    text = "뗀석기로 사냥을 하였고 과학자들은 Python으로 분석했다"
    occs = extractor.extract(text)
    by_term = {o.term: o for o in occs}
    assert by_term["뗀석기"].surface == "뗀석기"
    assert text[by_term["뗀석기"].end] == "로"
    assert "과학자" in by_term and "과학자들" not in by_term  # plural 들 is not part of the word
    assert by_term["python"].surface == "Python"
    # Light predicates (하다, 있다, ...) are grammar, not content.
    assert "하다" not in by_term


def test_predicates_keep_dictionary_form(extractor: TermExtractor) -> None:
    occs = extractor.extract("아름다운 토기를 만들었다")
    assert [o.term for o in occs if o.is_predicate] == ["아름답다", "만들다"]
    assert not [o for o in TermExtractor(default_analyzer(), predicates=False).extract("만들었다")]


def test_offsets_into_unnormalised_text(extractor: TermExtractor) -> None:
    text = unicodedata.normalize("NFD", "고인돌이 만들어졌다")
    first = extractor.extract(text)[0]
    assert first.term == "고인돌"
    assert unicodedata.normalize("NFC", first.surface) == "고인돌"
    assert unicodedata.normalize("NFC", text[first.end :]).startswith("이")


def test_batch_equals_single(extractor: TermExtractor) -> None:
    texts = ["빗살무늬토기를 만들었다", "", "OSI 참조 모델의 7계층"]
    assert extractor.extract_batch(texts) == [extractor.extract(t) for t in texts]


def test_normalize_term() -> None:
    assert normalize_term(" 빗살무늬 토기 ") == "빗살무늬토기"
    assert normalize_term("ＯＳＩ") == "osi"
    assert normalize_term(unicodedata.normalize("NFD", "뗀석기")) == "뗀석기"
