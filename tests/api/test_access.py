"""API-key precedence: X-API-Key is read first; an Authorization: Bearer token only when it is absent.

A wrong X-API-Key must not be rescued by a correct Bearer token sent alongside it (a proxy may add one
header while the client sends the other: the documented rule decides which one counts)."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from hanseek.api.security import presented_key
from tests.fixtures.api import PAGE_KEY


def test_x_api_key_takes_precedence_over_bearer() -> None:
    assert presented_key({"x-api-key": "wrong", "authorization": "Bearer right"}) == "wrong"
    assert presented_key({"x-api-key": "right", "authorization": "Bearer wrong"}) == "right"
    assert presented_key({"authorization": "Bearer right"}) == "right"
    assert presented_key({}) == ""


def test_wrong_x_api_key_with_correct_bearer_is_refused(client: TestClient, keyed: str) -> None:
    name = f"access-{uuid.uuid4().hex[:8]}"
    wrong_first = {"X-API-Key": PAGE_KEY + "x", "Authorization": f"Bearer {PAGE_KEY}"}
    r = client.post("/keywords/subjects", json={"name": name}, headers=wrong_first)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    # The same pair the other way round is accepted: the X-API-Key is the one that counts.
    right_first = {"X-API-Key": PAGE_KEY, "Authorization": f"Bearer {PAGE_KEY}x"}
    r = client.post("/keywords/subjects", json={"name": name}, headers=right_first)
    assert r.status_code == 201, r.text
    client.delete(f"/keywords/subjects/{name}", headers={"X-API-Key": PAGE_KEY})
