from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hanseek.api.app import create_app
from hanseek.config import Settings


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_checks_database(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["database"] is True


def test_openapi_and_docs(client):
    assert client.get("/openapi.json").json()["info"]["title"] == "hanseek"
    assert client.get("/docs").status_code == 200


def test_unknown_path_is_problem_json(client):
    r = client.get("/no/such/thing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 404


def test_oversized_body_is_413(client, app_state):
    limit = app_state.settings.max_body_bytes
    r = client.post("/encode", content=b"x" * (limit + 1), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "limit" in r.json()["detail"]


def test_malformed_json_is_422_not_500(client):
    r = client.post("/encode", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "Traceback" not in r.text


def test_malformed_multipart_is_422_like_malformed_json(client):
    # Starlette answers these with a 400, a status no operation declares; bad input here is a 422.
    for content_type, body in (
        ("multipart/form-data", b"--x\r\n"),  # no boundary parameter
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\nhi\r\n--x--\r\n"),
    ):
        r = client.post("/keywords/ocr", content=body, headers={"content-type": content_type})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"].startswith("The body could not be read: ")


def test_a_failed_start_closes_the_database_it_opened(
    scratch_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hanseek.store.db import Database

    closed: list[bool] = []
    real_close = Database.close

    def boom(self: Database) -> list[str]:
        raise RuntimeError("migration failed")

    def close(self: Database) -> None:
        closed.append(True)
        real_close(self)

    monkeypatch.setattr(Database, "migrate", boom)
    monkeypatch.setattr(Database, "close", close)
    with pytest.raises(RuntimeError, match="migration failed"), TestClient(create_app(scratch_settings)):
        pass
    assert closed == [True]
