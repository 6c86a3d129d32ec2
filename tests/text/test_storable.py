"""What PostgreSQL text cannot hold, named once for every edge that checks it."""

from __future__ import annotations

from hanseek.text.storable import unstorable


def test_nul_and_unpaired_surrogates_are_named_and_ordinary_text_passes() -> None:
    assert unstorable("한국어 text 😀 \t\n") is None
    assert unstorable("a\x00b") == "contains a NUL character"
    assert "surrogate" in (unstorable("토기 \ud800") or "")
    assert unstorable("😀") is None  # a surrogate pair in JSON decodes to one code point: fine
