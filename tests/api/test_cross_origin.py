"""Writes a browser sends from another site's page are refused (403); the service's own pages,
scripts and other servers write as before (security review, session 19: a page on another origin
planted an image through a keyless server with a no-cors multipart POST)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from hanseek.api.state import AppState

ENCODE = {"texts": ["안녕하세요"]}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),  # curl, scripts, other servers
        ({"sec-fetch-site": "same-origin"}, 200),  # the service's own pages and /docs
        ({"sec-fetch-site": "none"}, 200),  # typed into the address bar
        ({"sec-fetch-site": "cross-site"}, 403),
        ({"sec-fetch-site": "same-site"}, 403),  # another port or subdomain is another origin
        ({"origin": "http://localhost"}, 200),  # a browser without Sec-Fetch-Site: Origin vs Host
        ({"origin": "http://evil.example"}, 403),
        ({"origin": "null"}, 403),  # a sandboxed frame or a file:// page
        # Behind proxies (plain HTTP to a LAN name: no Sec-Fetch-Site), as a review found them:
        ({"origin": "http://hanseek.lan", "host": "hanseek.lan:80"}, 200),  # the port added
        ({"origin": "https://example.org", "host": "example.org:443"}, 200),
        ({"origin": "http://hanseek.lan", "host": "127.0.0.1:8880"}, 403),  # Host rewritten...
        (  # ...and the original passed on
            {"origin": "http://hanseek.lan", "host": "127.0.0.1:8880", "x-forwarded-host": "hanseek.lan"},
            200,
        ),
        ({"origin": "http://hanseek.lan:8080", "host": "hanseek.lan"}, 403),  # another port
    ],
)
def test_writes_from_other_origins_are_refused(
    client: TestClient,
    app_state: AppState,
    monkeypatch: pytest.MonkeyPatch,
    headers: dict[str, str],
    status: int,
) -> None:
    monkeypatch.setattr(app_state.settings, "allowed_hosts", ["*"])  # the proxy cases name LAN hosts
    r = client.post("/encode", json=ENCODE, headers=headers)
    assert r.status_code == status, r.text
    if status == 403:
        assert r.headers["content-type"] == "application/problem+json"
        assert "cross-origin" in r.json()["detail"]


def test_reads_from_other_origins_stay_open(client: TestClient) -> None:
    assert client.get("/healthz", headers={"sec-fetch-site": "cross-site"}).status_code == 200


def test_the_openapi_document_declares_the_403_on_every_unsafe_operation(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, ops in paths.items():
        for method, op in ops.items():
            assert ("403" in op["responses"]) == (method.upper() not in ("GET", "HEAD")), (method, path)


@pytest.mark.browser
def test_a_page_on_another_site_cannot_write_through_the_browser(live_server: str, page: Any) -> None:
    """Chromium's own headers: a page served as localhost posting to 127.0.0.1 (another site), as
    the review's attack page did, against the service's own page posting to itself."""
    port = live_server.rsplit(":", 1)[1]
    script = """async (url) => {
        await fetch(url, {method: "POST", mode: "no-cors", body: new FormData()});
    }"""
    page.goto(f"http://localhost:{port}/")
    with page.expect_response(f"{live_server}/keywords/ocr") as foreign:
        page.evaluate(script, f"{live_server}/keywords/ocr")
    assert foreign.value.status == 403

    page.goto(f"{live_server}/")
    with page.expect_response(f"{live_server}/keywords/ocr") as own:
        page.evaluate(script, f"{live_server}/keywords/ocr")
    assert own.value.status == 422  # reached the endpoint: an empty form has no image
