"""The /cloze page in headless Chromium against the live app."""

from pathlib import Path
from typing import Any

import pytest

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
