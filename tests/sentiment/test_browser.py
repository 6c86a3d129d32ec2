"""The /sentiment page in headless Chromium against the live app: type reviews, see their labels."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from hanseek.api.state import AppState
from hanseek.sentiment.service import SentimentService
from hanseek.text.analyzer import KoreanAnalyzer
from tests.fixtures.api import type_key

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
    # The model picker names the model that answered, also when no default was set.
    used = page.locator("#sentiment-model-used").inner_text().removeprefix("model: ")
    assert page.locator("#sentiment-model option").first.inner_text() == f"default ({used})"
    # Only blank lines now: the old table goes with the message.
    page.fill("#sentiment-text", " \n ")
    page.click("#sentiment-submit")
    assert "Type a review" in page.locator("#sentiment-error").inner_text()
    assert page.locator("#sentiment-result").is_hidden()


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


@pytest.mark.parametrize("keyed", ["read"], indirect=True)
def test_protect_reads_lists_models_once_the_key_is_typed(
    live_server: str, page: Any, sentiment_ready: None, keyed: str
) -> None:
    page.goto(live_server + "/sentiment")
    assert page.locator("#sentiment-model option").count() == 1  # no names without the key
    type_key(page)
    page.fill("#sentiment-text", "배우들 연기가 정말 좋았다")
    page.click("#sentiment-submit")
    page.locator("#sentiment-rows tr").first.wait_for(timeout=120_000)
    assert page.locator("#sentiment-error").inner_text() == ""
    # A model exists now (the first request may have trained it): the key, kept for the tab, lists it.
    page.reload()
    page.wait_for_function("document.querySelectorAll('#sentiment-model option').length > 1")
    listed = page.eval_on_selector_all("#sentiment-model option", "os => os.map((o) => o.value)")
    assert listed[0] == "" and len(listed) > 1 and all(listed[1:])

    # A link to reviews opened in a new tab, which has no key yet: refused, then classified once the
    # key is typed.
    tab = page.context.new_page()
    tab.goto(live_server + "/sentiment?text=" + quote("정말 재미있는 영화"))
    tab.wait_for_function("document.getElementById('sentiment-error').textContent.length > 0")
    assert "API key" in tab.inner_text("#sentiment-error")
    with tab.expect_request(is_classify):
        type_key(tab)
    tab.locator("#sentiment-rows tr").first.wait_for(timeout=60_000)
    assert tab.inner_text("#sentiment-error") == "" and tab.locator("#sentiment-rows tr").count() == 1


def is_classify(request: Any) -> bool:
    return request.method == "POST" and urlsplit(request.url).path == "/sentiment"


def test_reviews_and_model_are_kept_in_the_url(live_server: str, page: Any, sentiment_ready: None) -> None:
    reviews = "연기도 좋고 스토리도 탄탄한 인생 영화\n돈 아깝다 최악의 영화 시간 낭비"
    page.goto(live_server + "/sentiment")
    page.fill("#sentiment-text", reviews)
    page.click("#sentiment-submit")
    page.locator("#sentiment-rows tr").first.wait_for(timeout=120_000)  # may train the demo model
    assert parse_qs(urlsplit(page.url).query) == {"text": [reviews]}
    # Pick the model that answered by name (other tests of this server leave broken ones listed too),
    # and the link names it too.
    used = page.inner_text("#sentiment-model-used")
    assert used.startswith("model: ")
    name = used.removeprefix("model: ")
    page.goto(live_server + "/sentiment")
    page.select_option("#sentiment-model", name)
    page.fill("#sentiment-text", reviews)
    with page.expect_response(lambda r: is_classify(r.request)):
        page.click("#sentiment-submit")
    assert parse_qs(urlsplit(page.url).query) == {"text": [reviews], "model": [name]}

    # Opening the link restores both and classifies the reviews again.
    url = page.url
    page.goto("about:blank")
    with page.expect_request(is_classify) as asked:
        page.goto(url)
    assert asked.value.post_data_json == {"texts": reviews.split("\n"), "model": name}
    page.locator("#sentiment-rows tr").first.wait_for()
    assert page.input_value("#sentiment-text") == reviews and page.input_value("#sentiment-model") == name
    assert page.locator("#sentiment-rows tr").count() == 2
    assert page.inner_text("#sentiment-model-used") == f"model: {name}"

    # Long reviews stay out of the URL; the model stays, and nothing is classified on opening it.
    page.fill("#sentiment-text", "배우들 연기가 정말 좋았다 " * 100)
    with page.expect_response(lambda r: is_classify(r.request)):
        page.click("#sentiment-submit")
    assert parse_qs(urlsplit(page.url).query) == {"model": [name]}
    asked_for: list[str] = []
    page.on("request", lambda r: asked_for.append(r.url) if is_classify(r) else None)
    page.goto(page.url)
    page.wait_for_load_state("networkidle")
    assert page.input_value("#sentiment-text") == "" and page.input_value("#sentiment-model") == name
    assert page.locator("#sentiment-result").is_hidden() and asked_for == []

    # Reviews classified, then cleared: a reload shows the emptied form, and classifies nothing.
    page.fill("#sentiment-text", "재밌다")
    with page.expect_response(lambda r: is_classify(r.request)):
        page.click("#sentiment-submit")
    page.fill("#sentiment-text", "")
    page.click("#sentiment-submit")
    assert parse_qs(urlsplit(page.url).query) == {"model": [name]}
    asked_for.clear()
    page.reload()
    page.wait_for_load_state("networkidle")
    assert page.input_value("#sentiment-text") == "" and asked_for == []


def one_line(cell: Any) -> bool:
    """Whether a cell's text sits on one line (every fragment of it at the same height)."""
    return bool(
        cell.evaluate(
            """td => { const r = document.createRange(); r.selectNodeContents(td);
                return new Set([...r.getClientRects()].map((x) => Math.round(x.top))).size === 1; }"""
        )
    )


@pytest.mark.parametrize("viewport", [(390, 844), (1280, 900)], ids=["phone", "desktop"])
def test_labels_and_probabilities_stay_whole_beside_a_long_review(
    live_server: str, page: Any, viewport: tuple[int, int]
) -> None:
    """ "positive" and "0.967" were broken mid-word ("pos/itiv/e", "0.9/67") beside a long review:
    every cell could wrap anywhere, so the table squeezed the short ones. Only the review wraps now,
    an unbroken URL included, and the table never widens the page."""
    width, height = viewport
    page.set_viewport_size({"width": width, "height": height})
    reviews = [
        "이 영화는 정말 기대 이상이었다. 배우들의 연기가 자연스럽고 음악도 장면마다 잘 어울려서 " * 4,
        "https://example.com/" + "a" * 300,
    ]
    answer = {
        "model": "demo",
        "results": [
            {"label": "positive", "probability": 0.967},
            {"label": "negative", "probability": 0.512},
        ],
    }

    def classify(route: Any) -> None:  # the layout is under test, not the model
        if route.request.method == "POST":
            route.fulfill(status=200, content_type="application/json", body=json.dumps(answer))
        else:
            route.continue_()

    page.route("**/sentiment", classify)
    page.goto(live_server + "/sentiment")
    page.fill("#sentiment-text", "\n".join(reviews))
    page.click("#sentiment-submit")
    page.wait_for_selector("#sentiment-result:not([hidden])")
    rows = page.locator("#sentiment-rows tr")
    assert rows.count() == 2
    for i in range(2):
        label, prob, review = (rows.nth(i).locator("td").nth(j) for j in range(3))
        assert one_line(label) and one_line(prob), (label.inner_text(), prob.inner_text())
        assert not one_line(review)  # the long review wraps instead
        assert review.evaluate("td => td.scrollWidth <= td.clientWidth")
    assert rows.nth(0).locator("td").nth(1).inner_text() == "0.967"
    for th in page.locator("#sentiment-result th").all():
        assert one_line(th), th.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_back_and_forward_return_to_earlier_reviews(live_server: str, page: Any) -> None:
    """Classifying replaced the history entry: Back left the page instead of going to the reviews before."""

    def classify(route: Any) -> None:  # the history is under test, not the model
        if route.request.method != "POST":
            route.continue_()
            return
        texts = route.request.post_data_json["texts"]
        answer = {"model": "demo", "results": [{"label": "positive", "probability": 0.9} for _ in texts]}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(answer))

    page.route("**/sentiment", classify)
    page.goto(live_server + "/sentiment")
    for reviews in ("재밌다", "재밌다\n지루하다"):
        page.fill("#sentiment-text", reviews)
        with page.expect_response(lambda r: is_classify(r.request)):
            page.click("#sentiment-submit")
    page.wait_for_function("document.querySelectorAll('#sentiment-rows tr').length === 2")
    with page.expect_response(lambda r: is_classify(r.request)):
        page.go_back()
    page.wait_for_function("document.querySelectorAll('#sentiment-rows tr').length === 1")
    assert page.input_value("#sentiment-text") == "재밌다"
    page.go_forward()
    page.wait_for_function("document.querySelectorAll('#sentiment-rows tr').length === 2")
    assert page.input_value("#sentiment-text") == "재밌다\n지루하다"
    page.go_back()
    page.go_back()  # the page as opened: an empty form, no table
    page.wait_for_selector("#sentiment-result", state="hidden")
    assert page.input_value("#sentiment-text") == "" and page.url.startswith(live_server + "/sentiment")


def test_a_probability_that_is_no_number_shows_a_dash(
    live_server: str, page: Any, sentiment_ready: None
) -> None:
    """The server no longer answers one (a NaN head is refused at load), but the page should not
    fail on it: until session 18 `null.toFixed` stopped the table with a script error."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    body = {
        "model": "m",
        "results": [
            {"label": "negative", "probability": None, "positive_probability": None, "model": "m"},
            {"label": "positive", "probability": 0.9, "positive_probability": 0.9, "model": "m"},
        ],
    }

    def answer(route: Any) -> None:
        if route.request.method == "POST":
            route.fulfill(status=200, content_type="application/json", body=json.dumps(body))
        else:
            route.continue_()

    page.route(live_server + "/sentiment", answer)
    page.goto(live_server + "/sentiment")
    page.fill("#sentiment-text", "좋다\n별로")
    page.click("#sentiment-submit")
    rows = page.locator("#sentiment-rows tr")
    rows.nth(1).wait_for()
    assert "–" in rows.nth(0).inner_text() and "0.900" in rows.nth(1).inner_text()
    assert errors == []


def test_a_line_of_invisible_characters_is_blank(live_server: str, page: Any, sentiment_ready: None) -> None:
    """A zero-width space alone on a line (common in text copied from web pages) made the whole
    request fail with "texts[1] is empty"."""
    page.goto(live_server + "/sentiment")
    page.fill("#sentiment-text", "정말 재밌어요\n\n\u200b\n\u2060\ufeff \n최악이에요")
    page.click("#sentiment-submit")
    rows = page.locator("#sentiment-rows tr")
    rows.first.wait_for(timeout=120_000)
    assert rows.count() == 2
    assert page.locator("#sentiment-error").inner_text() == ""


def test_messages_name_the_line_and_no_command(live_server: str, page: Any, sentiment_ready: None) -> None:
    """The API numbers the texts it was sent from 0, blank lines left out ("texts[1]"), and points
    at the command line: the page names the line the user sees, and the Model list."""
    page.goto(live_server + "/sentiment")
    page.fill("#sentiment-text", "좋아요\n\n" + "가" * 20_001)
    page.click("#sentiment-submit")
    page.wait_for_function("document.getElementById('sentiment-error').textContent.length > 0")
    assert page.inner_text("#sentiment-error") == "Line 3 has 20,001 characters; the limit is 20,000"

    page.goto(live_server + "/sentiment?text=%EC%A2%8B%EC%95%84%EC%9A%94&model=movie-gone")
    page.wait_for_function("document.getElementById('sentiment-error').textContent.length > 0")
    message = page.inner_text("#sentiment-error")
    assert "movie-gone" in message and "hanseek" not in message and "`" not in message
    assert message.endswith("choose one from the Model list")


def test_a_review_breaks_between_words_on_a_phone(
    live_server: str, browser: Any, sentiment_ready: None
) -> None:
    """Without keep-all the browser broke Korean between any two syllables ("마지|막")."""
    from tests.web.test_korean_text import BREAKS_IN_WORDS

    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ko-KR")
    page = context.new_page()
    try:
        page.goto(live_server + "/sentiment")
        review = "배우들 연기가 정말 좋았고 마지막 장면은 잊을 수 없다 " * 2
        page.fill("#sentiment-text", review + "\n" + "가" * 300)
        page.click("#sentiment-submit")
        page.locator("#sentiment-rows td.text").first.wait_for(timeout=120_000)
        assert page.evaluate(BREAKS_IN_WORDS, "#sentiment-rows td.text") == []
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the long run still wraps
    finally:
        context.close()
