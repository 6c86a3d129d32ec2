"""Property-based fuzzing of every operation in the OpenAPI schema (schemathesis on hypothesis).

Valid and invalid inputs generated from the schema itself, so every route that exists when the suite
runs is covered, including ones added after this file was written. The property: no 5xx, no
traceback or internal detail in any response, and every status one the operation declares (the
OpenAPI document is the clients' contract). Bounded: MAX_EXAMPLES per operation.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from hanseek.api.app import create_app
from hanseek.config import Settings

from .conftest import API_KEY

MAX_EXAMPLES = int(os.environ.get("HANSEEK_FUZZ_EXAMPLES", "20"))
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
LEAKS = ("Traceback (most recent call last)", 'File "/', "psycopg.", "sqlalchemy", "site-packages")


def _operations() -> list[tuple[str, str]]:
    # The schema of an app that was never started: no database needed to enumerate its routes.
    paths = create_app(Settings()).openapi()["paths"]
    return [(m.upper(), p) for p, item in paths.items() for m in item if m in HTTP_METHODS]


@pytest.fixture(scope="session")
def api_schema(rel_app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", _as_localhost(rel_app))


def _as_localhost(app: Any) -> Any:
    """The app as a browser on this machine addresses it: schemathesis's ASGI client names the host
    "testserver", which the service does not answer to on loopback (security.HostGuard)."""

    async def addressed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"]
            scope = {**scope, "headers": [*headers, (b"host", b"localhost")]}
        await app(scope, receive, send)

    return addressed


def _header(response: Any, name: str) -> str:
    # schemathesis keeps every header as a list of values
    for key, values in response.headers.items():
        if key.lower() == name:
            return str(values[0] if isinstance(values, list) else values)
    return ""


def assert_sane(response: Any, case: Any, sent: set[str]) -> None:
    """`sent`: the leak markers some request of this run carried. Hypothesis draws strings from the
    code's constants, so a request can carry "psycopg." itself; a 404 quoting it back, or a list of
    user ids holding one stored earlier, shows what a client sent, not an internal detail."""
    where = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, f"{where} -> {response.status_code}: {response.text[:2000]}"
    text = response.text
    for leak in LEAKS:
        assert leak not in text or leak in sent, f"{where} leaks {leak!r}: {text[:2000]}"
    if response.status_code >= 400:
        assert _header(response, "content-type").startswith("application/problem+json"), (
            f"{where} -> {response.status_code} is not a problem document: {text[:500]}"
        )
    declared = case.operation.definition.raw.get("responses", {})
    assert str(response.status_code) in declared, (
        f"{where} -> {response.status_code}, which the OpenAPI document does not declare"
        f" ({sorted(declared)}): {text[:300]}"
    )


@pytest.fixture(scope="session")
def sent_markers() -> set[str]:
    return set()


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), _operations())
def test_no_server_errors(api_schema: Any, sent_markers: set[str], method: str, path: str) -> None:
    operation = api_schema.find_operation_by_path(method, path)
    assert operation is not None, f"{method} {path} not in the served schema"
    # Schema-conforming inputs (deep paths through the handlers) and schema-violating ones (the
    # validation layer and everything a sloppy check lets through).
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same inputs every run: a failure is reproducible, not flaky
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failing input is reported
    )
    def fuzz(case: Any) -> None:
        # A generous timeout: a feature's first request may build its service (load a model).
        request = repr((case.formatted_path, case.path_parameters, case.query, case.headers, case.body))
        sent_markers.update(leak for leak in LEAKS if leak in request)
        assert_sane(case.call(headers={"X-API-Key": API_KEY}, timeout=180), case, sent_markers)

    fuzz()
