"""The feed over HTTP: status codes, problem documents, and a real encoder end to end."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from hanseek.feed.pgvec import to_np

from .conftest import DIM, NOW, make_posts


def _post_json(p: Any) -> dict[str, Any]:
    d = p.model_dump(mode="json")
    return d


def _setup(client: TestClient, tag: str) -> tuple[list[Any], str]:
    posts, _ = make_posts(tag, 60, 2, 20, seed=11)
    r = client.post("/posts", json={"posts": [_post_json(p) for p in posts]})
    assert r.status_code == 200, r.text
    assert r.json() == {"inserted": 60, "updated": 0, "encoded": 0}
    user = f"{tag}-u"
    r = client.put(f"/users/{user}/memberships", json={"communities": [f"{tag}-c0", f"{tag}-c1"]})
    assert r.status_code == 200 and r.json()["communities"] == [f"{tag}-c0", f"{tag}-c1"]
    return posts, user


def test_feed_round_trip(client: TestClient, tag: str) -> None:
    posts, user = _setup(client, tag)
    at = NOW.isoformat()
    cold = client.get(f"/users/{user}/feed", params={"k": 5, "at": at, "method": "similar"})
    assert cold.status_code == 200 and cold.json()["cold_start"] is True and len(cold.json()["items"]) == 5
    assert cold.json()["kind"] == "cold-start"
    cold = client.get(f"/users/{user}/feed", params={"k": 5, "at": at})
    assert cold.json()["kind"] == "ranked" and cold.json()["cold_start"] is True
    events = [
        {"user_id": user, "post_id": posts[i].id, "kind": kind, "at": (NOW - timedelta(hours=i)).isoformat()}
        for i, kind in ((0, "read"), (2, "like"), (4, "comment"))
    ]
    r = client.post("/events", json={"events": events})
    assert r.status_code == 200 and r.json()["accepted"] == 3
    assert client.post("/events", json={"events": events}).json()["duplicates"] == 3
    for path, method in [(p, "similar") for p in ("auto", "exact", "exact-sql", "approx")] + [
        ("auto", "ranked")
    ]:
        params = {"k": 5, "days": "all", "path": path, "at": at, "method": method}
        r = client.get(f"/users/{user}/feed", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (
            body["kind"] == ("personalized" if method == "similar" else "ranked") and len(body["items"]) == 5
        )
        assert all(
            it["why"] and it["why"]["post_id"] in {posts[i].id for i in (0, 2, 4)} for it in body["items"]
        )
        assert not {it["id"] for it in body["items"]} & {posts[i].id for i in (0, 2, 4)}
    for kind in ("latest", "popular"):
        r = client.get(f"/feeds/{kind}", params={"user_id": user, "k": 5, "at": at})
        assert r.status_code == 200 and len(r.json()["items"]) == 5
        r = client.get(f"/feeds/{kind}", params=[("community", f"{tag}-c1"), ("k", "3"), ("at", at)])
        assert r.status_code == 200 and {it["community"] for it in r.json()["items"]} == {f"{tag}-c1"}
    assert client.delete(f"/posts/{posts[10].id}").status_code == 204
    assert client.delete(f"/posts/{posts[10].id}").status_code == 404
    assert client.get(f"/users/{user}").json()["events"] == 3


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("/users/{user}/feed", {"k": 0}),
        ("/users/{user}/feed", {"k": 100000}),
        ("/users/{user}/feed", {"k": 201}),  # HANSEEK_FEED_MAX_K, checked by the service
        ("/users/{user}/feed", {"days": "soon"}),
        ("/users/{user}/feed", {"days": "0"}),
        ("/users/{user}/feed", {"path": "fastest"}),
        ("/users/{user}/feed", {"method": "magic"}),
        ("/users/{user}/feed", {"at": "yesterday"}),
        ("/feeds/latest", {}),
        ("/feeds/trending", {"user_id": "{user}"}),
    ],
)
def test_bad_parameters_are_422(client: TestClient, tag: str, url: str, params: dict[str, Any]) -> None:
    user = f"{tag}-u"
    client.put(f"/users/{user}/memberships", json={"communities": [f"{tag}-c0"]})
    params = {k: (v.format(user=user) if isinstance(v, str) else v) for k, v in params.items()}
    r = client.get(url.format(user=user), params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"]


def test_unknown_things_and_bad_writes(client: TestClient, tag: str) -> None:
    r = client.get(f"/users/{tag}-ghost/feed")
    assert r.status_code == 404 and "unknown user" in r.json()["detail"]
    assert client.get(f"/users/{tag}-ghost").status_code == 404
    assert client.get("/feeds/latest", params={"user_id": f"{tag}-ghost"}).status_code == 404
    assert client.put(f"/users/{tag}-alone/memberships", json={"communities": []}).status_code == 200
    for url in (f"/users/{tag}-alone/feed", "/feeds/latest", "/feeds/popular"):
        r = client.get(url, params={"user_id": f"{tag}-alone"})
        assert r.status_code == 200 and r.json()["items"] == [], url
        assert r.json()["note"] == "the user belongs to no community", url
    r = client.post("/events", json={"events": [{"user_id": "u", "post_id": f"{tag}-nope", "kind": "read"}]})
    assert r.status_code == 422 and "unknown post" in r.json()["detail"]
    r = client.post("/events", json={"events": [{"user_id": "u", "post_id": "p", "kind": "share"}]})
    assert r.status_code == 422
    r = client.post("/posts", json={"posts": [{"id": "x", "community": "c", "created_at": NOW.isoformat()}]})
    assert r.status_code == 422 and "title or a body" in r.json()["detail"]
    r = client.post(
        "/posts",
        json={
            "posts": [
                {
                    "id": f"{tag}-x",
                    "community": "c",
                    "title": "t",
                    "created_at": NOW.isoformat(),
                    "embedding": [0.1, 0.2],
                }
            ]
        },
    )
    assert r.status_code == 422 and "expected 384" in r.json()["detail"]
    r = client.post("/posts", json={"posts": []})
    assert r.status_code == 422
    big = [{"user_id": "u", "post_id": "p"}] * 1001
    assert client.post("/events", json={"events": big}).status_code == 413


@pytest.mark.slow
def test_text_is_encoded_and_similar_posts_rank_first(
    client: TestClient, app_state: Any, text_encoder: Any, tag: str
) -> None:
    app_state.service("text_encoder", lambda st: text_encoder)
    texts = [
        ("냉면 맛집 추천해 주세요", "평양냉면이 맛있는 집을 찾고 있어요"),
        ("함흥냉면과 평양냉면의 차이", "면과 육수가 어떻게 다른가요"),
        ("주말 축구 경기 결과", "어제 경기에서 골이 세 개 나왔습니다"),
        ("새 휴대폰 배터리 성능", "배터리가 오래 가는 휴대폰을 샀어요"),
    ]
    posts = [
        {
            "id": f"{tag}-t{i}",
            "community": f"{tag}-food",
            "title": t,
            "body": b,
            "created_at": (NOW - timedelta(days=i + 1)).isoformat(),
        }
        for i, (t, b) in enumerate(texts)
    ]
    r = client.post("/posts", json={"posts": posts})
    assert r.status_code == 200 and r.json()["encoded"] == 4
    user = f"{tag}-eater"
    client.put(f"/users/{user}/memberships", json={"communities": [f"{tag}-food"]})
    client.post(
        "/events",
        json={"events": [{"user_id": user, "post_id": f"{tag}-t0", "kind": "like", "at": NOW.isoformat()}]},
    )
    body = client.get(
        f"/users/{user}/feed", params={"k": 3, "at": NOW.isoformat(), "method": "similar"}
    ).json()
    assert body["items"][0]["id"] == f"{tag}-t1"
    assert body["items"][0]["why"]["post_id"] == f"{tag}-t0"
    # The stored vector is the encoder's passage vector of the configured fields (title, body here).
    v = text_encoder.encode(["냉면 맛집 추천해 주세요\n평양냉면이 맛있는 집을 찾고 있어요"], kind="passage")[
        0
    ]
    with app_state.db.connection() as conn:
        row = conn.execute("SELECT embedding FROM posts WHERE id = %s", (f"{tag}-t0",)).fetchone()
    np.testing.assert_allclose(to_np(row[0]), v, atol=1e-5)


def test_ranked_feed_with_an_empty_window_is_empty_not_500(client: TestClient, tag: str) -> None:
    """A user with a profile whose window holds no unread post: every path answers 200, no items."""
    posts, user = _setup(client, tag)
    r = client.post(
        "/events",
        json={"events": [{"user_id": user, "post_id": posts[0].id, "kind": "read", "at": NOW.isoformat()}]},
    )
    assert r.status_code == 200
    later = (NOW + timedelta(days=400)).isoformat()  # nothing was posted in the year before this
    for path in ("auto", "exact", "exact-sql", "approx"):
        for method in ("ranked", "similar"):
            params = {"k": 5, "days": 7, "path": path, "at": later, "method": method}
            r = client.get(f"/users/{user}/feed", params=params)
            assert r.status_code == 200, (path, method, r.text)
            assert r.json()["items"] == []


def test_slashes_in_post_ids_and_communities_reach_their_routes(client: TestClient, tag: str) -> None:
    """A client percent-encodes "/" (%2F), the router sees it decoded: post ids and community names
    (the demo's "인권/성평등") are the routes' last segment and keep it; user ids refuse it."""
    from urllib.parse import quote

    board = f"{tag}-인권/성평등"
    user = f"{tag}-slash-reader"
    r = client.post(f"/users/{user}/memberships/{quote(board, safe='')}")
    assert r.status_code == 200 and r.json()["communities"] == [board], r.text
    post = {
        "id": f"https://example.com/{tag}/1",
        "community": board,
        "title": "제목",
        "created_at": NOW.isoformat(),
    }
    post["embedding"] = [1.0] + [0.0] * (DIM - 1)
    assert client.post("/posts", json={"posts": [post]}).status_code == 200
    assert client.delete(f"/posts/{quote(post['id'], safe='')}").status_code == 204
    assert client.delete(f"/posts/{quote(post['id'], safe='')}").status_code == 404
    r = client.delete(f"/users/{user}/memberships/{quote(board, safe='')}")
    assert r.status_code == 200 and r.json()["communities"] == []

    bad = {"user_id": "team/kim", "post_id": post["id"], "at": NOW.isoformat()}
    r = client.post("/events", json={"events": [bad]})
    assert r.status_code == 422 and "cannot contain '/'" in r.json()["detail"]


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "/users/{tag}%FE/memberships/{tag}-c"),
        ("POST", "/users/{tag}%FF/memberships/{tag}-c"),
        ("GET", "/users/{tag}%FF"),
        ("GET", "/users/{tag}%C3%28/feed"),
        ("PUT", "/users/{tag}%FE/memberships"),
        ("POST", "/users/{tag}-u/memberships/{tag}%FF"),
        ("DELETE", "/users/{tag}-u/memberships/{tag}%FF"),
        ("DELETE", "/posts/{tag}%E2%82"),
    ],
)
def test_path_ids_that_are_not_utf8_are_refused(client: TestClient, tag: str, method: str, url: str) -> None:
    """Starlette turned each of these byte strings into U+FFFD: /users/%FE and /users/%FF were one user."""
    body = {"communities": [f"{tag}-c"]} if method == "PUT" else None
    r = client.request(method, url.format(tag=tag), json=body)
    assert r.status_code == 422, r.text
    assert "not valid UTF-8" in r.text
    assert f"{tag}\ufffd" not in client.get("/users", params={"limit": 1000}).json()


def test_an_id_holding_u_fffd_itself_is_reachable_and_bad_query_bytes_are_refused(
    client: TestClient, tag: str
) -> None:
    """U+FFFD sent as its own UTF-8 (%EF%BF%BD) is a character like any other, as in request bodies:
    `UrlUtf8Guard` refuses bytes that are not UTF-8, in the path and in the query string."""
    user = f"{tag}-x\ufffd"  # not the id the test above checks is absent
    assert client.post(f"/users/{tag}-x%EF%BF%BD/memberships/{tag}-c").status_code == 200
    assert client.get(f"/users/{tag}-x%EF%BF%BD").json()["id"] == user
    bad_query = client.get(f"/feeds/latest?user_id={tag}%FF")
    assert bad_query.status_code == 422 and "query string was not valid UTF-8" in bad_query.text


def test_utf8_path_ids_still_reach_their_routes(client: TestClient, tag: str) -> None:
    user = f"{tag}-사용자"
    r = client.post(f"/users/{user}/memberships/{tag}-게시판")
    assert r.status_code == 200 and r.json()["communities"] == [f"{tag}-게시판"], r.text
    assert client.get(f"/users/{user}").json()["id"] == user


# --- default event keys stored before session 18 -----------------------------------------------------
