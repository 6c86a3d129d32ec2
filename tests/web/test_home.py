import pytest


def test_home_page_lists_features(client):
    r = client.get("/")
    assert r.status_code == 200
    assert "text/html" in r.headers["content-type"]
    for path in ("/feed", "/images", "/cloze", "/sentiment", "/docs"):
        assert f'href="{path}"' in r.text


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
