"""The error handlers: database refusals that reach the edge become problem documents, not 500s."""

from __future__ import annotations

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hanseek.api.errors import install_error_handlers


def _raising(exc: Exception) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("exc", "status", "title"),
    [
        (psycopg.errors.CheckViolation('row for "users" violates check constraint'), 422, "Invalid input"),
        (psycopg.errors.NotNullViolation('null value in column "id"'), 422, "Invalid input"),
        (psycopg.errors.UniqueViolation("duplicate key value violates unique constraint"), 409, "Conflict"),
        (psycopg.errors.ForeignKeyViolation("violates foreign key constraint"), 409, "Conflict"),
        (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), 422, "Invalid input"),
        (RuntimeError("secret internals"), 500, "Internal Server Error"),
    ],
)
def test_database_refusals_are_problem_documents(exc: Exception, status: int, title: str) -> None:
    r = _raising(exc).get("/boom")
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["title"] == title and body["status"] == status
    if status < 500:  # the database's one-line reason helps the client fix the request
        assert str(exc).splitlines()[0] in body["detail"]
    else:  # an unexpected error says nothing about the internals
        assert "secret" not in r.text
    assert "Traceback" not in r.text


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.SerializationFailure("could not serialize access"),
        psycopg.errors.TransactionRollback("transaction rollback"),
    ],
)
def test_a_collision_with_concurrent_writers_is_a_409_to_retry(exc: Exception) -> None:
    r = _raising(exc).get("/boom")
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert "nothing was saved; retry" in r.json()["detail"]
