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
