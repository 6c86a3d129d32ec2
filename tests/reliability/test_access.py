"""Access control, enumerated from the OpenAPI schema so endpoints added later are covered too.

With HANSEEK_API_KEY set: every non-GET operation needs the key, except POSTs with a path segment that
names a read-only computation (COMPUTE_SEGMENTS, e.g. /encode, /images/search, /keywords/weights/batch:
they send data to be *computed on*, and store nothing); those, and every GET, need it exactly when
protect_reads is on.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from hanseek.api.openapi import api_routes
from hanseek.api.security import key_matches, route_access
from hanseek.api.state import AppState

from .conftest import API_KEY

# A POST under one of these computes an answer from its input and writes nothing. Adding a
# segment here is a security decision: it lets the endpoint run without the key when reads are open.
COMPUTE_SEGMENTS = frozenset(
    {
        "encode",
        "search",
        "weights",
        "cloze",
        "ocr",
        "predict",
        "classify",
        "analyze",
        "embed",
        "score",
        "sentiment",
    }
)
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


def operations(app: Any) -> list[tuple[str, str, dict[str, Any]]]:
    ops = []
    for path, item in app.openapi()["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                ops.append((method.upper(), path, op))
    return ops


def concrete(path: str, op: dict[str, Any]) -> str:
    """The path with sample values: integer ids as 1, anything else as a plain word."""
    types = {
        p["name"]: p.get("schema", {}).get("type") for p in op.get("parameters", []) if p.get("in") == "path"
    }
    return re.sub(r"\{(\w+)\}", lambda m: "1" if types.get(m.group(1)) == "integer" else "x", path)


def is_compute(method: str, path: str) -> bool:
    static = {seg for seg in path.strip("/").split("/") if not seg.startswith("{")}
    return method == "POST" and bool(static & COMPUTE_SEGMENTS)


@pytest.fixture()
def protect_reads(rel_state: AppState) -> Iterator[None]:
    rel_state.settings.protect_reads = True
    try:
        yield
    finally:
        rel_state.settings.protect_reads = False


def _send(client: TestClient, method: str, url: str, **kw: Any) -> Any:
    # An empty JSON body: enough to reach the auth check, nothing a handler could store.
    if method in ("POST", "PUT", "PATCH"):
        kw.setdefault("json", {})
    return client.request(method, url, **kw)


def test_schema_has_write_operations(rel_app: Any) -> None:
    writes = [(m, p) for m, p, _ in operations(rel_app) if m != "GET" and not is_compute(m, p)]
    # encode + at least one feature's writes: an empty enumeration would make the checks below vacuous.
    assert len(writes) >= 3, writes


def test_every_write_operation_requires_the_key(rel_app: Any, rel_client: TestClient) -> None:
    failures = []
    for method, path, op in operations(rel_app):
        if method == "GET" or is_compute(method, path):
            continue
        url = concrete(path, op)
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": f"Bearer {API_KEY}x"}):
            r = _send(rel_client, method, url, headers=headers)
            if r.status_code != 401 or r.headers["content-type"] != "application/problem+json":
                failures.append(f"{method} {path} with {sorted(headers)}: {r.status_code}")
    assert not failures, "write endpoints answering without a valid key:\n" + "\n".join(failures)


def test_write_routes_declare_the_write_dependency(rel_app: Any) -> None:
    """The same rule read from the routes themselves (catches a write route using require_read_key)."""
    checked, bad = 0, []
    for route in api_routes(rel_app.routes):
        methods = getattr(route, "methods", None) or set()
        if not getattr(route, "include_in_schema", False):
            continue
        for method in methods - {"GET", "HEAD"}:
            checked += 1
            if not is_compute(method, route.path) and route_access(route) != "write":
                bad.append(f"{method} {route.path}: {route_access(route)}")
    assert checked >= 3
    assert not bad, bad


def test_the_key_opens_write_operations(rel_app: Any, rel_client: TestClient) -> None:
    for method, path, op in operations(rel_app):
        if method == "GET" or is_compute(method, path):
            continue
        url = concrete(path, op)
        for headers in ({"X-API-Key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"}):
            r = _send(rel_client, method, url, headers=headers)
            assert r.status_code != 401, (method, path, r.text)
            assert r.status_code < 500, (method, path, r.status_code, r.text)


def test_reads_are_open_by_default(rel_app: Any, rel_client: TestClient) -> None:
    for method, path, op in operations(rel_app):
        if method == "GET" or is_compute(method, path):
            r = _send(rel_client, method, concrete(path, op))
            assert r.status_code != 401, (method, path)


def test_protect_reads_covers_every_operation(
    rel_app: Any, rel_client: TestClient, protect_reads: None
) -> None:
    failures = []
    for method, path, op in operations(rel_app):
        if path in OPEN_PATHS:
            continue
        r = _send(rel_client, method, concrete(path, op))
        if r.status_code != 401:
            failures.append(f"{method} {path}: {r.status_code}")
    assert not failures, "operations answering without the key under protect_reads:\n" + "\n".join(failures)
    for path in OPEN_PATHS:  # probes of load balancers carry no key
        assert rel_client.get(path).status_code == 200


def test_protect_reads_accepts_the_key(rel_app: Any, authed_client: TestClient, protect_reads: None) -> None:
    for method, path, op in operations(rel_app):
        if method == "GET":
            r = authed_client.get(concrete(path, op))
            assert r.status_code != 401, path
            assert r.status_code < 500, (path, r.status_code, r.text)


def test_refused_before_the_body_is_read(rel_client: TestClient) -> None:
    """An unauthenticated upload is refused without parsing it: a malformed body still gets 401
    (not 422, which would mean the server read and parsed it)."""
    r = rel_client.post("/posts", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 401
    r = rel_client.post(
        "/images", content=b"--b\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("ApiKey")


def test_401_does_not_echo_the_presented_key(rel_client: TestClient) -> None:
    guess = "guess-" + API_KEY[:8]
    r = rel_client.delete("/posts/x", headers={"X-API-Key": guess})
    assert r.status_code == 401
    assert guess not in r.text and API_KEY not in r.text
    assert json.loads(r.text)["title"] == "Unauthorized"


def test_empty_key_setting_means_no_key(rel_state: AppState, rel_client: TestClient) -> None:
    saved = rel_state.settings.api_key
    rel_state.settings.api_key = SecretStr("")
    try:
        r = rel_client.delete("/posts/does-not-exist")
        assert r.status_code == 404  # reached the handler: an empty key protects nothing, and says so
    finally:
        rel_state.settings.api_key = saved


def test_comparison_is_constant_time() -> None:
    """`key_matches` compares SHA-256 digests with hmac.compare_digest: equal-length inputs whatever
    the guess, so neither the key's length nor a matching prefix changes the work done."""
    key = SecretStr("k" * 40)
    assert key_matches("k" * 40, key)
    assert not key_matches("k" * 39, key) and not key_matches("", key) and not key_matches("k" * 41, key)

    def timed(guess: str) -> float:
        # The fastest of many rounds: other processes on a shared machine only ever add time.
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter_ns()
            for _ in range(2000):
                key_matches(guess, key)
            best = min(best, time.perf_counter_ns() - t)
        return best

    # Coarse by necessity: a byte-by-byte compare that stopped at the first difference would make
    # the all-wrong guess measurably cheaper than the 39-correct-bytes one. Interleaved rounds.
    near = far = float("inf")
    for _ in range(6):
        near, far = min(near, timed("k" * 39 + "x")), min(far, timed("x" * 40))
    assert 0.5 < near / far < 2.0
