"""Hostile input, case by case: every answer is a 4xx problem document (or a correct 2xx), never a 5xx,
never a traceback, and nothing outside the request's own scope changes."""

from __future__ import annotations

import io
import json
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from hanseek.api.app import create_app
from hanseek.api.state import AppState
from tests.fixtures.api import contract_client

from .conftest import API_KEY

SQL_PAYLOADS = (
    "'; DROP TABLE posts; --",
    "x' OR '1'='1",
    '"; DELETE FROM users; --',
    "%_\\%",
    "$1 $$ $$; SELECT pg_sleep(5); --",
    "\\x00' || (SELECT version()) || '",
)
CONTROL = "a\x01b\x07c\x1b[31md\x7fe\u2028f\u202eg\ufeffh"


def vec(seed: int, dim: int = 384) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(dim)
    return (v / np.linalg.norm(v)).astype(np.float32).tolist()


def post(pid: str, community: str = "rel-c", **kw: Any) -> dict[str, Any]:
    body = {
        "id": pid,
        "community": community,
        "title": f"제목 {pid}",
        "body": "본문",
        "created_at": "2024-05-01T12:00:00Z",
        "embedding": vec(hash(pid) % 2**32),
    }
    body.update(kw)
    return body


def assert_problem(r: Any, *statuses: int) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:1000])
    if statuses:
        assert r.status_code in statuses, (r.status_code, r.text[:1000])
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json"), r.text[:500]
        assert "Traceback" not in r.text and "site-packages" not in r.text


def tables(state: AppState) -> set[str]:
    """The public tables (features may add their own at run time, e.g. one per image vector space:
    the check is that none disappears)."""
    with state.db.connection() as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    names = {r[0] for r in rows}
    assert {"posts", "users", "events", "schema_migrations"} <= names
    return names


@pytest.fixture(scope="module")
def small_limit_client(rel_state: AppState) -> Iterator[TestClient]:
    """The same app and database with a 4 KiB body limit."""
    settings = rel_state.settings.model_copy(update={"max_body_bytes": 4096})
    app = create_app(settings, state=rel_state)
    with contract_client(app, settings, headers={"X-API-Key": API_KEY}) as c:
        yield c


# -- size -------------------------------------------------------------------------------------------
def test_declared_oversized_body_is_refused_unread(small_limit_client: TestClient) -> None:
    r = small_limit_client.post("/posts", content=b"x" * 5000, headers={"content-type": "application/json"})
    assert_problem(r, 413)
    assert (
        r.json()["detail"] == "The request is larger than the limit of 4,096 bytes (HANSEEK_MAX_BODY_BYTES)."
    )


def test_chunked_oversized_body_is_413_not_400(small_limit_client: TestClient) -> None:
    """Without Content-Length the body is counted as it streams (this was a 400 'error parsing')."""

    def chunks() -> Iterator[bytes]:
        yield b'{"posts": ['
        for _ in range(100):
            yield b'{"id": "x", "community": "c"},' * 2

    r = small_limit_client.post("/posts", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(r, 413)


def test_bogus_content_length(small_limit_client: TestClient) -> None:
    r = small_limit_client.post("/encode", content=b"{}", headers={"content-length": "-5"})
    assert r.status_code in (400, 413)


def test_default_limit_refuses_17_mb(authed_client: TestClient, rel_state: AppState) -> None:
    size = rel_state.settings.max_body_bytes + 1024
    t = time.perf_counter()
    r = authed_client.post("/posts", content=b" " * size, headers={"content-type": "application/json"})
    assert_problem(r, 413)
    assert time.perf_counter() - t < 10


@pytest.mark.parametrize("n", [1_001, 10_000])
def test_huge_batches_are_refused_whole(authed_client: TestClient, rel_state: AppState, n: int) -> None:
    before = tables(rel_state)
    posts = [post(f"big-{n}-{i}") for i in range(n)]
    t = time.perf_counter()
    r = authed_client.post("/posts", json={"posts": posts})
    assert_problem(r, 413)
    r = authed_client.post(
        "/events", json={"events": [{"user_id": "u", "post_id": f"big-{n}-{i}"} for i in range(n)]}
    )
    assert_problem(r, 413)
    r = authed_client.post("/encode", json={"texts": ["가"] * n})
    assert_problem(r, 413)
    assert time.perf_counter() - t < 60
    with rel_state.db.connection() as conn:
        row = conn.execute("SELECT count(*) FROM posts WHERE id LIKE %s", (f"big-{n}-%",)).fetchone()
    assert row == (0,)
    assert before <= tables(rel_state)


def test_every_array_body_survives_10k_items(rel_app: Any, authed_client: TestClient) -> None:
    """Whatever endpoints exist: a 10k-element array in each array field of each JSON body."""
    spec = rel_app.openapi()
    schemas = spec.get("components", {}).get("schemas", {})
    tried = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref")
            if not ref or "{" in path:
                continue
            props = schemas[ref.rsplit("/", 1)[-1]].get("properties", {})
            for name, prop in props.items():
                if prop.get("type") != "array":
                    continue
                tried += 1
                r = authed_client.request(method.upper(), path, json={name: ["x"] * 10_000})
                assert_problem(r)
    assert tried >= 3


# -- numbers and vectors ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "embedding",
    [
        "[NaN" + ", 0.1" * 383 + "]",
        "[Infinity" + ", 0.1" * 383 + "]",
        "[-Infinity" + ", 0.1" * 383 + "]",
        "[1e999" + ", 0.1" * 383 + "]",
        "[" + ", ".join(["0.1"] * 383) + "]",
        "[" + ", ".join(["0.1"] * 385) + "]",
        "[" + ", ".join(["0.0"] * 384) + "]",
        "[]",
        "[" + ", ".join(["0.1"] * 100_000) + "]",
        '["a"' + ", 0.1" * 383 + "]",
        "[true" + ", 0.1" * 383 + "]",
        "[[0.1]" + ", 0.1" * 383 + "]",
        "[1e308" + ", 1e308" * 383 + "]",
    ],
    ids=[
        "nan",
        "inf",
        "-inf",
        "overflow",
        "383",
        "385",
        "zeros",
        "empty",
        "100k",
        "str",
        "bool",
        "nested",
        "huge",
    ],
)
def test_bad_vectors(authed_client: TestClient, rel_state: AppState, embedding: str) -> None:
    pid = f"vec-{uuid.uuid4().hex[:8]}"
    raw = (
        f'{{"posts": [{{"id": "{pid}", "community": "rel-c", "title": "t", '
        f'"created_at": "2024-05-01T00:00:00Z", "embedding": {embedding}}}]}}'
    )
    r = authed_client.post("/posts", content=raw.encode(), headers={"content-type": "application/json"})
    if r.status_code == 200:
        # Only finite, right-sized, non-zero vectors may be stored; and then they must be finite there.
        with rel_state.db.connection() as conn:
            row = conn.execute("SELECT embedding FROM posts WHERE id = %s", (pid,)).fetchone()
        assert row is not None
        stored = np.asarray(row[0].to_list() if hasattr(row[0], "to_list") else row[0], dtype=np.float64)
        assert stored.shape == (384,) and np.isfinite(stored).all()
    else:
        assert_problem(r, 413, 422)


@pytest.mark.parametrize("k", ["-1", "0", "201", "1000000", "9223372036854775808", "1e3", "abc", ""])
def test_bad_k(authed_client: TestClient, k: str) -> None:
    for url in (f"/users/u/feed?k={k}", f"/feeds/latest?community=rel-c&k={k}", f"/images/search?q=a&k={k}"):
        assert_problem(authed_client.get(url), 404, 422)


@pytest.mark.parametrize("days", ["-1", "0", "100000", "999999999999999999999", "1.5", "x", "all;--"])
def test_bad_window(authed_client: TestClient, days: str) -> None:
    assert_problem(authed_client.get(f"/feeds/latest?community=rel-c&days={days}"), 422)
    assert_problem(authed_client.get(f"/users/u/feed?days={days}"), 404, 422)


@pytest.mark.parametrize(
    "params", ["limit=-1", "limit=0", "limit=100000", "offset=-1", "offset=9223372036854775807"]
)
def test_bad_paging(authed_client: TestClient, params: str) -> None:
    assert_problem(authed_client.get(f"/images/list?{params}"))
    assert_problem(authed_client.get(f"/users?{params}"))


def test_valid_extremes_still_work(authed_client: TestClient) -> None:
    r = authed_client.post("/posts", json={"posts": [post("extreme-1")]})
    assert r.status_code == 200, r.text
    r = authed_client.get("/feeds/latest?community=rel-c&k=200&days=all")
    assert r.status_code == 200, r.text
    assert any(item["id"] == "extreme-1" for item in r.json()["items"])
    r = authed_client.get("/feeds/latest?community=rel-c&k=1&days=1&at=2024-05-01T13:00:00Z")
    assert r.status_code == 200 and [i["id"] for i in r.json()["items"]] == ["extreme-1"]


@pytest.mark.parametrize(
    "at",
    ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1970-01-01T00:00:00+14:00", "2024-02-30T00:00:00Z"],
)
def test_extreme_dates(authed_client: TestClient, at: str) -> None:
    assert_problem(authed_client.get("/feeds/latest", params={"community": "rel-c", "at": at}))
    assert_problem(authed_client.post("/posts", json={"posts": [post(f"date-{at[:4]}", created_at=at)]}))
    assert_problem(
        authed_client.post(
            "/events", json={"events": [{"user_id": "u-date", "post_id": "extreme-1", "at": at}]}
        )
    )


# -- text -------------------------------------------------------------------------------------------
def test_invalid_utf8_body(authed_client: TestClient) -> None:
    for path in ("/posts", "/events", "/encode", "/keywords/weights"):
        r = authed_client.post(
            path, content=b'{"texts": ["\xff\xfe\xc3\x28"]}', headers={"content-type": "application/json"}
        )
        # Was FastAPI's bare "400 There was an error parsing the body", a status no operation declares.
        assert_problem(r, 422)
        assert r.json()["detail"] == "The body is not JSON text: it is not valid UTF-8."
    # UTF-16 with its byte order mark is JSON text too (RFC 8259 asks for UTF-8; Python reads both).
    body = '{"texts": ["서울"]}'.encode("utf-16")
    r = authed_client.post("/encode", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text


def test_lone_surrogates(authed_client: TestClient) -> None:
    # Valid JSON escapes that decode to a Python str PostgreSQL cannot store.
    raw = post("sur-\\ud800")
    body = json.dumps({"posts": [raw]}).replace("\\\\ud800", "\\ud800")
    r = authed_client.post("/posts", content=body.encode(), headers={"content-type": "application/json"})
    assert_problem(r, 422)
    r = authed_client.post(
        "/encode", content=b'{"texts": ["\\udc00 abc"]}', headers={"content-type": "application/json"}
    )
    assert_problem(r)


def test_nul_and_control_characters(authed_client: TestClient, rel_state: AppState) -> None:
    r = authed_client.post("/posts", json={"posts": [post("nul\x00id")]})
    assert_problem(r, 422)
    r = authed_client.post("/posts", json={"posts": [post("ctl-1", title=f"t\x00{CONTROL}")]})
    assert_problem(r, 422)
    r = authed_client.post("/events", json={"events": [{"user_id": "u\x00", "post_id": "extreme-1"}]})
    assert_problem(r, 422)
    r = authed_client.get("/users/a%00b")
    assert_problem(r, 404, 422)
    # Control characters other than NUL are legitimate text: stored and returned verbatim.
    r = authed_client.post("/posts", json={"posts": [post("ctl-2", title=CONTROL)]})
    assert r.status_code == 200, r.text
    with rel_state.db.connection() as conn:
        assert conn.execute("SELECT title FROM posts WHERE id = 'ctl-2'").fetchone() == (CONTROL,)


@pytest.mark.parametrize("payload", SQL_PAYLOADS)
def test_sql_metacharacters_round_trip(authed_client: TestClient, rel_state: AppState, payload: str) -> None:
    before = tables(rel_state)
    pid = f"sql {payload}"
    user = f"user {payload}"
    community = f"c {payload}"
    r = authed_client.post(
        "/posts", json={"posts": [post(pid, community=community, title=payload, author=payload)]}
    )
    assert r.status_code == 200, r.text
    r = authed_client.put(f"/users/{_q(user)}/memberships", json={"communities": [community]})
    assert r.status_code == 200, r.text
    r = authed_client.post(
        "/events", json={"events": [{"user_id": user, "post_id": pid, "kind": "like", "id": payload}]}
    )
    assert r.status_code == 200, r.text
    r = authed_client.get(f"/users/{_q(user)}")
    assert r.status_code == 200 and r.json()["id"] == user and r.json()["communities"] == [community]
    r = authed_client.get("/feeds/latest", params={"community": community, "days": "all"})
    assert r.status_code == 200, r.text
    assert [(i["id"], i["title"], i["author"]) for i in r.json()["items"]] == [(pid, payload, payload)]
    for url in (
        f"/users/{_q(payload)}/feed",
        f"/keywords/subjects/{_q(payload)}",
        f"/images/search?q={_q(payload)}",
    ):
        assert_problem(authed_client.get(url))
    assert_problem(authed_client.post("/keywords/weights", json={"text": payload}))
    assert_problem(authed_client.delete(f"/posts/{_q(payload)}"), 404)
    assert before <= tables(rel_state)
    with rel_state.db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM posts WHERE id = %s", (pid,)).fetchone() == (1,)


def test_sql_metacharacters_in_every_string_field(
    rel_app: Any, authed_client: TestClient, rel_state: AppState
) -> None:
    """Generic: each JSON body's string fields (per its schema) and each string path parameter set to
    a payload, on every operation that exists."""
    spec = rel_app.openapi()
    schemas = spec.get("components", {}).get("schemas", {})
    before = tables(rel_state)
    sent = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            url = path
            for p in op.get("parameters", []):
                if p.get("in") == "path":
                    typ = p.get("schema", {}).get("type")
                    url = url.replace("{" + p["name"] + "}", "1" if typ == "integer" else _q(SQL_PAYLOADS[0]))
            params = {
                p["name"]: SQL_PAYLOADS[1]
                for p in op.get("parameters", [])
                if p.get("in") == "query" and p.get("schema", {}).get("type") == "string"
            }
            content = op.get("requestBody", {}).get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref")
            body = None
            if ref:
                props = schemas[ref.rsplit("/", 1)[-1]].get("properties", {})
                body = {name: _payload_for(prop) for name, prop in props.items()}
            r = authed_client.request(method.upper(), url, params=params, json=body)
            assert_problem(r)
            sent += 1
    assert sent >= 10
    assert before <= tables(rel_state)


def _payload_for(prop: dict[str, Any]) -> Any:
    if prop.get("type") == "array":
        return [SQL_PAYLOADS[2]]
    return SQL_PAYLOADS[3] if prop.get("type") in ("string", None) else prop.get("default")


def _q(s: str) -> str:
    from urllib.parse import quote

    return quote(s, safe="")


# -- paths and files --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2f..%2fetc%2fpasswd",
        "/static/%252e%252e/etc/passwd",
        "/images/..%2f..%2f..%2fetc%2fpasswd/file",
        "/images/../../../etc/passwd",
        "/images/1%2f..%2f..%2fetc%2fpasswd/thumbnail",
        "/images/-1/file",
        "/images/99999999999999999999/file",
        "/images/0x1/file",
    ],
)
def test_path_traversal(authed_client: TestClient, url: str) -> None:
    r = authed_client.get(url)
    assert r.status_code in (404, 422), (url, r.status_code)
    assert "root:" not in r.text


def _png(width: int, height: int, rows: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def _bomb() -> bytes:
    """30000×30000 (900 Mpx, ~110 MB of raw rows) in ~110 kB: refused from the header."""
    w = h = 30_000
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + w // 8)
    data = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    return _png(w, h, data)


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.effect_mandelbrot((64, 48), (-2, -1, 1, 1), 50).convert("RGB").save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "name,data",
    [
        ("bomb.png", _bomb()),
        ("truncated.jpg", _jpeg()[:300]),
        ("header-only.png", _png(10, 10, b"")),
        ("empty.png", b""),
        ("text.png", b"just text, no image"),
        ("zero.png", _png(0, 0, zlib.compress(b""))),
        ("html.gif", b"GIF89a<script>alert(1)</script>"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_hostile_images(authed_client: TestClient, name: str, data: bytes) -> None:
    t = time.perf_counter()
    r = authed_client.post("/images", files=[("files", (name, data, "image/png"))])
    assert_problem(r, 413, 422)
    r = authed_client.post("/images/search", files=[("file", (name, data, "image/png"))])
    assert_problem(r, 413, 422)
    assert time.perf_counter() - t < 30


def test_upload_filename_is_never_a_path(
    authed_client: TestClient, rel_state: AppState, tmp_path: Path
) -> None:
    target = tmp_path / "evil.jpg"
    name = f"../../../../../../{target}"
    r = authed_client.post("/images", files=[("files", (name, _jpeg(), "image/jpeg"))])
    assert r.status_code in (200, 201), r.text
    assert not target.exists()
    media = rel_state.settings.media_dir.resolve()
    stored = [p for p in media.rglob("*") if p.is_file()]
    assert stored and all(p.resolve().is_relative_to(media) for p in stored)
    assert not any("evil" in p.name for p in stored)


# -- unknown ids ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method,url",
    [
        ("GET", "/users/nobody-here"),
        ("GET", "/users/nobody-here/feed"),
        ("DELETE", "/posts/no-such-post"),
        ("DELETE", "/users/nobody-here/memberships/nowhere"),
        ("GET", "/images/987654321"),
        ("GET", "/images/987654321/similar"),
        ("GET", "/images/987654321/file"),
        ("DELETE", "/images/987654321"),
        ("GET", "/keywords/subjects/no-such-subject"),
        ("DELETE", "/keywords/subjects/no-such-subject"),
        ("GET", "/feeds/trending"),
        ("GET", "/no/such/route"),
    ],
)
def test_unknown_ids(authed_client: TestClient, method: str, url: str) -> None:
    assert_problem(authed_client.request(method, url), 404, 422)


@pytest.mark.parametrize(
    "method,url",
    [
        ("PUT", "/users/{id}/memberships"),
        ("POST", "/users/{id}/memberships/c"),
        ("POST", "/users/u/memberships/{id}"),
        ("DELETE", "/users/{id}/memberships/c"),
        ("GET", "/users/{id}"),
        ("GET", "/users/{id}/feed"),
        ("DELETE", "/posts/{id}"),
    ],
)
@pytest.mark.parametrize("bad", ["x" * 201, "%20padded%20"])
def test_ids_in_the_path_follow_the_body_rules(
    authed_client: TestClient, rel_state: AppState, method: str, url: str, bad: str
) -> None:
    """An id the request bodies refuse (over 200 characters, surrounding spaces) is refused in the
    path too: a 422 naming the rule, not the database's constraint violation as a 500, and no user
    is created by a membership call."""
    kw = {"json": {"communities": ["c"]}} if method == "PUT" else {}
    r = authed_client.request(method, url.format(id=bad), **kw)
    assert_problem(r, 422)
    assert "200 characters" in r.json()["detail"] or "pattern" in r.json()["detail"]
    with rel_state.db.connection() as conn:
        assert conn.execute(
            "SELECT count(*) FROM users WHERE length(id) > 200 OR id <> btrim(id)"
        ).fetchone() == (0,)


def test_events_for_unknown_posts_store_nothing(authed_client: TestClient, rel_state: AppState) -> None:
    authed_client.post("/posts", json={"posts": [post("known-1")]})
    r = authed_client.post(
        "/events",
        json={
            "events": [
                {"user_id": "ghost-user", "post_id": "known-1"},
                {"user_id": "ghost-user", "post_id": "nope"},
            ]
        },
    )
    assert_problem(r, 404, 422)
    with rel_state.db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE user_id = 'ghost-user'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM users WHERE id = 'ghost-user'").fetchone() == (0,)


def test_wrong_content_types(authed_client: TestClient) -> None:
    for ct, body in (
        ("text/plain", b'{"texts": ["a"]}'),
        ("application/x-www-form-urlencoded", b"texts=a"),
        ("multipart/form-data; boundary=zz", b"--zz\r\n\r\n--zz--"),
        ("application/json", b"[]"),
        ("application/json", b"null"),
        ("application/json", b'"texts"'),
        ("application/json", b'{"texts": ' * 10_000),
        ("application/json", b"[" * 100_000 + b"]" * 100_000),
    ):
        for path in ("/encode", "/posts", "/events", "/images"):
            assert_problem(authed_client.post(path, content=body, headers={"content-type": ct}))
