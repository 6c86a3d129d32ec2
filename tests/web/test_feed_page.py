"""The /feed page with the keyboard, and its status line."""

from __future__ import annotations

import json
import uuid
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.feed.conftest import unit


@pytest.fixture()
def reader(client: TestClient) -> str:
    """A user in a community of 12 posts of their own, so the columns hold only this test's posts."""
    tag = uuid.uuid4().hex[:8]
    vecs = unit(np.random.default_rng(11), 12)
    posts = [
        {
            "id": f"{tag}-p{i}",
            "community": f"{tag}-board",
            "title": f"게시글 {i}",
            "created_at": f"2020-01-{1 + i:02d}T00:00:00Z",
            "embedding": vecs[i].tolist(),
        }
        for i in range(12)
    ]
    assert client.post("/posts", json={"posts": posts}).status_code == 200
    user = f"{tag}-reader"
    assert client.put(f"/users/{user}/memberships", json={"communities": [f"{tag}-board"]}).status_code == 200
    return user


def _ready(page: Any, live_server: str, user: str) -> None:
    page.goto(f"{live_server}/feed?user={user}&days=all")
    page.wait_for_function("document.body.dataset.feedReady === '1'")
    page.wait_for_load_state("networkidle")


FOCUSED = """() => { const e = document.activeElement; const li = e.closest('li.feed-item');
  return [e.dataset.kind || e.tagName, li ? li.dataset.postId : null, li ? li.parentElement.id : null]; }"""


@pytest.mark.browser
@pytest.mark.parametrize("kind", ["read", "like"])
def test_the_pressed_button_keeps_the_focus_after_the_redraw(
    live_server: str, page: Any, reader: str, kind: str
) -> None:
    """The columns are drawn anew after Read or Like: the focus fell to the page, and the next Tab
    started again from the top."""
    _ready(page, live_server, reader)
    button = page.locator(f"#col-latest li.feed-item >> nth=2 >> button.{kind}")
    post = page.locator("#col-latest li.feed-item >> nth=2").get_attribute("data-post-id")
    version = page.evaluate("document.body.dataset.feedVersion")
    button.focus()
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.body.dataset.feedVersion !== '{version}'")
    page.wait_for_function("document.activeElement !== document.body")
    # The post pressed, or where it left the column (a post read is not offered again), the one
    # that took its place.
    ids = page.eval_on_selector_all("#col-latest li.feed-item", "els => els.map(e => e.dataset.postId)")
    assert page.evaluate(FOCUSED) == [kind, post if post in ids else ids[2], "col-latest"]
    assert page.inner_text("#feed-error") == ""


@pytest.mark.browser
@pytest.mark.parametrize(("count", "words"), [(1, "1 candidate ·"), (2, "2 candidates ·")])
def test_the_status_counts_candidates_in_good_english(
    live_server: str, page: Any, reader: str, count: int, words: str
) -> None:
    def one_candidate(route: Any) -> None:
        body = route.fetch().json()
        body["estimated_candidates"] = count
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route("**/users/*/feed?*", one_candidate)
    _ready(page, live_server, reader)
    status = page.inner_text("#feed-status")
    assert words in status and "1 candidates" not in status
