"""FeedService on the real embedded PostgreSQL: ingest, events, profiles, feed paths, deletes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from hanseek.config import Settings
from hanseek.feed.errors import InvalidInput, NotFoundError
from hanseek.feed.models import EventIn, PostIn
from hanseek.feed.pgvec import to_np
from hanseek.feed.service import FeedService
from hanseek.feed.settings import FeedSettings
from hanseek.store.db import Database

from .conftest import NOW, make_posts, unit, wait_until

WEIGHTS = {"read": 1.0, "like": 3.0, "comment": 4.0}


def _profile_reference(vecs: np.ndarray, events: list[tuple[int, str]]) -> np.ndarray:
    w = np.array([WEIGHTS[k] for _, k in events])
    m = (w[:, None] * vecs[[i for i, _ in events]]).sum(0) / w.sum()
    return m / np.linalg.norm(m)


def _brute_force(
    posts: list, vecs: np.ndarray, q: np.ndarray, comms: set[str], days: float, read: set[int], k: int
) -> list[str]:
    t_from = NOW - timedelta(days=days)
    rows = [
        i
        for i, p in enumerate(posts)
        if p.community in comms and t_from <= p.created_at <= NOW and i not in read
    ]
    rows.sort(key=lambda i: -float(vecs[i] @ q))
    return [posts[i].id for i in rows[:k]]


def _setup_user(feed: FeedService, tag: str, posts: list, events: list[tuple[int, str]]) -> str:
    user = f"{tag}-u1"
    feed.set_memberships(user, [f"{tag}-c0", f"{tag}-c1"])
    feed.record_events(
        [
            EventIn(user_id=user, post_id=posts[i].id, kind=kind, at=NOW - timedelta(hours=j))  # type: ignore[arg-type]
            for j, (i, kind) in enumerate(events)
        ]
    )
    return user


def test_profile_and_exact_paths_equal_numpy(feed: FeedService, tag: str) -> None:
    posts, vecs = make_posts(tag, 600, 4, 60)
    res = feed.ingest_posts(posts)
    assert (res.inserted, res.updated, res.encoded) == (600, 0, 0)
    events = [(0, "read"), (0, "like"), (4, "read"), (8, "comment"), (12, "read"), (13, "read")]
    user = _setup_user(feed, tag, posts, events)
    q = _profile_reference(vecs, events)

    with feed.db.connection() as conn:
        row = conn.execute(
            "SELECT vec_sum, weight, n_events FROM user_profiles WHERE user_id = %s", (user,)
        ).fetchone()
    assert row is not None
    stored = to_np(row[0], np.float64) / row[1]
    np.testing.assert_allclose(stored / np.linalg.norm(stored), q, atol=1e-6)
    assert row[1] == pytest.approx(sum(WEIGHTS[k] for _, k in events)) and row[2] == len(events)

    read = {i for i, _ in events}
    comms = {f"{tag}-c0", f"{tag}-c1"}
    for days in (7, 30, None):
        expected = _brute_force(posts, vecs, q, comms, days or 10_000, read, 20)
        for path in ("exact", "exact-sql"):
            out = feed.feed(user, k=20, days=days, path=path, at=NOW, method="similar")  # type: ignore[arg-type]
            assert [it.id for it in out.items] == expected, (path, days)
            assert out.path == {"exact": "exact-memory", "exact-sql": "exact-sql"}[path]
            for it in out.items:
                i = int(it.id.rsplit("p", 1)[1])
                assert it.score == pytest.approx(float(vecs[i] @ q), abs=1e-4)
                assert it.why is not None and it.why.post_id in {posts[j].id for j in read}
        approx = feed.feed(user, k=20, days=days, path="approx", at=NOW, method="similar")
        assert approx.path == "approx-hnsw"
        recall = len({it.id for it in approx.items} & set(expected)) / max(len(expected), 1)
        assert recall >= 0.9, (days, recall)
    auto = feed.feed(user, k=10, days=30, at=NOW, method="similar")
    assert auto.path == "exact-memory" and auto.estimated_candidates and auto.estimated_candidates > 0


def test_filters_never_leak(feed: FeedService, tag: str) -> None:
    posts, _ = make_posts(tag, 400, 5, 90, seed=1)
    feed.ingest_posts(posts)
    # Posts in the future of `at` must not show either.
    user = _setup_user(feed, tag, posts, [(0, "read"), (5, "read"), (10, "like")])
    by_id = {p.id: p for p in posts}
    read = {posts[i].id for i in (0, 5, 10)}
    runs = [(p, "similar") for p in ("exact", "exact-sql", "approx")] + [
        ("exact", "ranked"),
        ("exact-sql", "ranked"),
    ]
    for path, method in runs:
        for days in (3, 14, 45, None):
            for at in (NOW, NOW - timedelta(days=20)):
                out = feed.feed(user, k=50, days=days, path=path, at=at, method=method)  # type: ignore[arg-type]
                for it in out.items:
                    p = by_id[it.id]
                    assert p.community in (f"{tag}-c0", f"{tag}-c1")
                    assert p.created_at <= at
                    if days is not None:
                        assert p.created_at >= at - timedelta(days=days)
                    assert it.id not in read
    for kind in ("latest", "popular"):
        out = feed.baseline_feed(kind, user_id=user, k=50, days=14, at=NOW)
        assert out.items
        for it in out.items:
            p = by_id[it.id]
            assert p.community in (f"{tag}-c0", f"{tag}-c1") and p.created_at >= NOW - timedelta(days=14)
            assert it.id not in read
        if kind == "latest":
            times = [it.created_at for it in out.items]
            assert times == sorted(times, reverse=True)
        else:
            pops = [it.likes + it.comments for it in out.items]
            assert pops == sorted(pops, reverse=True)


def test_event_batches_are_idempotent_and_all_or_nothing(feed: FeedService, tag: str) -> None:
    posts, _ = make_posts(tag, 20, 1, 5, seed=2)
    feed.ingest_posts(posts)
    user = f"{tag}-u"
    batch = [
        EventIn(user_id=user, post_id=posts[i].id, kind="read", at=NOW - timedelta(minutes=i))
        for i in range(5)
    ]
    first = feed.record_events(batch)
    assert (first.accepted, first.duplicates, first.users_created) == (5, 0, 1)
    before = feed.get_user(user)
    again = feed.record_events(batch)  # a client retrying after a timeout
    assert (again.accepted, again.duplicates) == (0, 5)
    after = feed.get_user(user)
    assert after.events == before.events == 5 and after.profile_weight == before.profile_weight
    bad = [
        *batch,
        EventIn(user_id=user, post_id=posts[6].id, kind="like", at=NOW),
        EventIn(user_id=user, post_id=f"{tag}-missing", kind="read", at=NOW),
    ]
    with pytest.raises(InvalidInput, match="unknown post"):
        feed.record_events(bad)
    assert feed.get_user(user).events == 5  # the valid like in the failed batch was not stored
    with feed.db.connection() as conn:
        row = conn.execute(
            "SELECT reads, likes FROM post_stats WHERE post_id = %s", (posts[0].id,)
        ).fetchone()
    assert row == (1, 0)


def test_a_new_like_changes_the_next_feed(feed: FeedService, tag: str) -> None:
    posts, vecs = make_posts(tag, 300, 2, 20, seed=3)
    feed.ingest_posts(posts)
    user = _setup_user(feed, tag, posts, [(0, "read")])
    before = [it.id for it in feed.feed(user, k=10, days=30, at=NOW, method="similar").items]
    # Like a post far from the current profile: the profile moves, and so does the feed.
    far = int(np.argmin(vecs[:300] @ vecs[0]))
    feed.record_events([EventIn(user_id=user, post_id=posts[far].id, kind="like", at=NOW)])
    after = [it.id for it in feed.feed(user, k=10, days=30, at=NOW, method="similar").items]
    assert after != before


def test_delete_removes_from_feeds_and_profiles(feed: FeedService, tag: str) -> None:
    posts, vecs = make_posts(tag, 200, 2, 20, seed=4)
    feed.ingest_posts(posts)
    events = [(0, "read"), (2, "like"), (4, "comment")]
    user = _setup_user(feed, tag, posts, events)
    top = feed.feed(user, k=5, days=30, at=NOW, method="similar").items[0].id
    feed.delete_post(top)
    feed.delete_post(posts[2].id)  # a post the user liked
    for path in ("exact", "exact-sql", "approx"):
        for method in ("similar", "ranked"):
            out = feed.feed(user, k=50, days=30, path=path, at=NOW, method=method)  # type: ignore[arg-type]
            ids = [it.id for it in out.items]
            assert top not in ids and posts[2].id not in ids
    for kind in ("latest", "popular"):
        out = feed.baseline_feed(kind, user_id=user, k=200, days=30, at=NOW)
        assert top not in [it.id for it in out.items]
    # The profile is now the weighted mean over the remaining events.
    expected = _profile_reference(vecs, [(0, "read"), (4, "comment")])
    with feed.db.connection() as conn:
        row = conn.execute(
            "SELECT vec_sum, weight, n_events FROM user_profiles WHERE user_id = %s", (user,)
        ).fetchone()
    assert row is not None and row[2] == 2 and row[1] == pytest.approx(5.0)
    got = to_np(row[0], np.float64)
    np.testing.assert_allclose(got / np.linalg.norm(got), expected, atol=1e-5)
    with pytest.raises(NotFoundError):
        feed.delete_post(top)


def test_an_update_of_a_read_post_carries_over_to_profiles_and_affinities(
    feed: FeedService, tag: str
) -> None:
    """A read post re-ingested with a new vector and board: the profile and the board affinity follow
    it, and deleting it afterwards leaves exactly what the remaining events give."""
    posts, vecs = make_posts(tag, 40, 2, 10, seed=8)
    feed.ingest_posts(posts)
    user = _setup_user(feed, tag, posts, [(0, "read"), (2, "like")])
    new_vec = np.random.default_rng(3).standard_normal(vecs.shape[1]).astype(np.float32)
    new_vec /= np.linalg.norm(new_vec)
    moved = posts[2].model_copy(update={"community": f"{tag}-c1", "embedding": new_vec.tolist()})
    assert (posts[0].community, posts[2].community, moved.community) == (
        f"{tag}-c0",
        f"{tag}-c0",
        f"{tag}-c1",
    )
    feed.ingest_posts([moved])

    def profile_and_boards() -> tuple[np.ndarray, dict[str, float]]:
        with feed.db.connection() as conn:
            row = conn.execute("SELECT vec_sum FROM user_profiles WHERE user_id = %s", (user,)).fetchone()
            boards = conn.execute(
                "SELECT key, weight FROM user_affinity WHERE user_id = %s AND dim = 'community'", (user,)
            ).fetchall()
        assert row is not None
        v = to_np(row[0], np.float64)
        return v / np.linalg.norm(v), {str(k): float(w) for k, w in boards}

    now_vecs = vecs.copy()
    now_vecs[2] = new_vec
    got, boards = profile_and_boards()
    np.testing.assert_allclose(got, _profile_reference(now_vecs, [(0, "read"), (2, "like")]), atol=1e-5)
    assert boards == {f"{tag}-c0": pytest.approx(1.0), f"{tag}-c1": pytest.approx(3.0)}  # the like moved
    feed.delete_post(moved.id)
    got, boards = profile_and_boards()
    np.testing.assert_allclose(got, _profile_reference(vecs, [(0, "read")]), atol=1e-5)
    assert boards == {posts[0].community: pytest.approx(1.0)}


def test_reingest_updates_a_post(feed: FeedService, tag: str) -> None:
    posts, _ = make_posts(tag, 50, 2, 10, seed=5)
    feed.ingest_posts(posts)
    user = _setup_user(feed, tag, posts, [(1, "read")])
    moved = posts[3].model_copy(update={"community": f"{tag}-c9", "title": "moved"})
    res = feed.ingest_posts([moved])
    assert (res.inserted, res.updated) == (0, 1)
    for path in ("exact", "exact-sql"):
        for method in ("similar", "ranked"):
            out = feed.feed(user, k=50, days=30, path=path, at=NOW, method=method)  # type: ignore[arg-type]
            assert moved.id not in [it.id for it in out.items]


def test_cold_start_blends_popular_and_latest(feed: FeedService, tag: str) -> None:
    posts, _ = make_posts(tag, 120, 3, 30, seed=6)
    # The newest post is also the most liked: both lists hold it.
    posts[0] = posts[0].model_copy(update={"created_at": NOW - timedelta(minutes=1), "likes": 10_000})
    feed.ingest_posts(posts)
    user = f"{tag}-new"
    feed.set_memberships(user, [f"{tag}-c0", f"{tag}-c2"])
    ranked = feed.feed(user, k=10, days=30, at=NOW)
    assert ranked.cold_start and ranked.kind == "ranked" and len(ranked.items) == 10
    assert {s for it in ranked.items for s in it.source.split("+")} <= {"latest", "popular"}
    out = feed.feed(user, k=10, days=30, at=NOW, method="similar")
    assert out.cold_start and out.kind == "cold-start" and len(out.items) == 10
    assert {s for it in out.items for s in it.source.split("+")} == {"popular", "latest"}
    latest = feed.baseline_feed("latest", user_id=user, k=10, days=30, at=NOW)
    popular = feed.baseline_feed("popular", user_id=user, k=10, days=30, at=NOW)
    # A post both lists hold says so (it was labelled "popular" alone, also with no likes at all).
    both = {it.id for it in latest.items} & {it.id for it in popular.items}
    assert posts[0].id in both
    assert all((it.source == "latest+popular") == (it.id in both) for it in out.items), out.items
    ids = [it.id for it in out.items]
    assert ids[0] == popular.items[0].id and ids[1] == next(it.id for it in latest.items if it.id != ids[0])
    assert set(ids) <= {it.id for it in latest.items} | {it.id for it in popular.items}
    assert len(set(ids)) == len(ids)


def test_errors(feed: FeedService, tag: str) -> None:
    with pytest.raises(NotFoundError):
        feed.feed(f"{tag}-nobody")
    feed.set_memberships(f"{tag}-u", [f"{tag}-c0"])
    for kwargs in (
        {"k": 0},
        {"k": 10_000},
        {"days": 0},
        {"days": 100_000},
        {"path": "fast"},
        {"method": "x"},
    ):
        with pytest.raises(InvalidInput):
            feed.feed(f"{tag}-u", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        feed.baseline_feed("random", user_id=f"{tag}-u")
    alone = f"{tag}-alone"
    feed.set_memberships(alone, [])
    assert feed.feed(alone).items == [] and feed.feed(alone).note


def test_other_processes_follow_writes(db: Database, feed: FeedService, tag: str) -> None:
    """A second service (another worker process in production) sees writes via LISTEN/NOTIFY."""
    from hanseek.feed.settings import FeedSettings

    other = FeedService(db, settings=FeedSettings(index_poll_seconds=3600), load_in_background=False)
    try:
        posts, _ = make_posts(tag, 30, 1, 5, seed=7)
        feed.ingest_posts(posts)
        assert other.index is not None
        index = other.index
        wait_until(lambda: index.count([f"{tag}-c0"], None, None) >= 30)
        assert other.index.count([f"{tag}-c0"], None, None) == 30
        feed.delete_posts([p.id for p in posts[:10]])
        wait_until(lambda: index.count([f"{tag}-c0"], None, None) <= 20)
        assert other.index.count([f"{tag}-c0"], None, None) == 20
    finally:
        other.close()


def test_max_k_is_the_settings_bound(db: Database, tag: str) -> None:
    """HANSEEK_FEED_MAX_K moves the limit both ways; the API and the CLI defer to it."""
    posts, _ = make_posts(tag, 300, 1, 20, seed=5)
    svc = FeedService(db, settings=FeedSettings(max_k=250), load_in_background=False, follow=False)
    try:
        svc.ingest_posts(posts)
        svc.set_memberships(f"{tag}-u", [f"{tag}-c0"])
        for path in ("auto", "exact-sql"):  # a page longer than the ranker's usual union still fills
            assert len(svc.feed(f"{tag}-u", k=240, days=None, at=NOW, path=path).items) == 240, path
        with pytest.raises(InvalidInput, match="k must be between 1 and 250, got 251"):
            svc.feed(f"{tag}-u", k=251, days=None, at=NOW)
    finally:
        svc.close()
    with pytest.raises(ValueError, match="less than or equal to 1000"):
        FeedSettings(max_k=1001)


def test_one_moment_written_in_two_offsets_is_one_event(feed: FeedService, tag: str) -> None:
    posts, _ = make_posts(tag, 2, 1, 5, seed=4)
    feed.ingest_posts(posts)
    like = {"user_id": f"{tag}-u", "post_id": posts[0].id, "kind": "like"}
    assert feed.record_events([EventIn(**like, at="2024-05-01T00:00:00Z")]).accepted == 1
    retry = feed.record_events([EventIn(**like, at="2024-05-01T09:00:00+09:00")])
    assert (retry.accepted, retry.duplicates) == (0, 1)
    assert feed.get_user(f"{tag}-u").events == 1


def _race(svc: FeedService, first: list[EventIn], second: list[EventIn]) -> list[object]:
    """Both batches sent at the same moment from two threads: what each call returned or raised."""
    start = threading.Barrier(2)
    got: list[object] = [None, None]

    def send(i: int, batch: list[EventIn]) -> None:
        start.wait()
        try:
            got[i] = svc.record_events(batch).accepted
        except Exception as e:
            got[i] = e

    threads = [threading.Thread(target=send, args=(i, b)) for i, b in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def test_the_same_events_in_opposite_orders_do_not_deadlock(db: Database, tag: str) -> None:
    """Two pipelines delivering one batch in different orders: keys are locked in one order."""
    posts, _ = make_posts(tag, 20, 1, 5, seed=6)
    svc = FeedService(db, settings=FeedSettings(), load_in_background=False, follow=False)
    try:
        svc.ingest_posts(posts)
        for trial in range(12):
            events = [
                EventIn(
                    id=f"{tag}-t{trial}-e{i}",
                    user_id=f"{tag}-u{i % 7}",
                    post_id=posts[i % 20].id,
                    kind="read",
                    at=NOW - timedelta(minutes=i),
                )
                for i in range(300)
            ]
            got = _race(svc, events, events[::-1])
            assert sorted(got, key=str) == [0, 300], (trial, got)
    finally:
        svc.close()


def test_a_batch_rolled_back_by_a_concurrent_one_is_retried(
    feed: FeedService, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from hanseek.feed import events as ev

    posts, _ = make_posts(tag, 2, 1, 5, seed=7)
    feed.ingest_posts(posts)
    real, calls = ev.record_events, []

    def collide_once(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ev, "record_events", collide_once)
    got = feed.record_events([EventIn(user_id=f"{tag}-u", post_id=posts[0].id, kind="read", at=NOW)])
    assert got.accepted == 1 and len(calls) == 2


def test_counts_near_the_integer_limit_do_not_break_feeds(feed: FeedService, tag: str) -> None:
    """likes and comments may each be up to 2e9 (PostIn); their sum is past int4."""
    posts, _ = make_posts(tag, 2, 1, 5, seed=8)
    posts[0] = posts[0].model_copy(update={"likes": 2_000_000_000, "comments": 2_000_000_000})
    feed.ingest_posts(posts)
    user = f"{tag}-u"
    feed.set_memberships(user, [f"{tag}-c0"])
    popular = feed.baseline_feed("popular", communities=[f"{tag}-c0"], days=None, at=NOW)
    assert popular.items[0].id == posts[0].id
    assert feed.feed(user, method="similar", days=None, at=NOW).items  # cold start: popular in SQL
    feed.record_events([EventIn(user_id=user, post_id=posts[0].id, kind="read", at=NOW)])
    for path in ("auto", "exact-sql"):
        items = feed.feed(user, days=None, at=NOW, path=path).items
        assert [it.id for it in items] == [posts[1].id], path
    read = feed.feed(user, days=None, at=NOW, method="similar").items
    assert read[0].id == posts[1].id


@pytest.fixture()
def seoul_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's local zone is Asia/Seoul (PostgreSQL's stays UTC)."""
    monkeypatch.setenv("TZ", "Asia/Seoul")
    time.tzset()
    try:
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_feed_time_without_a_zone_is_utc_on_every_path(
    feed: FeedService, tag: str, seoul_clock: None
) -> None:
    vecs = make_posts(tag, 2, 1, 1)[1]
    old, new = (
        PostIn(
            id=f"{tag}-{name}",
            community=f"{tag}-c",
            title=name,
            created_at=datetime(2024, 5, day, 5, 0),  # no zone: UTC, as documented
            embedding=vecs[i].tolist(),
        )
        for i, (name, day) in enumerate((("old", 1), ("new", 2)))
    )
    feed.ingest_posts([old, new])
    feed.set_memberships(f"{tag}-u", [f"{tag}-c"])
    feed.record_events([EventIn(user_id=f"{tag}-u", post_id=old.id, kind="read", at=datetime(2024, 5, 1, 6))])
    at = datetime(2024, 5, 2, 6, 0)  # an hour after the new post, in UTC
    for path, method in (("auto", "similar"), ("exact-sql", "similar"), ("auto", "ranked")):
        out = feed.feed(f"{tag}-u", at=at, days=1, path=path, method=method)
        assert [it.id for it in out.items] == [new.id], (path, method, out.path)
    latest = feed.baseline_feed("latest", communities=[f"{tag}-c"], at=at, days=1)
    assert [it.id for it in latest.items] == [new.id]


def test_times_outside_years_1_to_9999_in_utc_are_refused(feed: FeedService, tag: str) -> None:
    early = "0001-01-01T00:00:00+09:00"  # year 0 in UTC
    with pytest.raises(ValueError, match="outside years 1-9999 in UTC"):
        EventIn(user_id="u", post_id="p", kind="read", at=early)
    with pytest.raises(ValueError, match="outside years 1-9999 in UTC"):
        PostIn(id="p", community="c", created_at=early)
    feed.set_memberships(f"{tag}-u", [f"{tag}-c"])
    with pytest.raises(InvalidInput, match="outside years 1-9999"):
        feed.feed(f"{tag}-u", at=datetime.fromisoformat(early))


def test_event_times_must_be_past_and_after_1970() -> None:
    """A read dated 2036 froze the post's trend counters until then; dates at the calendar's ends
    made ranker training fail on NaN features. A day ahead is clock skew, and accepted."""
    now = datetime.now(UTC)
    for at in (now + timedelta(days=2), datetime(9999, 12, 31, tzinfo=UTC)):
        with pytest.raises(ValueError, match="in the future"):
            EventIn(user_id="u", post_id="p", at=at)
    with pytest.raises(ValueError, match="before 1970-01-01"):
        EventIn(user_id="u", post_id="p", at="1969-12-31T23:59:59Z")
    assert EventIn(user_id="u", post_id="p", at=now + timedelta(hours=20)).at is not None
    assert EventIn(user_id="u", post_id="p", at="1970-01-01T00:00:00Z").at is not None


def test_a_delete_after_the_half_life_changed_rebuilds_the_profile(db: Database, tag: str) -> None:
    """Events cannot be taken out of a profile at another half-life than it was built with: the
    profile is rebuilt from the remaining events, so it equals a recomputation, and stays so."""
    from hanseek.feed.events import recompute_profile

    posts, _ = make_posts(tag, 3, 1, 5, seed=9)
    before = FeedService(db, settings=FeedSettings(), load_in_background=False, follow=False)
    after = FeedService(
        db, settings=FeedSettings(decay_half_life_days=7.0), load_in_background=False, follow=False
    )
    try:
        before.ingest_posts(posts)
        user = f"{tag}-u"
        before.record_events(
            [
                EventIn(user_id=user, post_id=posts[0].id, kind="like", at=NOW - timedelta(days=30)),
                EventIn(user_id=user, post_id=posts[1].id, kind="read", at=NOW - timedelta(days=1)),
            ]
        )
        after.delete_post(posts[0].id)
        with db.connection() as conn:
            stored = conn.execute(
                "SELECT weight, half_life_days, n_events FROM user_profiles WHERE user_id = %s", (user,)
            ).fetchone()
            expected = recompute_profile(conn, user, after.settings)
        assert stored is not None and stored[1] == 7.0 and stored[2] == 1
        assert stored[0] == pytest.approx(expected.weight, rel=1e-5)
    finally:
        before.close()
        after.close()


def test_a_running_service_follows_a_restore(scratch_settings: Settings, tmp_path: Path) -> None:
    """A restore recreates the tables without notifying anyone; the in-process index reloads when it
    sees a new posts table, so the memory path answers as the SQL path does."""
    from hanseek.store.backup import backup, restore

    with Database.open(scratch_settings) as db:
        db.migrate()
        svc = FeedService(
            db, settings=FeedSettings(index_poll_seconds=0.0), load_in_background=False, follow=False
        )
        try:
            posts, _ = make_posts("r", 4, 1, 5, seed=10)
            seen, keep, old, new = posts
            svc.ingest_posts([seen, keep, old])
            svc.set_memberships("r-u", ["r-c0"])
            svc.record_events([EventIn(user_id="r-u", post_id=seen.id, kind="read", at=NOW)])
            archive = tmp_path / "feed.dump"
            assert scratch_settings.database_url is not None
            backup(scratch_settings.database_url, archive)
            svc.delete_post(old.id)
            svc.ingest_posts([new])
            restore(scratch_settings.database_url, archive)
            for path in ("auto", "exact-sql"):
                out = svc.feed("r-u", days=None, at=NOW, path=path, method="similar")
                assert sorted(it.id for it in out.items) == sorted([keep.id, old.id]), (path, out.path)
        finally:
            svc.close()


def test_memberships_of_many_users_are_stored_whole(
    feed: FeedService, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hanseek.feed import events as ev

    real = ev.set_memberships

    def failing_second(conn: object, user: str, communities: object, *, replace: bool) -> int:
        if user.endswith("-b"):
            raise RuntimeError("the database went away")  # what a real failure mid-file looks like here
        return real(conn, user, communities, replace=replace)  # type: ignore[arg-type]

    monkeypatch.setattr(ev, "set_memberships", failing_second)
    with pytest.raises(RuntimeError):
        feed.add_memberships({f"{tag}-a": [f"{tag}-c0"], f"{tag}-b": [f"{tag}-c1"]})
    with pytest.raises(NotFoundError):
        feed.get_user(f"{tag}-a")  # the first user was not stored either
    monkeypatch.setattr(ev, "set_memberships", real)
    assert feed.add_memberships({f"{tag}-a": [f"{tag}-c0"], f"{tag}-b": [f"{tag}-c1", f"{tag}-c0"]}) == 2
    assert feed.get_user(f"{tag}-b").communities == sorted([f"{tag}-c0", f"{tag}-c1"])


def test_equal_similarities_give_one_page_on_both_exact_paths(feed: FeedService, tag: str) -> None:
    """Posts with one vector (the same text posted again, or cross-posted) tie in cosine. The
    in-process index put the newer first and the SQL path the smaller rid first, so the API's
    default and `hanseek feed show` gave different pages, for the similar and the ranked feed."""
    rng = np.random.default_rng(17)
    same = unit(rng, 1)[0]
    comm = f"{tag}-c0"

    def post(name: str, at: datetime, vec: np.ndarray) -> PostIn:
        return PostIn(id=f"{tag}-{name}", community=comm, title=name, created_at=at, embedding=vec.tolist())

    read = post("read", NOW - timedelta(days=40), same)
    # 70 copies, ingested in an order unrelated to their times, six of them in pairs with one time.
    times = [NOW - timedelta(days=30, hours=i // 2 if i < 6 else i) for i in range(70)]
    order = rng.permutation(70)
    for i in order:
        feed.ingest_posts([post(f"dup{i:02d}", times[i], same)])
    noise = unit(rng, 70)
    feed.ingest_posts(
        [read] + [post(f"noise{i:02d}", NOW - timedelta(days=i % 20), noise[i]) for i in range(70)]
    )
    user = f"{tag}-u-ties"
    feed.set_memberships(user, [comm])
    feed.record_events([EventIn(user_id=user, post_id=read.id, kind="read", at=NOW - timedelta(days=1))])
    for method in ("similar", "ranked"):
        for k in (10, 40):
            pages = {
                path: [
                    it.id for it in feed.feed(user, k=k, days=None, path=path, at=NOW, method=method).items
                ]  # type: ignore[arg-type]
                for path in ("exact", "exact-sql")
            }
            assert pages["exact"] == pages["exact-sql"], (method, k, pages)


def test_the_last_reads_are_one_order_when_events_share_a_time(feed: FeedService, tag: str) -> None:
    """Events of one batch without `at` all get the same time. "The last 3 reads" (the short-term
    source and features, and `why`) were the 3 largest times with no tie-break, so the same request
    gave different pages as the query plan changed. Now the later-recorded event (larger id) counts
    as the later one, in both the feed's context and `why`."""
    from hanseek.feed import query as qy

    posts, _ = make_posts(tag, 12, 1, 5, seed=21)
    feed.ingest_posts(posts)
    user = f"{tag}-u-same-time"
    feed.set_memberships(user, [f"{tag}-c0"])
    at = NOW - timedelta(hours=1)
    order = [7, 2, 11, 0, 5, 9, 3, 8, 1, 10, 4, 6]
    feed.record_events([EventIn(user_id=user, post_id=posts[i].id, kind="read", at=at) for i in order])
    with feed.db.connection() as conn:
        rows = conn.execute(
            "SELECT post_id FROM events WHERE user_id = %s ORDER BY at DESC, id DESC", (user,)
        ).fetchall()
        newest_first = [r[0] for r in rows]
        for n in (3, 5, 12):
            ctx = qy.load_context(conn, user, None, n, affinity=True)
            assert [x.id for x in ctx.recent or []] == newest_first[:n]
            assert [x.id for x in qy.recent_interactions(conn, user, n)] == newest_first[:n]
