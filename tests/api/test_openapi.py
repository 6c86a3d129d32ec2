"""The OpenAPI document describes the errors and the key as the service really answers them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Response
from fastapi.testclient import TestClient
from pydantic import SecretStr

from hanseek.api.app import create_app
from hanseek.api.errors import PROBLEM_JSON
from hanseek.api.openapi import Problem
from hanseek.config import Settings
from tests.fixtures.api import contract_client

HEALTH = {"/healthz", "/readyz"}


def _document(**settings: Any) -> dict[str, Any]:
    # Generating the document needs no database: the app is built, never started.
    return create_app(Settings(**settings)).openapi()


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield method.upper(), path, op


def test_every_error_response_is_a_problem_document() -> None:
    doc = _document()
    assert "HTTPValidationError" not in str(doc)
    assert {"Problem", "ValidationIssue"} <= set(doc["components"]["schemas"])
    errors = 0
    for method, path, op in _operations(doc):
        for status, response in op["responses"].items():
            if status.startswith("4") or (status.startswith("5") and path not in HEALTH):
                errors += 1
                schema = response["content"][PROBLEM_JSON]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path, status)
        if op.get("parameters") or "requestBody" in op:
            assert "422" in op["responses"], (method, path)
        if "requestBody" in op:
            assert "413" in op["responses"], (method, path)
    assert errors > 60


def test_routes_declare_their_own_errors() -> None:
    doc = _document()
    assert "404" in doc["paths"]["/images/{image_id}"]["get"]["responses"]
    assert "404" in doc["paths"]["/users/{user_id}/feed"]["get"]["responses"]
    assert {"404", "503"} <= set(doc["paths"]["/sentiment"]["post"]["responses"])
    assert "503" in doc["paths"]["/keywords/ocr"]["post"]["responses"]
    assert "409" in doc["paths"]["/keywords/subjects/{name}/documents"]["post"]["responses"]
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]


def test_no_key_configured_means_no_security_and_no_401() -> None:
    doc = _document()
    assert "securitySchemes" not in doc["components"]
    assert not [p for _, p, op in _operations(doc) if "401" in op["responses"] or "security" in op]


@pytest.mark.parametrize("protect_reads", [False, True])
def test_key_requirements_follow_the_settings(protect_reads: bool) -> None:
    doc = _document(api_key=SecretStr("k"), protect_reads=protect_reads)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["BearerKey"]["scheme"] == "bearer"
    keyed = {(m, p) for m, p, op in _operations(doc) if "security" in op}
    for method, path, op in _operations(doc):
        assert ("401" in op["responses"]) == ((method, path) in keyed), (method, path)
    assert ("POST", "/posts") in keyed and ("DELETE", "/images/{image_id}") in keyed
    assert not {(m, p) for m, p in keyed if p in HEALTH}
    reads = {("GET", "/images/search"), ("GET", "/users/{user_id}/feed"), ("GET", "/keywords/subjects")}
    assert reads & keyed == (reads if protect_reads else set())


def test_a_real_error_matches_the_declared_schema(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    r = client.post("/sentiment", json={})
    assert r.status_code == 422 and "422" in doc["paths"]["/sentiment"]["post"]["responses"]
    assert r.headers["content-type"] == PROBLEM_JSON
    problem = Problem.model_validate(r.json())
    assert problem.status == 422 and problem.errors and problem.errors[0].loc == ["body", "texts"]
    # A feed route: the image and sentiment tests install their own services before their first
    # request to them, so this module leaves those services unbuilt.
    r = client.get("/users/openapi-test-nobody")
    assert r.status_code == 404 and "404" in doc["paths"]["/users/{user_id}"]["get"]["responses"]
    assert Problem.model_validate(r.json()).detail == "unknown user 'openapi-test-nobody'"


def test_the_test_clients_fail_on_an_undeclared_status() -> None:
    """`contract_client` (every API test's client) holds the service to its document."""
    router = APIRouter()

    @router.get("/pots/list")
    def pots() -> Response:
        return Response(status_code=418)

    @router.get("/pots/{pot_id}", responses={404: {"description": "no pot"}})
    def pot(pot_id: str, status: int = 200) -> Response:
        return Response(status_code=status)

    app = FastAPI()
    app.include_router(router)  # as the service's routers are: nested in the app's route list
    with contract_client(app, Settings()) as c:
        assert c.get("/pots/7", params={"status": 404}).status_code == 404
        with pytest.raises(AssertionError, match=r"GET /pots/\{pot_id\} answered 418, which its OpenAPI"):
            c.get("/pots/7", params={"status": 418})
        with pytest.raises(AssertionError, match="GET /pots/list answered 418"):
            c.get("/pots/list")
        assert c.get("/not-a-route").status_code == 404  # no operation, nothing to check
        assert c.post("/pots/7").status_code == 405
