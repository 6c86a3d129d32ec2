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
