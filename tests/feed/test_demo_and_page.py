"""Demo loading and the /feed page in a real browser."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from hanseek.config import Settings
from hanseek.feed import demo
from hanseek.store.db import Database
from tests.fixtures.api import PAGE_KEY, type_key

from .conftest import unit


@pytest.mark.slow
def test_demo_loads_once_and_serves_a_feed(app_state: Any, text_encoder: Any) -> None:
    first = demo.load_demo(app_state.db, app_state.settings, text_encoder)
    if first["posts"]:  # another test may have loaded it into the shared database already
        assert first == {"posts": 198, "users": 10, "events": 539}
    assert demo.load_demo(app_state.db, app_state.settings, text_encoder) == {
        "posts": 0,
        "users": 0,
        "events": 0,
    }
    from hanseek.feed.service import FeedService
    from hanseek.feed.settings import FeedSettings

    svc = FeedService(app_state.db, settings=FeedSettings(), load_in_background=False, follow=False)
    try:
        out = svc.feed("demo-minji", k=10, days=30)  # default method: the re-ranked feed
        assert out.kind == "ranked" and len(out.items) == 10
        assert all(it.community in {"보건복지", "인권/성평등", "정치개혁"} for it in out.items)
        similar = svc.feed("demo-minji", k=10, days=30, method="similar")
        assert similar.kind == "personalized" and len(similar.items) == 10
        assert all(it.community in {"보건복지", "인권/성평등", "정치개혁"} for it in similar.items)
        assert svc.feed("demo-newbie", k=10, days=30).cold_start
    finally:
        svc.close()


@pytest.mark.slow
def test_an_interrupted_demo_load_is_completed_by_the_next(
    scratch_settings: Settings, text_encoder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Posts go in batches of 64, each its own transaction, then memberships, then events: a load killed
    after the first batch left 64 posts, and every later load saw "demo posts present" and did nothing."""
    from hanseek.feed.service import FeedService

    real = FeedService.ingest_posts
    calls: list[int] = []

    def dies_after_one_batch(self: FeedService, posts: Any) -> Any:
        calls.append(len(posts))
        if len(calls) > 1:
            raise KeyboardInterrupt  # as a kill would: the first batch committed, nothing after it
        return real(self, posts)

    with Database.open(scratch_settings) as db:
        db.migrate()
        monkeypatch.setattr(FeedService, "ingest_posts", dies_after_one_batch)
        with pytest.raises(KeyboardInterrupt):
            demo.load_demo(db, scratch_settings, text_encoder)
        monkeypatch.setattr(FeedService, "ingest_posts", real)
        assert _demo_counts(db) == {"posts": 64, "members": 0, "events": 0}
        shifts = _shifts(db)
        assert len(shifts) == 1

        calls.clear()
        monkeypatch.setattr(
            FeedService, "ingest_posts", lambda self, posts: calls.append(len(posts)) or real(self, posts)
        )
        # Only the missing posts are encoded; the counts are those of an uninterrupted load.
        assert demo.load_demo(db, scratch_settings, text_encoder) == {
            "posts": 134,
            "users": 10,
            "events": 539,
        }
        assert sum(calls) == 134
        assert _demo_counts(db) == {"posts": 198, "members": 10, "events": 539}
        assert _shifts(db) == shifts  # the completion kept the first attempt's dates
        assert demo.load_demo(db, scratch_settings, text_encoder) == {"posts": 0, "users": 0, "events": 0}

        # Every demo post deleted (their events go with them): the next start loaded the whole demo
        # again until session 18; the load is recorded now.
        with db.connection() as conn:
            conn.execute("DELETE FROM posts WHERE id LIKE 'demo-%%'")
        assert _demo_counts(db)["events"] == 0
        assert demo.load_demo(db, scratch_settings, text_encoder) == {"posts": 0, "users": 0, "events": 0}
        assert _demo_counts(db)["posts"] == 0


def _demo_counts(db: Database) -> dict[str, int]:
    with db.connection() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM posts WHERE id LIKE 'demo-%%'),"
            " (SELECT count(DISTINCT user_id) FROM memberships WHERE user_id LIKE 'demo-%%'),"
            " (SELECT count(*) FROM events WHERE idempotency_key LIKE 'demo-%%')"
        ).fetchone()
    assert row is not None
    return {"posts": row[0], "members": row[1], "events": row[2]}


def _shifts(db: Database) -> set[Any]:
    """How far each stored demo post was moved from its date in the file."""
    dates = {p["id"]: datetime.fromisoformat(p["created_at"]) for p in demo._read(demo.POSTS)}
    with db.connection() as conn:
        rows = conn.execute("SELECT id, created_at FROM posts WHERE id LIKE 'demo-%%'").fetchall()
    return {created - dates[pid] for pid, created in rows}


@pytest.mark.browser
def test_feed_page_records_a_like_and_the_feed_changes(
    client: TestClient, live_server: str, page: Any, tag: str
) -> None:
    rng = np.random.default_rng(5)
    vecs = unit(rng, 40)
    posts = [
        {
            "id": f"{tag}-b{i}",
            "community": f"{tag}-board",
            "title": f"{tag} 게시글 {i}",
            "created_at": f"2020-01-{1 + i % 28:02d}T00:00:00Z",
            "embedding": vecs[i].tolist(),
        }
        for i in range(40)
    ]
    assert client.post("/posts", json={"posts": posts}).status_code == 200
    user = f"{tag}-reader"
    assert client.put(f"/users/{user}/memberships", json={"communities": [f"{tag}-board"]}).status_code == 200

    page.goto(f"{live_server}/feed?user={user}")
    page.select_option("#feed-days", "all")
    page.click("#feed-refresh")
    page.wait_for_function("document.body.dataset.feedReady === '1'")
    page.wait_for_selector("#col-personal .feed-item")
    page.wait_for_load_state("networkidle")  # the page's own first load may still be rendering
    assert "cold start" in page.inner_text("#feed-mode")
    before = page.eval_on_selector_all("#col-personal .feed-item", "els => els.map(e => e.dataset.postId)")
    # Like the latest post: the user now has a profile, so the feed becomes personalised.
    liked = page.get_attribute("#col-latest .feed-item", "data-post-id")
    version = int(page.evaluate("document.body.dataset.feedVersion"))
    page.click("#col-latest .feed-item button.like")
    page.wait_for_function(f"() => Number(document.body.dataset.feedVersion) > {version}")
    assert "cold start" not in page.inner_text("#feed-mode")
    after = page.eval_on_selector_all("#col-personal .feed-item", "els => els.map(e => e.dataset.postId)")
    assert after != before and liked not in after
    assert "liked" in page.inner_text("#feed-log")
    assert page.inner_text("#feed-error") == ""
    # A score only where it means something: the re-ranker's, in the personal column. Latest and
    # popular showed their sort keys ("latest 1577836800.000": unix seconds; a decayed like count).
    for meta in page.locator("#col-latest .meta, #col-popular .meta").all_inner_texts():
        assert not re.search(r"\d\.\d{3}", meta), meta
    personal = page.locator("#col-personal .meta").all_inner_texts()
    assert personal and all(re.search(r"score -?\d+\.\d{3}$", m) for m in personal), personal

    # With the network gone, a click says so, on the card clicked, instead of failing silently.
    page.context.set_offline(True)
    try:
        card = page.locator("#col-latest .feed-item").first
        card.locator("button.read").click()
        card.locator(".item-error").filter(has_text="Could not reach the server").wait_for()
        assert page.inner_text("#feed-error") == ""
    finally:
        page.context.set_offline(False)
    assert client.get(f"/users/{user}").json()["events"] == 1


@pytest.mark.browser
@pytest.mark.parametrize("keyed", ["read"], indirect=True)
def test_feed_page_under_protect_reads_loads_once_the_key_is_typed(
    client: TestClient, live_server: str, page: Any, tag: str, keyed: str
) -> None:
    auth = {"X-API-Key": PAGE_KEY}
    user = f"{tag}-locked"
    r = client.put(f"/users/{user}/memberships", json={"communities": [f"{tag}-board"]}, headers=auth)
    assert r.status_code == 200
    page.goto(f"{live_server}/feed?user={user}")
    page.wait_for_function("document.getElementById('feed-error').textContent.length > 0")
    assert "API key" in page.inner_text("#feed-error")
    type_key(page)
    page.wait_for_function("document.body.dataset.feedReady === '1'")
    assert page.input_value("#feed-user") == user
    assert page.inner_text("#feed-error") == ""


@pytest.mark.browser
def test_feed_page_names_an_unknown_user_instead_of_showing_another(
    live_server: str, page: Any, tag: str
) -> None:
    page.goto(f"{live_server}/feed?user={tag}-nobody")
    page.wait_for_function("document.getElementById('feed-error').textContent.length > 0")
    assert f"unknown user '{tag}-nobody'" in page.inner_text("#feed-error")
    assert page.input_value("#feed-user") == f"{tag}-nobody"


@pytest.mark.browser
def test_a_late_answer_for_an_earlier_pick_never_replaces_the_current_user(
    client: TestClient, live_server: str, page: Any, tag: str
) -> None:
    """Pick user A (slow), then B: B's feed stays on screen when A's answer comes last, and Read
    records for B. The URL keeps the pick, so a reload comes back to it."""
    vecs = unit(np.random.default_rng(6), 20)
    users = {"a": f"{tag}-slow-a", "b": f"{tag}-fast-b"}
    for j, (key, user) in enumerate(users.items()):
        posts = [
            {
                "id": f"{tag}-{key}{i}",
                "community": f"{tag}-{key}-board",
                "title": f"{key} 게시글 {i}",
                "created_at": "2020-01-05T00:00:00Z",
                "embedding": vecs[10 * j + i].tolist(),
            }
            for i in range(10)
        ]
        assert client.post("/posts", json={"posts": posts}).status_code == 200
        assert (
            client.put(f"/users/{user}/memberships", json={"communities": [f"{tag}-{key}-board"]}).status_code
            == 200
        )

    page.goto(f"{live_server}/feed?user={users['b']}&days=all")
    page.wait_for_function("document.body.dataset.feedReady === '1'")
    page.wait_for_load_state("networkidle")
    held: list[Any] = []
    page.route(lambda url: users["a"] in url, lambda route: held.append(route))  # A's answers wait
    page.evaluate("(u) => document.getElementById('feed-user').add(new Option(u, u))", users["a"])
    page.select_option("#feed-user", users["a"])
    page.wait_for_function("() => document.getElementById('feed-status').textContent === 'Loading…'")
    version = int(page.evaluate("document.body.dataset.feedVersion"))
    page.select_option("#feed-user", users["b"])
    page.wait_for_function(f"() => Number(document.body.dataset.feedVersion) > {version}")
    assert len(held) == 3
    for route in held:  # now A's three answers arrive, after B's
        route.continue_()
    page.wait_for_load_state("networkidle")
    assert page.inner_text("#feed-status").startswith(users["b"])
    shown = page.eval_on_selector_all("#col-latest .feed-item", "els => els.map(e => e.dataset.postId)")
    assert shown and all(p.startswith(f"{tag}-b") for p in shown)
    assert f"user={users['b']}" in page.url and "days=all" in page.url
    version = int(page.evaluate("document.body.dataset.feedVersion"))
    page.click("#col-latest .feed-item button.read")
    page.wait_for_function(f"() => Number(document.body.dataset.feedVersion) > {version}")
    assert client.get(f"/users/{users['b']}").json()["events"] == 1
    assert client.get(f"/users/{users['a']}").json()["events"] == 0
    page.reload()
    page.wait_for_function("document.body.dataset.feedReady === '1'")
    assert page.input_value("#feed-user") == users["b"] and page.input_value("#feed-days") == "all"


@pytest.mark.browser
def test_a_long_title_wraps_and_a_user_without_communities_reads_cleanly(
    client: TestClient, live_server: str, page: Any, tag: str
) -> None:
    url_title = "https://example.com/" + "a" * 200  # one unbroken word, far wider than a phone
    vec = unit(np.random.default_rng(7), 1)[0].tolist()
    post = {
        "id": f"{tag}-long",
        "community": f"{tag}-wide",
        "title": url_title,
        "created_at": "2020-02-01T00:00:00Z",
        "embedding": vec,
    }
    assert client.post("/posts", json={"posts": [post]}).status_code == 200
    user = f"{tag}-phone"
    assert client.put(f"/users/{user}/memberships", json={"communities": [f"{tag}-wide"]}).status_code == 200
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{live_server}/feed?user={user}&days=all")
    page.wait_for_selector(f"#col-latest .feed-item[data-post-id='{tag}-long']")
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")

    nowhere = f"{tag}-nowhere"
    assert client.put(f"/users/{nowhere}/memberships", json={"communities": []}).status_code == 200
    page.goto(f"{live_server}/feed?user={nowhere}")
    page.wait_for_function("document.body.dataset.feedReady === '1'")
    status = page.inner_text("#feed-status")
    assert "communities: none" in status and "?" not in status
    assert "()" not in page.inner_text("#feed-mode")


def _user_with_posts(client: TestClient, tag: str, name: str, n: int, seed: int) -> str:
    vecs = unit(np.random.default_rng(seed), n)
    posts = [
        {
            "id": f"{tag}-{name}{i}",
            "community": f"{tag}-{name}-board",
            "title": f"{name} 게시글 {i}",
            "created_at": f"2020-01-{1 + i % 28:02d}T00:00:00Z",
            "embedding": vecs[i].tolist(),
        }
        for i in range(n)
    ]
    assert client.post("/posts", json={"posts": posts}).status_code == 200
    user = f"{tag}-{name}"
    r = client.put(f"/users/{user}/memberships", json={"communities": [f"{tag}-{name}-board"]})
    assert r.status_code == 200
    return user


@pytest.mark.browser
def test_a_failed_load_leaves_no_previous_user_posts_to_click(
    client: TestClient, live_server: str, page: Any, tag: str
) -> None:
    """After a failed refresh (a 500, an unknown user) the picker names the new user: the columns
    showed the previous user's posts, and Read/Like on them recorded events for that user."""
    first = _user_with_posts(client, tag, "first", 5, 8)
    second = _user_with_posts(client, tag, "second", 5, 9)
    page.goto(f"{live_server}/feed?user={first}&days=all")
    page.wait_for_function("document.body.dataset.feedReady === '1'")
    page.wait_for_selector("#col-latest .feed-item")
    page.wait_for_load_state("networkidle")
    problem = '{"title": "Internal Server Error", "status": 500, "detail": "the ranker fell over"}'
    page.route(
        f"**/users/{second}/feed?*",
        lambda route: route.fulfill(status=500, content_type="application/problem+json", body=problem),
    )
    page.select_option("#feed-user", second)
    page.wait_for_function("document.getElementById('feed-error').textContent.length > 0")
    assert page.inner_text("#feed-error") == "the ranker fell over"
    assert page.locator(".feed-item").count() == 0  # nothing of the first user's left to click
    assert page.inner_text("#feed-mode") == "" and page.input_value("#feed-user") == second

    # The second user loads again; then an unknown user: the same.
    page.unroute(f"**/users/{second}/feed?*")
    page.click("#feed-refresh")
    page.wait_for_selector(f"#col-latest .feed-item[data-post-id^='{tag}-second']")
    assert page.inner_text("#feed-error") == ""
    page.evaluate("(u) => document.getElementById('feed-user').add(new Option(u, u))", f"{tag}-nobody")
    page.select_option("#feed-user", f"{tag}-nobody")
    page.wait_for_function("document.getElementById('feed-error').textContent.length > 0")
    assert "unknown user" in page.inner_text("#feed-error")
    assert page.locator(".feed-item").count() == 0
    assert client.get(f"/users/{first}").json()["events"] == 0
    assert client.get(f"/users/{second}").json()["events"] == 0


@pytest.mark.browser
def test_on_a_phone_a_failed_like_is_shown_by_its_card_and_buttons_are_big_enough(
    client: TestClient, live_server: str, page: Any, tag: str
) -> None:
    """A failed Read/Like wrote its message at the top of the page, off-screen from the card
    clicked; the buttons were 21 px tall on a phone and were all named just "Read" and "Like"."""
    user = _user_with_posts(client, tag, "phone", 10, 10)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server}/feed?user={user}&days=all")
    page.wait_for_selector("#col-popular .feed-item")
    page.wait_for_load_state("networkidle")
    card = page.locator("#col-popular .feed-item").last  # far below the top of the page
    like = card.locator("button.like")
    problem = '{"title": "Service Unavailable", "status": 503, "detail": "the database is busy"}'
    page.route(
        "**/events",
        lambda route: route.fulfill(status=503, content_type="application/problem+json", body=problem),
    )
    like.click()
    message = card.locator(".item-error")
    message.filter(has_text="the database is busy").wait_for(timeout=5_000)
    assert message.evaluate(
        "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }"
    )
    assert page.inner_text("#feed-error") == "" and like.is_enabled()  # it can be tried again
    assert client.get(f"/users/{user}").json()["events"] == 0

    assert page.get_attribute("#feed-status", "role") == "status"
    title = card.locator("h3").inner_text()
    assert like.get_attribute("aria-label") == f"Like “{title}”"
    assert card.locator("button.read").get_attribute("aria-label") == f"Read “{title}”"
    for button in page.locator(".feed-item .actions button").all():
        assert button.bounding_box()["height"] >= 32


@pytest.mark.browser
def test_back_and_forward_return_to_the_user_picked_before(
    client: TestClient, live_server: str, page: Any, tag: str
) -> None:
    """A pick replaced the history entry: Back left the page instead of going to the user before."""
    first = _user_with_posts(client, tag, "back", 3, 11)
    second = _user_with_posts(client, tag, "forth", 3, 12)
    page.goto(f"{live_server}/feed?user={first}&days=all")
    page.wait_for_selector(f"#col-latest .feed-item[data-post-id^='{tag}-back']")
    page.wait_for_load_state("networkidle")
    page.select_option("#feed-user", second)
    page.wait_for_selector(f"#col-latest .feed-item[data-post-id^='{tag}-forth']")
    page.select_option("#feed-days", "7")
    page.wait_for_function("() => new URLSearchParams(location.search).get('days') === '7'")
    page.go_back()
    page.wait_for_function("() => new URLSearchParams(location.search).get('days') === 'all'")
    assert page.input_value("#feed-user") == second and page.input_value("#feed-days") == "all"
    page.go_back()
    page.wait_for_selector(f"#col-latest .feed-item[data-post-id^='{tag}-back']")
    assert page.input_value("#feed-user") == first
    page.wait_for_function("u => document.getElementById('feed-status').textContent.startsWith(u)", arg=first)
    page.go_forward()
    page.wait_for_selector(f"#col-latest .feed-item[data-post-id^='{tag}-forth']")
    assert page.input_value("#feed-user") == second
