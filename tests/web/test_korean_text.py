"""Korean text on the pages breaks between words, not inside them, on a phone-sized screen."""

from __future__ import annotations

from typing import Any

import pytest

# Every line break that falls between two Hangul syllables of one word ("사냥|을").
BREAKS_IN_WORDS = """(sel) => { const out = []; const root = document.querySelector(sel);
  const w = document.createTreeWalker(root, NodeFilter.SHOW_TEXT); let prev = null, prevTop = null, n;
  while ((n = w.nextNode())) { for (let i = 0; i < n.data.length; i++) {
    const r = document.createRange(); r.setStart(n, i); r.setEnd(n, i + 1);
    const rect = r.getClientRects()[0]; if (!rect) continue; const ch = n.data[i];
    if (prev && prevTop !== null && rect.top > prevTop + 5 && /[가-힣]/.test(prev) && /[가-힣]/.test(ch))
      out.push(prev + "|" + ch);
    prev = ch; prevTop = rect.top; } }
  return out; }"""
TEXT = (
    "구석기 시대 사람들은 뗀석기로 사냥을 하였다. 신석기 시대에는 빗살무늬토기를 만들어 음식을 저장하였다. "
    "청동기 시대에는 고인돌을 만들었다."
)


@pytest.mark.browser
def test_the_cloze_worksheet_keeps_korean_words_whole(live_server: str, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ko-KR")
    page = context.new_page()
    try:
        page.goto(live_server + "/cloze")
        page.fill("#cloze-text", TEXT)
        page.click("#cloze-submit")
        page.wait_for_selector(".cloze-blank")
        assert page.evaluate(BREAKS_IN_WORDS, "#cloze-sheet") == []
        # A run with no space in it still wraps instead of widening the page.
        page.eval_on_selector("#cloze-sheet", "s => { s.textContent = '가'.repeat(300); }")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
