"""SQL decay (query.decay_sql) past float8 underflow: the same scores as the in-process paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from fastapi.testclient import TestClient

from hanseek.feed.models import PostIn
from hanseek.feed.ranker import serving
from hanseek.feed.ranker.candidates import CandidateConfig
from hanseek.feed.scoring import order_latest, popularity
from hanseek.feed.service import FeedService
from hanseek.feed.settings import FeedSettings
from hanseek.store.db import Database

from .conftest import NOW, unit

HALF_LIFE = 3.0  # CandidateConfig's popular half-life, in days
# Ages in half-lives on both sides of float8's last value: 2^-1074 is the smallest, 2^-1075 rounds to 0.
AGES = [0.5, 10.0, 1000.0, 1073.5, 1074.0, 1074.5, 1074.99, 1075.0, 1075.5, 1200.0, 1500.0, 2000.0]


def _old_posts(tag: str) -> list[PostIn]:
    vecs = unit(np.random.default_rng(18), len(AGES))
    return [
        PostIn(
            id=f"{tag}-a{i}",
            community=f"{tag}-c",
            title=f"age {h}",
            created_at=NOW - timedelta(seconds=h * HALF_LIFE * 86400.0),
            likes=(7 * i) % 5 + 1,  # ties and non-ties among the old ones
            comments=i % 2,
            embedding=vecs[i].tolist(),
        )
        for i, h in enumerate(AGES)
    ]


def test_the_sql_popular_source_equals_the_in_process_one_past_float8_underflow(
    feed: FeedService, tag: str
) -> None:
    """`_sources_sql` (the approximate path) ranks popular as `_window_sources` (index and exact-sql):
    PostgreSQL's power() raised "value out of range: underflow" for the posts past 1075 half-lives."""
    posts = _old_posts(tag)
    feed.ingest_posts(posts)
    user = f"{tag}-u"
    feed.set_memberships(user, [f"{tag}-c"])
    cfg = CandidateConfig(n_latest=len(AGES), n_popular=len(AGES))
    with feed.db.connection() as conn:
        latest, popular = serving._sources_sql(conn, [f"{tag}-c"], None, NOW, user, cfg)
        rids, times, pops = serving._window_rows(conn, [f"{tag}-c"], None, NOW, user)
        # Positions in the window, as rids.
        lists = {
            name: rids[pos].tolist() for name, pos in serving._window_sources(times, pops, NOW, cfg).items()
        }
        # ... and the same order at a moment far ahead, where every post is past the underflow.
        far = NOW + timedelta(days=365 * 40)
        far_sql = serving._sources_sql(conn, [f"{tag}-c"], None, far, user, cfg)[1]
        far_popular = rids[serving._window_sources(times, pops, far, cfg)["popular"]].tolist()
    assert (latest, popular) == (lists["latest"], lists["popular"])
    assert far_sql == far_popular
    # The in-process scores really are 0 past 1075 half-lives (so there, newest first), not clamped.
    decayed = popularity(pops, 0.0, NOW.timestamp() - times, HALF_LIFE)
    past = (NOW.timestamp() - times) / (HALF_LIFE * 86400.0) >= 1075.0
    assert past.sum() == sum(h >= 1075.0 for h in AGES)
    assert (decayed[past] == 0.0).all() and (decayed[~past] > 0).all()


def test_the_popular_baseline_and_cold_start_take_posts_past_float8_underflow(db: Database, tag: str) -> None:
    """qy.baseline with a popular half-life: the scores are scoring.popularity's, 0 past the underflow."""
    svc = FeedService(
        db, settings=FeedSettings(popular_half_life_days=HALF_LIFE), load_in_background=False, follow=False
    )
    try:
        posts = _old_posts(tag)
        svc.ingest_posts(posts)
        out = svc.baseline_feed("popular", communities=[f"{tag}-c"], k=len(AGES), days=None, at=NOW)
        want = {
            p.id: float(
                popularity([p.likes], [p.comments], [(NOW - p.created_at).total_seconds()], HALF_LIFE)[0]
            )
            for p in posts
        }
        order = sorted(posts, key=lambda p: (-want[p.id], -p.created_at.timestamp()))
        assert [it.id for it in out.items] == [p.id for p in order]
        assert all(it.score == round(want[it.id], 6) for it in out.items)  # as _items rounds
        assert [
            it.score
            for it in out.items
            if it.id in {p.id for p, h in zip(posts, AGES, strict=True) if h >= 1075}
        ] == [0.0] * sum(h >= 1075 for h in AGES)
        svc.set_memberships(f"{tag}-u", [f"{tag}-c"])
        cold = svc.feed(f"{tag}-u", method="similar", days=None, at=NOW, k=len(AGES))
        assert cold.cold_start and len(cold.items) == len(AGES)
    finally:
        svc.close()


def test_a_feed_over_a_post_older_than_eight_years_answers_on_every_path(
    client: TestClient, tag: str
) -> None:
    """The testers' scenario: a 2018 post in a 3650-day window; the approximate path was a 422."""
    at = datetime(2026, 11, 20, tzinfo=UTC)
    posts = [
        {
            "id": f"{tag}-o",
            "community": f"{tag}-q",
            "title": "오래된 글",
            "created_at": "2018-01-01T00:00:00Z",
        },
        {"id": f"{tag}-n", "community": f"{tag}-q", "title": "새 글", "created_at": "2026-11-01T00:00:00Z"},
        {"id": f"{tag}-m", "community": f"{tag}-q", "title": "중간 글", "created_at": "2026-10-01T00:00:00Z"},
    ]
    for p, v in zip(posts, unit(np.random.default_rng(6), 3), strict=True):
        p["embedding"] = v.tolist()
    assert client.post("/posts", json={"posts": posts}).status_code == 200
    user = f"{tag}-u"
    assert client.post(f"/users/{user}/memberships/{tag}-q").status_code == 200
    ev = {"user_id": user, "post_id": f"{tag}-n", "kind": "like", "at": "2026-11-02T00:00:00Z"}
    assert client.post("/events", json={"events": [ev]}).status_code == 200
    pages = {}
    for when, days in ((at, "3650"), (datetime(2045, 1, 1, tzinfo=UTC), "all")):
        for path in ("auto", "exact", "exact-sql", "approx"):
            r = client.get(f"/users/{user}/feed", params={"path": path, "days": days, "at": when.isoformat()})
            assert r.status_code == 200, (path, when, r.text)
            pages[(path, when)] = [it["id"] for it in r.json()["items"]]
        assert len({tuple(v) for (_, w), v in pages.items() if w == when}) == 1, pages
        assert set(pages[("approx", when)]) == {f"{tag}-o", f"{tag}-m"}


# --- path ids that were not UTF-8 ------------------------------------------------------------------


def test_latest_baseline_includes_a_post_of_that_very_moment_and_breaks_ties_by_rid(
    feed: FeedService, tag: str
) -> None:
    """`at` is inclusive (a post published at `at` is already out), and posts of one moment come
    larger rid first on the SQL path, as in the in-process baseline (scoring.order_latest)."""
    vecs = unit(np.random.default_rng(21), 3)
    earlier = NOW - timedelta(hours=1)
    posts = [
        PostIn(id=f"{tag}-{name}", community=f"{tag}-c", title=name, created_at=when, embedding=v.tolist())
        for name, when, v in (("now", NOW, vecs[0]), ("t1", earlier, vecs[1]), ("t2", earlier, vecs[2]))
    ]
    feed.ingest_posts(posts)
    with feed.db.connection() as conn:
        rid = dict(conn.execute("SELECT id, rid FROM posts WHERE id LIKE %s", (f"{tag}-%",)).fetchall())
    tied = sorted((f"{tag}-t1", f"{tag}-t2"), key=lambda i: -rid[i])
    want = [f"{tag}-now", *tied]
    out = feed.baseline_feed("latest", communities=[f"{tag}-c"], k=10, days=None, at=NOW)
    assert [it.id for it in out.items] == want
    with feed.db.connection() as conn:
        rids, times, _ = serving._window_rows(conn, [f"{tag}-c"], None, NOW, f"{tag}-nobody")
    # The offline "latest" baseline (evaluate.Latest) orders the same rows the same way.
    assert rids[order_latest(times, rids)].tolist() == [rid[i] for i in want]
