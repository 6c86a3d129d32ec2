"""HEAD on pages and GET endpoints: the GET's status and headers, no body (was a 405 until session 18)."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("path", ["/", "/healthz", "/readyz", "/images", "/feed", "/openapi.json"])
def test_head_is_the_get_without_its_body(client: TestClient, path: str) -> None:
    get, head = client.get(path), client.head(path)
    assert get.status_code == 200 and head.status_code == 200, head.text
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == str(len(get.content))


def test_head_keeps_the_gets_errors_and_refuses_what_get_does(client: TestClient) -> None:
    missing = client.head("/no/such/page")
    assert missing.status_code == 404 and missing.content == b""
    post_only = client.head("/encode")
    assert post_only.status_code == 405 and "POST" in post_only.headers["allow"]


def test_head_over_a_real_server(live_server: str) -> None:
    """uvicorn itself, as `curl -I` meets it: headers and a complete (empty) answer."""
    with httpx.Client(base_url=live_server, timeout=30) as http:
        get, head = http.get("/images"), http.head("/images")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == get.headers["content-length"]
        assert http.get("/healthz").status_code == 200  # the connection is still usable after it
