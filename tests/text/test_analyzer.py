import threading
import unicodedata
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from hanseek.text.analyzer import (
    SPLIT_MIN_CHARS,
    KoreanAnalyzer,
    Morpheme,
    _cut_points,
    _pieces,
    default_analyzer,
)

PAGE = (
    "구석기 시대 사람들은 뗀석기로 사냥을 했다. 신석기 시대에는 빗살무늬토기를 만들었고, 농경을 시작하였다."
)


@pytest.fixture(scope="module")
def analyzer() -> KoreanAnalyzer:
    return default_analyzer()


@pytest.fixture()
def own_analyzer() -> Iterator[KoreanAnalyzer]:
    yield KoreanAnalyzer(num_workers=1)


def test_morphemes_have_tags_and_offsets_into_the_input(analyzer: KoreanAnalyzer) -> None:
    ms = analyzer.morphemes(PAGE)
    assert all(isinstance(m, Morpheme) for m in ms)
    first = ms[0]
    assert (first.form, first.tag, first.start, first.len) == ("구석기", "NNG", 0, 3)
    stone = next(m for m in ms if m.form == "뗀석기")
    assert PAGE[stone.start : stone.end] == "뗀석기"
    particle = next(m for m in ms if m.start == stone.end)
    assert particle.tag.startswith("J") and PAGE[particle.start : particle.end] == "로"
    # Irregular-conjugation suffixes (VV-I, VA-R) are folded into the base tag.
    assert all("-" not in m.tag for m in analyzer.morphemes("아름다운 하늘을 걸었다"))


def test_offsets_survive_normalisation(analyzer: KoreanAnalyzer) -> None:
    raw = "  " + unicodedata.normalize("NFD", "뗀석기로") + "\u3000\u200b사냥을　했다 "
    ms = analyzer.morphemes(raw)
    nouns = [m for m in ms if m.tag in {"NNG", "NNP"}]
    assert [unicodedata.normalize("NFC", raw[m.start : m.end]) for m in nouns] == ["뗀석기", "사냥"]


def test_content_words(analyzer: KoreanAnalyzer) -> None:
    words = analyzer.content_words(PAGE)
    assert "뗀석기" in words and "사냥" in words and "농경" in words
    assert "로" not in words and "은" not in words  # particles are never content words
    assert "만들" in words
    assert "만들다" in analyzer.content_words(PAGE, with_da=True)
    assert "python" in analyzer.content_words("Ｐｙｔｈｏｎ으로 AI를 배운다")
    assert "python" not in analyzer.content_words("Python으로 배운다", foreign=False)


def test_tokens_for_bm25_strip_particles(analyzer: KoreanAnalyzer) -> None:
    assert analyzer.tokens_for_bm25("서울에서 만났다") == analyzer.tokens_for_bm25("서울 만나")
    assert analyzer.tokens_for_bm25("KOREA는") == ["korea"]


def test_batch_matches_single(analyzer: KoreanAnalyzer) -> None:
    texts = [PAGE, "", "고려의 광종은 노비안검법을 시행했다.", " \u200b ", "Hello 세계"]
    batch = analyzer.morphemes_batch(texts)
    assert batch == [analyzer.morphemes(t) for t in texts]
    assert analyzer.content_words_batch(texts) == [analyzer.content_words(t) for t in texts]
    assert analyzer.tokens_for_bm25_batch(texts) == [analyzer.tokens_for_bm25(t) for t in texts]


def test_empty_text(analyzer: KoreanAnalyzer) -> None:
    assert analyzer.morphemes("") == []
    assert analyzer.content_words("   ") == []


def test_user_words_join_a_compound(own_analyzer: KoreanAnalyzer) -> None:
    text = "빗살무늬토기를 보았다"
    before = [m.form for m in own_analyzer.content_morphemes(text)]
    assert "빗살무늬토기" not in before
    assert own_analyzer.add_user_words([("빗살무늬토기", "NNP", 5.0)]) == 1
    after = own_analyzer.content_morphemes(text)
    assert after[0] == Morpheme("빗살무늬토기", "NNP", 0, 6)
    assert own_analyzer.user_words == (("빗살무늬토기", "NNP", 5.0),)
    with pytest.raises(ValueError):
        own_analyzer.add_user_words([("", "NNP", 0.0)])
    with pytest.raises(ValueError):
        own_analyzer.add_user_words([("단어", "JKO", 0.0)])


def test_default_analyzer_is_shared_and_frozen() -> None:
    a = default_analyzer()
    assert a is default_analyzer() and a.frozen
    with pytest.raises(RuntimeError):
        a.add_user_words([("빗살무늬토기", "NNP", 0.0)])


def test_concurrent_analysis_while_adding_words(own_analyzer: KoreanAnalyzer) -> None:
    texts = [f"{i}번째 문장에서 고려 광종은 노비안검법을 시행했다." for i in range(40)]
    expected = [own_analyzer.morphemes(t) for t in texts]
    errors: list[BaseException] = []
    results: dict[int, list[list[Morpheme]]] = {}

    def reader(k: int) -> None:
        try:
            out = [own_analyzer.morphemes(t) for t in texts]
            out += own_analyzer.morphemes_batch(texts)
            results[k] = out
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def writer() -> None:
        try:
            for i in range(20):
                # Words that never occur in `texts`, so expected results stay valid.
                own_analyzer.add_user_words([(f"가상단어{i}", "NNG", 0.0)])
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len(results) == 4
    for out in results.values():
        assert out == expected + expected
    assert len(own_analyzer.user_words) == 20


def _whole(analyzer: KoreanAnalyzer, text: str) -> list[Morpheme]:
    """Reference: the page in one Kiwi call (no cutting)."""
    return [Morpheme(t.form, t.tag.split("-", 1)[0], t.start, t.len) for t in analyzer._kiwi.tokenize(text)]


def test_long_page_is_cut_for_the_pool_and_matches_one_call(analyzer: KoreanAnalyzer) -> None:
    page = "\n".join(f"{i}장. " + PAGE for i in range(30))
    assert len(page) >= SPLIT_MIN_CHARS and _pieces(len(page)) > 2
    assert analyzer.morphemes(page) == _whole(analyzer, page)


def test_cut_points_fall_on_sentence_gaps() -> None:
    text = "가나다. 라마바!\n사아자? 차카타"
    cuts = _cut_points(text, 3)
    assert cuts and all(text[c - 1].isspace() and not text[c].isspace() for c in cuts)
    assert _cut_points("띄어쓰기 없는 한 문장" * 50, 4) == []
    assert _cut_points(text, 1) == []


STUDY_NOTES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "study_notes"


@pytest.mark.skipif(not STUDY_NOTES.is_dir(), reason="../shared/data/study_notes not present")
def test_cut_analysis_equals_whole_on_real_study_notes(analyzer: KoreanAnalyzer) -> None:
    # Kiwi reads a little context across sentences, so a cut can change a morpheme next to it.
    # Measured on these notes with 300-character pieces: 13 differences (counted on both sides) in
    # 5,317 content morphemes, e.g. a list marker "가." read as a noun; the bar is 0.5%.
    content = {"NNG", "NNP", "VV", "VA", "SL", "SH"}
    total = differing = 0
    for path in sorted(STUDY_NOTES.glob("*.md"))[:6]:
        text = analyzer.normalize(path.read_text(encoding="utf-8").replace("**", ""))[:6000]
        cut = Counter(m for m in analyzer.morphemes(text) if m.tag in content)
        whole = Counter(m for m in _whole(analyzer, text) if m.tag in content)
        total += sum(whole.values())
        differing += sum((cut - whole).values()) + sum((whole - cut).values())
    assert total > 1000 and differing <= 0.005 * total, (differing, total)


def test_lone_surrogates_are_dropped_not_raised(analyzer: KoreanAnalyzer) -> None:
    text = "사과\ud800를 먹었다"
    words = [m.form for m in analyzer.morphemes(text)]
    assert "사과" in words
    assert analyzer.morphemes_batch([text, "배\udfff"])[1][0].form == "배"


@pytest.mark.skipif(not STUDY_NOTES.is_dir(), reason="../shared/data/study_notes not present")
def test_a_long_page_gets_the_same_morphemes_alone_and_in_a_batch(analyzer: KoreanAnalyzer) -> None:
    """A long page is cut at sentence gaps for the worker threads, and a cut can change a morpheme
    next to it: the batch path cuts it the same way, so /keywords/weights and /weights/batch (and
    corpus ingestion) weigh one page alike. Before, the batch analysed it whole."""
    pages = [
        analyzer.normalize(path.read_text(encoding="utf-8").replace("**", ""))[4000:6000]
        for path in sorted(STUDY_NOTES.glob("*.md"))[:6]
    ]
    assert any(analyzer.morphemes(p) != _whole(analyzer, p) for p in pages)  # the cut matters here
    assert analyzer.morphemes_batch(pages) == [analyzer.morphemes(p) for p in pages]
