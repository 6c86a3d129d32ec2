import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from hanseek.text.normalize import normalize, normalize_with_map


def test_nfd_hangul_is_composed_and_mapped_back() -> None:
    text = unicodedata.normalize("NFD", "뗀석기로 사냥")
    assert len(text) > len("뗀석기로 사냥")
    norm = normalize_with_map(text)
    assert norm.text == "뗀석기로 사냥"
    start, end = norm.span(0, 3)  # 뗀석기
    assert unicodedata.normalize("NFC", text[start:end]) == "뗀석기"
    start, end = norm.span(5, 2)  # 사냥
    assert unicodedata.normalize("NFC", text[start:end]) == "사냥"
    assert end == len(text)


def test_whitespace_controls_and_fullwidth() -> None:
    text = "  가\u3000\u3000나\t다\u200b라\x07\r\n\r\n\r\n\r\n마 \n바 ＡＢＣ１２ "
    norm = normalize_with_map(text)
    assert norm.text == "가 나 다라\n\n마\n바 ABC12"
    for i, ch in enumerate(norm.text):
        s, e = norm.span(i, 1)
        if ch.strip():
            # Each visible output character comes from a span that folds back to it.
            assert unicodedata.normalize("NFKC", text[s:e]).replace("\u200b", "") == ch


def test_clean_text_is_identity() -> None:
    text = "구석기 시대에는 뗀석기를 사용했다.\n\n신석기 시대"
    norm = normalize_with_map(text)
    assert norm.identity and norm.text == text
    assert norm.span(3, 2) == (3, 5)


def test_empty_and_blank() -> None:
    assert normalize("") == ""
    assert normalize(" \t\u200b\n ") == ""


@given(st.text(alphabet=st.sampled_from(list("가각ᄀ\u1161\u11a8 \t\n\r\u200bＡa\u0301e\x00")), max_size=40))
def test_map_is_monotonic_and_in_bounds(text: str) -> None:
    norm = normalize_with_map(text)
    assert normalize(norm.text) == norm.text  # idempotent
    prev_start = -1
    for i in range(len(norm.text)):
        s, e = norm.span(i, 1)
        assert 0 <= s < e <= len(text)
        assert s >= prev_start
        prev_start = s
