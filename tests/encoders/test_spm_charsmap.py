from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import normalizers

from hanseek.encoders.spm_charsmap import build_precompiled_charsmap

# Letters/numbers only, so that each test character is its own grapheme cluster (the Precompiled
# normaliser transforms whole clusters).
_chars = st.characters(categories=["Lu", "Ll", "Lo", "Nd"], exclude_characters="\x00")


def _normalizer(m: dict[int, tuple[int, ...]]) -> normalizers.Precompiled:
    return normalizers.Precompiled(build_precompiled_charsmap(m))


def test_replaces_deletes_and_expands() -> None:
    m = {ord("Ａ"): (ord("A"),), ord("\x01"): (), ord("ﬁ"): (ord("f"), ord("i")), ord("ㅋ"): (0x110F,)}
    n = _normalizer(m)
    assert n.normalize_str("Ａ\x01ﬁ ㅋx") == "Afi \u110fx"
    assert n.normalize_str("unchanged 한국어") == "unchanged 한국어"


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(_chars, st.lists(_chars, max_size=3).map(tuple), min_size=1, max_size=60),
    st.lists(_chars, max_size=20),
)
def test_matches_per_character_map(rules: dict[str, tuple[str, ...]], text: list[str]) -> None:
    m = {ord(k): tuple(ord(c) for c in v) for k, v in rules.items()}
    n = _normalizer(m)
    for ch in list(rules) + text:
        expected = "".join(chr(c) for c in m.get(ord(ch), (ord(ch),)))
        assert n.normalize_str(ch) == expected
