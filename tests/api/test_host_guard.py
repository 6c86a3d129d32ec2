"""DNS rebinding: requests whose Host names a host the service does not answer to are refused (400),
reads included; IP addresses and localhost always pass, other names as HANSEEK_ALLOWED_HOSTS says."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from hanseek.api.security import host_allowed
from hanseek.api.state import AppState
from hanseek.config import Settings, settings_error_message
from tests.fixtures.api import REBOUND_NAME

ADDRESSES = [
    "127.0.0.1:8000",
    "localhost:8000",
    "LocalHost",
    "app.localhost",
    "[::1]:8000",
    "10.0.0.5",
    "localhost.",
]


@pytest.mark.parametrize("host", [*ADDRESSES, None])
@pytest.mark.parametrize(
    "settings", [Settings(), Settings(host="0.0.0.0"), Settings(allowed_hosts=["feed.example.com"])]
)
def test_addresses_and_localhost_always_pass(settings: Settings, host: str | None) -> None:
    assert host_allowed(settings, host)


@pytest.mark.parametrize(
    ("settings", "host", "allowed"),
    [
        (Settings(), "evil.example:8000", False),  # loopback bind, no list: names other than localhost
        (Settings(), "evil.example.", False),
        (Settings(host="::1"), "evil.example", False),
        (Settings(host="0.0.0.0"), "evil.example", True),  # beyond loopback and no list: any
        (Settings(host="0.0.0.0", allowed_hosts=["feed.example.com"]), "evil.example", False),
        (Settings(allowed_hosts=["feed.example.com"]), "FEED.example.com:443", True),
        (Settings(allowed_hosts=["*.example.com"]), "a.b.example.com", True),
        (Settings(allowed_hosts=["*.example.com"]), "example.com", False),
        (Settings(allowed_hosts=["*.example.com"]), "badexample.com", False),
        (Settings(allowed_hosts=["*"]), "anything.at.all", True),
        (Settings(host="0.0.0.0"), "", False),  # malformed Host values, whatever the rules
        (Settings(host="0.0.0.0"), "127.0.0.1:port", False),
        (Settings(host="0.0.0.0"), "user@127.0.0.1", False),
    ],
)
def test_names_follow_the_rules(settings: Settings, host: str, allowed: bool) -> None:
    assert host_allowed(settings, host) is allowed


@pytest.mark.parametrize(
    ("value", "hosts"),
    [
        ("Feed.example.com, *.lan ,", ["feed.example.com", "*.lan"]),
        ('["a.example", "*"]', ["a.example", "*"]),
        ("[::1], 10.0.0.1", ["[::1]", "10.0.0.1"]),
    ],
)
def test_the_variable_is_comma_separated_or_json(
    monkeypatch: pytest.MonkeyPatch, value: str, hosts: list[str]
) -> None:
    monkeypatch.setenv("HANSEEK_ALLOWED_HOSTS", value)
    assert Settings().allowed_hosts == hosts


@pytest.mark.parametrize("value", ["http://feed.example.com", "feed.example.com:443", "a b", "*example.com"])
def test_an_entry_that_is_not_a_name_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("HANSEEK_ALLOWED_HOSTS", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = settings_error_message(caught.value)
    assert (
        message.startswith("invalid setting: HANSEEK_ALLOWED_HOSTS:")
        and "without scheme, port or path" in message
    )


@pytest.mark.parametrize("path", ["/healthz", "/", "/docs", "/users"])
def test_a_rebound_name_is_refused_on_reads_too(client: TestClient, path: str) -> None:
    r = client.get(path, headers={"host": "evil.example:8000"})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "'evil.example:8000'" in r.json()["detail"] and "HANSEEK_ALLOWED_HOSTS" in r.json()["detail"]
    assert client.get(path, headers={"host": "127.0.0.1:8000"}).status_code == 200


def test_a_listed_name_is_answered(
    client: TestClient, app_state: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_state.settings, "allowed_hosts", ["hanseek.example"])
    assert client.get("/healthz", headers={"host": "hanseek.example"}).status_code == 200
    assert client.get("/healthz", headers={"host": "other.example"}).status_code == 400


def test_the_openapi_document_declares_the_400_on_every_operation(client: TestClient) -> None:
    for path, ops in client.get("/openapi.json").json()["paths"].items():
        for method, op in ops.items():
            assert "400" in op["responses"], (method, path)


@pytest.mark.browser
def test_chromium_on_a_name_resolved_to_loopback_is_refused(live_server: str, page: Any) -> None:
    """The attack's last step in a real browser: a name (mapped to 127.0.0.1 by the browser's resolver
    rules, as the attacker's DNS would) loads the service, with the name in Host."""
    port = live_server.rsplit(":", 1)[1]
    rebound = page.goto(f"http://{REBOUND_NAME}:{port}/")
    assert rebound is not None and rebound.status == 400
    assert "HANSEEK_ALLOWED_HOSTS" in rebound.text()
    own = page.goto(f"http://localhost:{port}/")
    assert own is not None and own.status == 200
