"""The /sentiment page in headless Chromium against the live app: type reviews, see their labels."""

from __future__ import annotations

from typing import Any

import pytest

from hanseek.api.state import AppState
from hanseek.sentiment.service import SentimentService
from hanseek.text.analyzer import KoreanAnalyzer

pytestmark = pytest.mark.browser


@pytest.fixture()
def sentiment_ready(app_state: AppState, kiwi: KoreanAnalyzer) -> None:
    app_state.service("sentiment", lambda st: SentimentService(st.settings, analyzer=kiwi))


def test_type_reviews_and_see_labels(live_server: str, page: Any, sentiment_ready: None) -> None:
    page.goto(live_server + "/sentiment")
    page.fill("#sentiment-text", "연기도 좋고 스토리도 탄탄한 인생 영화\n\n돈 아깝다 최악의 영화 시간 낭비")
    page.click("#sentiment-submit")
    rows = page.locator("#sentiment-rows tr")
    rows.first.wait_for(timeout=120_000)  # the first request may train the demo model
    assert rows.count() == 2  # the blank line is not a review
    assert "positive" in rows.nth(0).inner_text()
    assert "negative" in rows.nth(1).inner_text()
    assert page.locator("#sentiment-model-used").inner_text().startswith("model: ")
    assert page.locator("#sentiment-error").inner_text() == ""


def test_empty_input_shows_an_error(live_server: str, page: Any, sentiment_ready: None) -> None:
    page.goto(live_server + "/sentiment")
    page.fill("#sentiment-text", "   ")
    page.click("#sentiment-submit")
    assert "Type a review" in page.locator("#sentiment-error").inner_text()
    assert page.locator("#sentiment-result").is_hidden()


def test_server_error_message_is_shown(live_server: str, page: Any, sentiment_ready: None) -> None:
    page.goto(live_server + "/sentiment")
    page.fill("#sentiment-text", "가" * 20_001)
    page.click("#sentiment-submit")
    error = page.locator("#sentiment-error")
    error.wait_for()
    page.wait_for_function("document.getElementById('sentiment-error').textContent.length > 0")
    assert "characters" in error.inner_text()
