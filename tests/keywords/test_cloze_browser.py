"""The /cloze page in headless Chromium against the live app."""

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.api import PAGE_KEY, type_key

DATA = Path(__file__).parent / "data"
PAGE = (
    "구석기 시대 사람들은 뗀석기로 사냥을 하였다. 신석기 시대에는 빗살무늬토기를 만들었고, 농경을 시작하였다."
)

pytestmark = pytest.mark.browser


def test_paste_text_and_get_a_worksheet(live_server: str, page: Any) -> None:
    page.goto(live_server + "/cloze")
    page.fill("#cloze-text", PAGE)
    page.fill("#cloze-ratio", "0.5")
    page.click("#cloze-submit")
    page.wait_for_selector("#cloze-result:not([hidden])")
    blanks = page.locator("#cloze-sheet .cloze-blank")
    answers = page.locator("#cloze-answers li").all_inner_texts()
    assert blanks.count() == len(answers) >= 2
    assert blanks.first.inner_text() == "(1)"
    assert set(answers) <= {
        "구석기",
        "시대",
        "사람",
        "뗀석기",
        "사냥",
        "신석기",
        "빗살무늬토기",
        "농경",
        "시작",
    }
    sheet = page.locator("#cloze-sheet").inner_text()
    for a in answers:
        assert a not in sheet or sheet.count(a) < PAGE.count(a)  # blanked words are gone from the sheet
    assert "blanks out of" in page.locator("#cloze-status").inner_text()
    # The answers stay hidden on screen until asked for.
    assert page.locator("#cloze-answers-box").is_hidden()
    page.click("#cloze-reveal")
    assert page.locator("#cloze-answers-box").is_visible()
    assert page.inner_text("#cloze-reveal") == "Hide answers"


def test_photo_goes_through_ocr(live_server: str, page: Any, tmp_path: Path) -> None:
    page.goto(live_server + "/cloze")
    page.set_input_files("#cloze-image", str(DATA / "page_ko.png"))
    page.click("#cloze-submit")  # empty text + a photo: OCR first, then blanks
    page.wait_for_selector("#cloze-result:not([hidden])", timeout=60_000)
    assert "빗살무늬토기" in page.input_value("#cloze-text")
    assert page.locator("#cloze-answers li").count() >= 1
    # Another photo: the first photo's text goes, so the next worksheet reads the new photo.
    other = tmp_path / "another_page.png"
    other.write_bytes((DATA / "page_ko.png").read_bytes())
    page.set_input_files("#cloze-image", str(other))
    assert page.input_value("#cloze-text") == ""


def test_errors_are_shown(live_server: str, page: Any) -> None:
    page.goto(live_server + "/cloze")
    page.click("#cloze-submit")
    page.wait_for_function("document.getElementById('cloze-error').textContent.length > 0")
    assert page.locator("#cloze-error").inner_text() == "Paste a page, or choose a photo of one."
    assert page.locator("#cloze-result").is_hidden()


def test_a_network_failure_is_shown_not_left_loading(live_server: str, page: Any) -> None:
    page.goto(live_server + "/cloze")
    page.fill("#cloze-text", PAGE)
    page.context.set_offline(True)
    try:
        page.click("#cloze-submit")
        page.wait_for_function("document.getElementById('cloze-error').textContent.length > 0")
        assert page.inner_text("#cloze-error").startswith("Could not reach the server")
        assert page.inner_text("#cloze-status") == ""  # no "Weighing words…" left behind
        page.set_input_files("#cloze-image", str(DATA / "page_ko.png"))
        page.evaluate("document.getElementById('cloze-error').textContent = ''")
        page.click("#cloze-ocr")
        page.wait_for_function("document.getElementById('cloze-error').textContent.length > 0")
        assert page.inner_text("#cloze-error").startswith("Could not reach the server")
    finally:
        page.context.set_offline(False)


def url_state(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_the_settings_and_a_short_text_are_kept_in_the_url(
    live_server: str, page: Any, client: TestClient
) -> None:
    subject = f"한국사-{uuid.uuid4().hex[:8]}"
    assert client.post("/keywords/subjects", json={"name": subject}).status_code == 201
    page.goto(live_server + "/cloze")
    page.select_option("#cloze-subject", subject)
    page.select_option("#cloze-method", "tfidf")
    page.fill("#cloze-ratio", "0.5")
    page.check("#cloze-duplicates")
    page.fill("#cloze-text", PAGE)
    page.click("#cloze-submit")
    page.wait_for_selector("#cloze-result:not([hidden])")
    answers = page.locator("#cloze-answers li").all_inner_texts()
    assert url_state(page.url) == {
        "subject": subject,
        "method": "tfidf",
        "ratio": "0.5",
        "dup": "1",
        "text": PAGE,
    }

    # A shared link (or a reload) restores every input and makes the same worksheet again.
    url = page.url
    page.goto("about:blank")
    with page.expect_request("**/keywords/cloze") as asked:
        page.goto(url)
    assert asked.value.post_data_json == {
        "text": PAGE,
        "method": "tfidf",
        "ratio": 0.5,
        "allow_duplicates": True,
        "subject": subject,
    }
    page.wait_for_selector("#cloze-result:not([hidden])")
    assert page.input_value("#cloze-subject") == subject and page.input_value("#cloze-method") == "tfidf"
    assert page.input_value("#cloze-ratio") == "0.5" and page.is_checked("#cloze-duplicates")
    assert page.input_value("#cloze-text") == PAGE
    assert page.locator("#cloze-answers li").all_inner_texts() == answers

    # A long page stays out of the URL (the settings stay), and nothing is asked for on opening it.
    page.fill("#cloze-text", PAGE * 20)  # 1,180 characters, 8.9 KB percent-encoded
    with page.expect_response("**/keywords/cloze"):
        page.click("#cloze-submit")
    assert url_state(page.url) == {"subject": subject, "method": "tfidf", "ratio": "0.5", "dup": "1"}
    asked_for: list[str] = []
    page.on("request", lambda r: asked_for.append(r.url) if "/keywords/cloze" in r.url else None)
    page.goto(page.url)
    page.wait_for_load_state("networkidle")
    assert page.input_value("#cloze-text") == "" and page.input_value("#cloze-subject") == subject
    assert page.locator("#cloze-result").is_hidden() and asked_for == []

    # A short page, then the text cleared: a reload shows the emptied form and asks for nothing.
    page.fill("#cloze-text", PAGE)
    with page.expect_response("**/keywords/cloze"):
        page.click("#cloze-submit")
    assert "text" in url_state(page.url)
    page.fill("#cloze-text", "")
    page.click("#cloze-submit")
    assert url_state(page.url) == {"subject": subject, "method": "tfidf", "ratio": "0.5", "dup": "1"}
    asked_for.clear()
    page.reload()
    page.wait_for_load_state("networkidle")
    assert page.input_value("#cloze-text") == "" and asked_for == []


def test_a_subject_in_the_url_is_asked_for_even_when_unknown(live_server: str, page: Any) -> None:
    page.goto(live_server + "/cloze?subject=없는과목&text=" + PAGE)
    page.wait_for_function("document.getElementById('cloze-error').textContent.length > 0")
    assert "unknown subject '없는과목'" in page.inner_text("#cloze-error")
    assert page.input_value("#cloze-subject") == "없는과목"
    assert page.locator("#cloze-result").is_hidden()


@pytest.mark.parametrize("keyed", ["read"], indirect=True)
def test_a_reload_under_protect_reads_keeps_the_subject_listed_later(
    live_server: str, page: Any, client: TestClient, keyed: str
) -> None:
    subject, other = f"한국사-{uuid.uuid4().hex[:8]}", f"과학-{uuid.uuid4().hex[:8]}"
    for name in (subject, other):
        r = client.post("/keywords/subjects", json={"name": name}, headers={"X-API-Key": PAGE_KEY})
        assert r.status_code == 201
    page.goto(live_server + "/cloze")
    type_key(page)
    page.wait_for_function(
        "name => [...document.querySelectorAll('#cloze-subject option')].some(o => o.value === name)",
        arg=subject,
    )
    page.select_option("#cloze-subject", subject)
    page.fill("#cloze-text", PAGE)
    page.click("#cloze-submit")
    page.wait_for_selector("#cloze-result:not([hidden])")
    # The page comes without the list; the key (kept for the tab) loads it, then the worksheet is made.
    with page.expect_request("**/keywords/cloze") as asked:
        page.reload()
    assert asked.value.post_data_json["subject"] == subject
    page.wait_for_selector("#cloze-result:not([hidden])")
    assert page.input_value("#cloze-subject") == subject
    listed = page.eval_on_selector_all("#cloze-subject option", "os => os.map((o) => o.value)")
    assert {subject, other} <= set(listed)  # the whole list, not just the kept one
    assert page.inner_text("#cloze-error") == ""

    # The link opened in a new tab, which has no key yet: refused, then made once the key is typed.
    tab = page.context.new_page()
    tab.goto(page.url)
    tab.wait_for_function("document.getElementById('cloze-error').textContent.length > 0")
    assert "API key" in tab.inner_text("#cloze-error") and tab.locator("#cloze-result").is_hidden()
    with tab.expect_request("**/keywords/cloze") as asked:
        type_key(tab)
    assert asked.value.post_data_json["subject"] == subject
    tab.wait_for_selector("#cloze-result:not([hidden])")
    assert tab.inner_text("#cloze-error") == "" and tab.input_value("#cloze-subject") == subject


def test_a_slow_reading_of_an_older_photo_never_replaces_the_newer_one(
    live_server: str, page: Any, tmp_path: Path
) -> None:
    """Photo A read slowly, photo B chosen and read meanwhile: A's answer came last and replaced B's
    text. The button also stays disabled while a reading is under way (a second click read twice)."""
    held: list[Any] = []
    page.route("**/keywords/ocr", lambda route: held.append(route))
    page.goto(live_server + "/cloze")
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    for f in (first, second):
        f.write_bytes((DATA / "page_ko.png").read_bytes())
    page.set_input_files("#cloze-image", str(first))
    page.click("#cloze-ocr")
    page.wait_for_function("document.getElementById('cloze-status').textContent === 'Reading the photo…'")
    assert page.locator("#cloze-ocr").is_disabled()
    page.set_input_files("#cloze-image", str(second))  # a new photo: the button reads it
    assert page.locator("#cloze-ocr").is_enabled()
    page.click("#cloze-ocr")
    for _ in range(50):
        if len(held) == 2:
            break
        page.wait_for_timeout(100)
    assert len(held) == 2
    ocr = lambda text: json.dumps({"text": text, "chars": len(text)})  # noqa: E731
    held[1].fulfill(status=200, content_type="application/json", body=ocr("새 사진의 글"))
    page.wait_for_function("document.getElementById('cloze-text').value === '새 사진의 글'")
    assert page.locator("#cloze-ocr").is_enabled()
    held[0].fulfill(status=200, content_type="application/json", body=ocr("옛 사진의 글"))  # A, last
    page.wait_for_timeout(300)
    assert page.input_value("#cloze-text") == "새 사진의 글"
    assert page.inner_text("#cloze-status") == "Read 7 characters from the photo."


def test_a_reading_for_an_overtaken_worksheet_leaves_the_pasted_text(
    live_server: str, page: Any, tmp_path: Path
) -> None:
    """ "Make blanks" with only a photo reads it first; text pasted and "Make blanks" pressed again
    meanwhile made its worksheet, and then the slow reading replaced the pasted text, pushed a
    history entry for it and left the status at "Weighing words…"."""
    held: list[Any] = []
    page.route("**/keywords/ocr", lambda route: held.append(route))
    page.goto(live_server + "/cloze")
    photo = tmp_path / "page.png"
    photo.write_bytes((DATA / "page_ko.png").read_bytes())
    page.set_input_files("#cloze-image", str(photo))
    page.click("#cloze-submit")  # no text: the photo is read first (held)
    page.wait_for_function("document.getElementById('cloze-status').textContent === 'Reading the photo…'")
    page.fill("#cloze-text", PAGE)
    with page.expect_response("**/keywords/cloze"):
        page.click("#cloze-submit")
    page.wait_for_selector("#cloze-result:not([hidden])")
    url, entries, status = page.url, page.evaluate("history.length"), page.inner_text("#cloze-status")
    held[0].fulfill(
        status=200, content_type="application/json", body=json.dumps({"text": "사진 글", "chars": 4})
    )
    page.wait_for_timeout(500)
    assert page.input_value("#cloze-text") == PAGE
    assert (page.url, page.evaluate("history.length"), page.inner_text("#cloze-status")) == (
        url,
        entries,
        status,
    )


def test_one_blank_is_not_plural(live_server: str, page: Any) -> None:
    one = {
        "segments": [{"text": "구석기 "}, {"blank": 1}],
        "blanks": [{"number": 1, "answer": "시대", "term": "시대", "weight": 1.0}],
        "candidates": 1,
    }
    page.route(
        "**/keywords/cloze",
        lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(one)),
    )
    page.goto(live_server + "/cloze")
    page.fill("#cloze-text", "구석기 시대")
    page.click("#cloze-submit")
    page.wait_for_selector("#cloze-result:not([hidden])")
    assert page.inner_text("#cloze-status") == "1 blank out of 1 candidate word."


def test_back_and_forward_return_to_earlier_worksheets(live_server: str, page: Any) -> None:
    """Worksheets replaced the history entry: Back left the page instead of going to the one before."""
    first, second = PAGE, "조선 시대에는 훈민정음을 만들었다. 세종은 집현전을 두었다."
    page.goto(live_server + "/cloze")
    for text in (first, second):
        page.fill("#cloze-text", text)
        with page.expect_response("**/keywords/cloze"):
            page.click("#cloze-submit")
    page.wait_for_selector("#cloze-result:not([hidden])")
    with page.expect_request("**/keywords/cloze") as asked:
        page.go_back()
    assert asked.value.post_data_json["text"] == first
    page.wait_for_selector("#cloze-result:not([hidden])")
    assert page.input_value("#cloze-text") == first
    with page.expect_request("**/keywords/cloze") as asked:
        page.go_forward()
    assert asked.value.post_data_json["text"] == second
    page.go_back()
    page.go_back()  # the page as opened: an empty form, no worksheet
    page.wait_for_selector("#cloze-result", state="hidden")
    assert page.input_value("#cloze-text") == "" and page.url == live_server + "/cloze"
