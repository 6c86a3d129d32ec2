"""POST /encode through the real app (TestClient), on the session's e5-small encoder."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from hanseek.api.app import create_app
from hanseek.api.state import AppState
from hanseek.encoders.transformer import TransformersTextEncoder
from tests.fixtures.api import contract_client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(app_state: AppState, text_encoder: TransformersTextEncoder) -> Iterator[TestClient]:
    settings = app_state.settings.model_copy(
        update={"max_batch_items": 4, "max_text_chars": 200, "max_encode_chars": 500}
    )
    state = AppState(settings, app_state.db)
    state.ready = True
    state.service("text_encoder", lambda st: text_encoder)
    with contract_client(create_app(settings, state=state), settings) as c:
        yield c


def test_encode_returns_normalised_vectors(api: TestClient, text_encoder: TransformersTextEncoder) -> None:
    texts = ["서울 냉면 맛집", "평양냉면 잘하는 곳", "주식 시장 전망"]
    r = api.post("/encode", json={"texts": texts, "kind": "query"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "e5-small" and body["dim"] == 384 and body["kind"] == "query"
    v = np.asarray(body["vectors"], dtype=np.float32)
    assert v.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(v, text_encoder.encode(texts, kind="query"), atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        ({"texts": ["a"] * 5}, 413, "limit is 4"),
        ({"texts": ["가" * 201]}, 413, "texts[0]"),
        # Each within its limit, together past HANSEEK_MAX_ENCODE_CHARS (none until session 18).
        ({"texts": ["가" * 200] * 3}, 413, "600 characters in all; the limit per request is 500"),
        ({"texts": []}, 422, "texts"),
        ({"texts": ["a"], "kind": "document"}, 422, "kind"),
        ({"texts": "not a list"}, 422, "texts"),
    ],
)
def test_bad_requests_are_problems(
    api: TestClient, payload: dict[str, object], status: int, fragment: str
) -> None:
    r = api.post("/encode", json=payload)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")
    assert fragment in r.json()["detail"]


def test_total_chars_limit_is_inclusive(api: TestClient) -> None:
    """Exactly HANSEEK_MAX_ENCODE_CHARS (500 here) in all is allowed; one character more is a 413."""
    at_limit = api.post("/encode", json={"texts": ["가" * 200, "가" * 200, "가" * 100]})
    assert at_limit.status_code == 200, at_limit.text
    assert len(at_limit.json()["vectors"]) == 3
    over = api.post("/encode", json={"texts": ["가" * 200, "가" * 200, "가" * 101]})
    assert over.status_code == 413
    assert "501 characters in all; the limit per request is 500" in over.json()["detail"]
