import re
from collections.abc import Sequence
from typing import Any

import pytest


def test_home_page_lists_features(client):
    r = client.get("/")
    assert r.status_code == 200
    assert "text/html" in r.headers["content-type"]
    for path in ("/feed", "/images", "/cloze", "/sentiment", "/docs"):
        assert f'href="{path}"' in r.text


def test_a_mistyped_page_address_is_a_page_and_api_clients_still_get_problems(client):
    page = client.get("/Feed", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "Page not found" in page.text and 'href="/"' in page.text and "/Feed" in page.text
    assert "<title>Page not found · hanseek</title>" in page.text
    # An API client (no HTML in Accept), and a 404 that a route itself raised, stay problem+json.
    api = client.get("/Feed")
    assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"
    raised = client.get("/users/no-such-user-404", headers={"Accept": "text/html"})
    assert raised.status_code == 404 and raised.headers["content-type"] == "application/problem+json"


@pytest.mark.browser
def test_home_page_in_chromium(live_server, page):
    page.goto(live_server + "/")
    assert page.title() == "hanseek"
    assert page.locator("h1").inner_text() == "hanseek"
    cards = page.locator(".card h2").all_inner_texts()
    assert "Feed" in cards and "Sentiment" in cards
    page.click("text=API")
    page.wait_for_url("**/docs")
    assert "hanseek" in page.title()


@pytest.mark.browser
@pytest.mark.parametrize("path", ["/", "/feed", "/images", "/cloze", "/sentiment"])
def test_pages_fit_a_phone_and_log_no_errors(live_server, browser, path):
    """At 375 px nothing scrolls sideways (the header wraps whole links), and loading a page logs
    no console error (there was a 404 for /favicon.ico on every page)."""
    context = browser.new_context(viewport={"width": 375, "height": 800})
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(live_server + path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        for link in page.locator("header nav a").all():
            assert link.evaluate("a => a.getClientRects().length") == 1, link.inner_text()  # not split
        assert errors == []
    finally:
        context.close()


def test_pages_are_english_and_the_nav_marks_the_current_page(client: Any) -> None:
    for path, title in (("/feed", "Feed"), ("/images", "Image search"), ("/cloze", "Blanks (빈칸)")):
        html = client.get(path).text
        assert '<html lang="en">' in html, path  # the interface is English; Korean text says lang="ko"
        current = re.findall(r'<a href="([^"]+)"\s+aria-current="page">([^<]+)</a>', html)
        assert current == [(path, title)], path
    assert "aria-current" not in client.get("/").text


def contrast(rgb_a: Sequence[int], rgb_b: Sequence[int]) -> float:
    def luminance(rgb: Sequence[int]) -> float:
        c = [x / 255 for x in rgb]
        c = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    hi, lo = sorted((luminance(rgb_a), luminance(rgb_b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.browser
@pytest.mark.parametrize("path", ["/images", "/cloze", "/sentiment", "/feed"])
def test_field_borders_stand_out_from_the_page(live_server: str, page: Any, path: str) -> None:
    """Input borders were #d0d5dd on white, 1.47:1; a field's boundary needs 3:1 (WCAG 1.4.11)."""
    page.goto(live_server + path)
    colours = page.eval_on_selector_all(
        "main input:not([type=file]):not([type=checkbox]), main select, main textarea",
        "els => els.map((e) => getComputedStyle(e).borderTopColor)",
    )
    assert colours
    for colour in set(colours):
        rgb = [int(x) for x in re.findall(r"\d+", colour)[:3]]
        assert contrast(rgb, (255, 255, 255)) >= 3 and contrast(rgb, (0xF7, 0xF8, 0xFA)) >= 3, colour
