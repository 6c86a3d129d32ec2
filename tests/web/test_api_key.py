"""The pages' shared API-key field: shown only when the server has a key, sent by every page, and
under protect_reads nothing the read API would refuse is in a page's HTML."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.api import PAGE_KEY, type_key

PAGES = ("/", "/feed", "/images", "/cloze", "/sentiment")
# What a page says to its user for a 401, instead of the API's detail about HTTP headers.
KEY_MESSAGE = "Type the API key in the field at the top — it is missing or wrong."
TEXT = (
    "구석기 시대 사람들은 뗀석기로 사냥을 하였다. 신석기 시대에는 빗살무늬토기를 만들었고, 농경을 시작하였다."
)


def test_no_key_field_when_the_server_has_no_key(client: TestClient) -> None:
    for path in PAGES:
        r = client.get(path)
        assert r.status_code == 200, path
        assert 'data-key-mode="none"' in r.text and 'id="api-key"' not in r.text, path


def test_one_key_field_on_every_page_when_the_server_has_a_key(client: TestClient, keyed: str) -> None:
    hint = "needed for everything" if keyed == "read" else "needed to add or change"
    for path in PAGES:
        r = client.get(path)  # the pages themselves open without the key: it is typed into them
        assert r.status_code == 200, path
        assert f'data-key-mode="{keyed}"' in r.text, path
        assert r.text.count('id="api-key"') == 1 and hint in r.text, path


@pytest.fixture()
def subject(client: TestClient) -> Iterator[str]:
    name = f"한국사-{uuid.uuid4().hex[:8]}"
    auth = {"X-API-Key": PAGE_KEY}  # ignored when the server has no key
    r = client.post("/keywords/subjects", json={"name": name}, headers=auth)
    assert r.status_code == 201, r.text
    yield name
    client.delete(f"/keywords/subjects/{name}", headers=auth)


def test_protect_reads_keeps_names_out_of_the_pages(client: TestClient, subject: str, keyed: str) -> None:
    page = client.get("/cloze").text
    if keyed == "write":
        assert subject in page  # reads are open: the page lists the subjects itself
    else:
        assert subject not in page
        # ...while the API gives them to a client with the key, which is what the page's script asks.
        names = [s["name"] for s in client.get("/keywords/subjects", headers={"X-API-Key": PAGE_KEY}).json()]
        assert subject in names


@pytest.mark.browser
@pytest.mark.parametrize("keyed", ["read"], indirect=True)
def test_cloze_page_under_protect_reads(live_server: str, page: Any, subject: str, keyed: str) -> None:
    page.goto(live_server + "/cloze")
    assert page.locator(f"#cloze-subject option[value='{subject}']").count() == 0
    page.fill("#cloze-text", TEXT)
    page.click("#cloze-submit")
    page.wait_for_function("document.getElementById('cloze-error').textContent.length > 0")
    assert page.inner_text("#cloze-error") == KEY_MESSAGE  # no HTTP header names for a page user

    type_key(page)
    page.wait_for_selector(f"#cloze-subject option[value='{subject}']", state="attached")
    page.click("#cloze-submit")
    page.wait_for_selector("#cloze-result:not([hidden])")
    assert page.inner_text("#cloze-error") == ""

    # The key follows the tab to the next page.
    page.goto(live_server + "/feed")
    assert page.input_value("#api-key") == PAGE_KEY


@pytest.mark.browser
@pytest.mark.parametrize("keyed", ["read"], indirect=True)
def test_a_wrong_key_is_reported_not_hidden(live_server: str, page: Any, keyed: str) -> None:
    page.goto(live_server + "/cloze")
    type_key(page, "wrong")
    page.fill("#cloze-text", TEXT)
    page.click("#cloze-submit")
    page.wait_for_function("document.getElementById('cloze-error').textContent.length > 0")
    assert page.inner_text("#cloze-error") == KEY_MESSAGE
    assert page.locator("#cloze-result").is_hidden()


@pytest.mark.browser
@pytest.mark.parametrize("keyed", ["read"], indirect=True)
def test_a_late_subject_list_leaves_newer_messages_alone(
    live_server: str, page: Any, subject: str, keyed: str
) -> None:
    held: list[Any] = []

    def hold(route: Any) -> None:  # answer the list only when the test says so
        held.append(route)

    page.route("**/keywords/subjects", hold)
    page.goto(live_server + "/cloze")
    type_key(page)
    for _ in range(50):  # the handler runs while the test waits on Playwright
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "typing the key should ask for the subjects"
    page.click("#cloze-submit")  # empty text: the page's message
    page.wait_for_function("document.getElementById('cloze-error').textContent.length > 0")
    held[0].continue_()
    page.wait_for_selector(f"#cloze-subject option[value='{subject}']", state="attached")
    assert page.inner_text("#cloze-error") == "Paste a page, or choose a photo of one."


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 375])
def test_the_key_field_shows_its_whole_hint(live_server: str, browser: Any, keyed: str, width: int) -> None:
    """The placeholder was cut off ("needed for everyth"): the field was 14 characters wide."""
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    try:
        page.goto(live_server + "/images")
        fits = page.eval_on_selector(
            "#api-key",
            """i => { const s = getComputedStyle(i);
                const c = document.createElement("canvas").getContext("2d");
                c.font = s.font;
                const room = i.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
                return [c.measureText(i.placeholder).width, room]; }""",
        )
        assert fits[0] <= fits[1], fits
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        context.close()


# "sesame" typed with the Korean input method on.
KOREAN_KEY = "ㄴㄷㄴ믇"


@pytest.mark.browser
@pytest.mark.parametrize("keyed", ["write"], indirect=True)
def test_a_key_typed_in_korean_is_refused_at_the_field(live_server: str, page: Any, keyed: str) -> None:
    """fetch() throws on a header with Hangul in it: such a key broke every request of every page,
    reads that need no key included, until the tab was closed."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(live_server + "/cloze")
    type_key(page, KOREAN_KEY)
    page.wait_for_selector("#api-key-error:not([hidden])")
    assert "Korean keyboard" in page.inner_text("#api-key-error")
    assert page.get_attribute("#api-key", "aria-invalid") == "true"
    assert page.evaluate("sessionStorage.getItem('hanseek-key')") is None
    page.fill("#cloze-text", TEXT)  # a read: it needs no key and must still work
    page.click("#cloze-submit")
    page.wait_for_selector("#cloze-result:not([hidden])")
    assert page.inner_text("#cloze-error") == ""

    type_key(page)  # the right key clears the message and is kept
    page.wait_for_selector("#api-key-error", state="hidden")
    assert page.evaluate("sessionStorage.getItem('hanseek-key')") == PAGE_KEY
    assert errors == []


@pytest.mark.browser
@pytest.mark.parametrize("keyed", ["write"], indirect=True)
def test_a_stored_unusable_key_is_dropped(live_server: str, page: Any, keyed: str) -> None:
    """A key stored before keys were checked must not break the next page's requests."""
    page.goto(live_server + "/cloze")
    page.evaluate(f"sessionStorage.setItem('hanseek-key', '{KOREAN_KEY}')")
    page.goto(live_server + "/cloze")
    assert page.input_value("#api-key") == ""
    assert page.evaluate("sessionStorage.getItem('hanseek-key')") is None
    page.fill("#cloze-text", TEXT)
    page.click("#cloze-submit")
    page.wait_for_selector("#cloze-result:not([hidden])")
    assert page.inner_text("#cloze-error") == ""
