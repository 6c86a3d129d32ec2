"""Lists in request bodies are bounded before their items are checked, and a 422 lists a few errors.

A 2 MB body of a million bad items took 17 s of the event loop (every other request waited) and was
answered with 94 MB of errors (security review, session 19)."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from hanseek.api.errors import MAX_LISTED_ERRORS
from hanseek.config import MAX_BATCH_ITEMS_CAP

MILLION = 1_000_000


def _post(client: TestClient, method: str, path: str, body: str) -> tuple[int, dict, float]:
    t = time.perf_counter()
    r = client.request(method, path, content=body.encode(), headers={"content-type": "application/json"})
    return r.status_code, r.json(), time.perf_counter() - t


def _zeros(n: int) -> str:
    return "[" + ",".join(["0"] * n) + "]"


@pytest.mark.parametrize(
    ("method", "path", "field", "extra"),
    [
        ("POST", "/encode", "texts", ""),
        ("POST", "/sentiment", "texts", ""),
        ("POST", "/keywords/weights/batch", "texts", ""),
        ("POST", "/posts", "posts", ""),
        ("POST", "/events", "events", ""),
        ("POST", "/keywords/subjects/bounded/documents", "documents", ""),
        ("PUT", "/keywords/subjects/bounded/keywords", "words", ""),
    ],
)
def test_a_list_of_a_million_items_is_a_quick_413(
    client: TestClient, method: str, path: str, field: str, extra: str
) -> None:
    status, body, seconds = _post(client, method, path, '{"' + field + '":' + _zeros(MILLION) + extra + "}")
    assert status == 413, body
    assert body["title"] == "Payload Too Large" and field in body["detail"]
    assert "errors" not in body and seconds < 5  # was 17 s and 94 MB


def test_a_dictionary_of_a_million_weights_is_a_quick_413(client: TestClient) -> None:
    weights = ",".join(f'"w{i}":"x"' for i in range(MILLION))
    status, body, seconds = _post(
        client, "PUT", "/keywords/subjects/bounded/dictionary", '{"weights":{' + weights + "}}"
    )
    assert status == 413 and "weights" in body["detail"] and seconds < 5, body


def test_a_422_lists_the_first_errors_and_counts_them_all(client: TestClient) -> None:
    n = MAX_BATCH_ITEMS_CAP // 2
    status, body, _ = _post(client, "POST", "/encode", json.dumps({"texts": [0] * n}))
    assert status == 422
    assert len(body["errors"]) == MAX_LISTED_ERRORS and body["error_count"] == n
    assert body["detail"].startswith("texts.0: ")


def test_the_configured_batch_limit_cannot_pass_the_cap() -> None:
    from pydantic import ValidationError

    from hanseek.config import Settings

    with pytest.raises(ValidationError):
        Settings(max_batch_items=MAX_BATCH_ITEMS_CAP + 1)


@pytest.mark.parametrize(
    ("path", "body", "detail"),
    [
        (
            "/keywords/subjects/bounded/keywords",
            '{"words":' + _zeros(100_000) + "}",
            "words[0] is not a string",
        ),
        (
            "/keywords/subjects/bounded/dictionary",
            '{"weights":{' + ",".join(f'"w{i}":"x"' for i in range(100_000)) + "}}",
            "weight of 'w0' is not a number",
        ),
    ],
)
def test_a_long_list_of_bad_keywords_is_one_error(
    client: TestClient, path: str, body: str, detail: str
) -> None:
    """Under their 100,000-word limit these built one error per word: a second of the event loop
    per 300 KB request (review of this change)."""
    status, answer, _ = _post(client, "PUT", path, body)
    assert status == 422 and answer["error_count"] == 1 and detail in answer["detail"], answer
