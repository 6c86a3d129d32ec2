"""Post writes racing event batches: one transaction is held open at the moment that matters, with a
second connection, so each interleaving is produced on purpose rather than hoped for."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
import pytest

from hanseek.feed import events as ev
from hanseek.feed import posts as po
from hanseek.feed.models import EventIn, IngestResult, PostIn
from hanseek.feed.pgvec import to_np
from hanseek.feed.service import FeedService
from hanseek.store.db import Database

from .conftest import NOW, unit


class _Worker(threading.Thread):
    """Runs `fn` in a thread and keeps its result or exception for the test to look at."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.fn, self.result, self.error = fn, None, None
        self.start()

    def run(self) -> None:
        try:
            self.result = self.fn()
        except Exception as exc:
            self.error = exc

    def outcome(self) -> Any:
        self.join(30)
        assert not self.is_alive(), "the writer never finished"
        if self.error is not None:
            raise self.error
        return self.result


@contextmanager
def _watcher(db: Database) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db.url, autocommit=True) as conn:
        yield conn


def _blocked(watch: psycopg.Connection[Any], by: int | None = None) -> int:
    """How many backends of this database wait on a lock (held by backend `by`, if given)."""
    if by is None:
        sql = "SELECT count(*) FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0"
        row = watch.execute(sql).fetchone()
    else:
        sql = "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
        row = watch.execute(sql, (by,)).fetchone()
    return int(row[0]) if row else 0


def _wait_blocked_or_done(
    watch: psycopg.Connection[Any], worker: _Worker, *, by: int | None = None, n: int = 1
) -> bool:
    """Wait until `worker` finished (False) or `n` backends wait on a lock (True)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not worker.is_alive():
            return False
        if _blocked(watch, by) >= n:
            return True
        time.sleep(0.01)
    raise AssertionError("the writer neither finished nor waited on a lock")


def _post(tag: str, vec: np.ndarray, author: str, community: str = "c") -> PostIn:
    return PostIn(
        id=f"{tag}-p",
        community=f"{tag}-{community}",
        author=author,
        title="x",
        created_at=NOW,
        embedding=vec.tolist(),
    )


def _profile(db: Database, user: str) -> tuple[np.ndarray, float, dict[str, float]]:
    with db.connection() as conn:
        row = conn.execute("SELECT vec_sum, weight FROM user_profiles WHERE user_id = %s", (user,)).fetchone()
        aff = conn.execute(
            "SELECT dim || ':' || key, weight FROM user_affinity WHERE user_id = %s", (user,)
        ).fetchall()
    assert row is not None
    return to_np(row[0], np.float64), float(row[1]), {str(k): float(w) for k, w in aff}


def _assert_equals_its_events(db: Database, feed: FeedService, user: str) -> None:
    """The promise of docs/reliability.md: stored profile and affinity = recomputation from events."""
    vec, weight, aff = _profile(db, user)
    with db.connection() as conn:
        want = ev.recompute_profile(conn, user, feed.settings)
        rows = conn.execute(
            "SELECT d.dim || ':' || d.key, sum(e.weight) FROM events e JOIN posts p ON p.id = e.post_id "
            "CROSS JOIN LATERAL (VALUES ('community', p.community), ('author', p.author), "
            "('category', p.category)) AS d(dim, key) WHERE e.user_id = %s AND d.key IS NOT NULL "
            "GROUP BY 1",
            (user,),
        ).fetchall()
    np.testing.assert_allclose(vec, want.vec_sum, atol=1e-4)
    assert weight == pytest.approx(want.weight)
    assert aff == pytest.approx({str(k): float(w) for k, w in rows})


def _like(tag: str, user: str) -> EventIn:
    return EventIn(user_id=user, post_id=f"{tag}-p", kind="like", at=NOW)


def test_an_update_after_an_uncommitted_first_event_waits_for_it(
    db: Database, feed: FeedService, tag: str
) -> None:
    """The event's transaction is open (event stored, profile folded with the old vector) when the
    post is re-ingested with a new vector and author: the update must wait and then carry the event
    over, not miss it (before: profile 3 x the old vector and author:old for good)."""
    old, new = unit(np.random.default_rng(1), 2)
    feed.ingest_posts([_post(tag, old, "old")])
    user = f"{tag}-u"
    with _watcher(db) as watch, db.connection() as hold:
        ev.record_events(hold, [_like(tag, user)], feed.settings)
        update = _Worker(lambda: feed.ingest_posts([_post(tag, new, "new")]))
        assert _wait_blocked_or_done(watch, update, by=hold.info.backend_pid)
        hold.commit()
    assert update.outcome().updated == 1
    vec, weight, aff = _profile(db, user)
    np.testing.assert_allclose(vec, 3 * new.astype(np.float64), atol=1e-5)
    assert weight == pytest.approx(3.0)
    assert aff == pytest.approx({"author:new": 3.0, f"community:{tag}-c": 3.0})
    _assert_equals_its_events(db, feed, user)
    feed.delete_post(f"{tag}-p")
    vec, weight, aff = _profile(db, user)
    assert (weight, aff) == (0.0, {})


def test_a_first_event_during_an_uncommitted_update_uses_the_new_post(
    db: Database, feed: FeedService, tag: str
) -> None:
    """The update's transaction is open when a first event for the post arrives: the event must wait
    and fold the committed new vector and keys (before: it folded the old ones, and the update, which
    had looked for readers before the event existed, never corrected them)."""
    old, new = unit(np.random.default_rng(2), 2)
    feed.ingest_posts([_post(tag, old, "old")])
    user = f"{tag}-u"
    moved = [_post(tag, new, "new", community="d")]
    vecs, _ = po.post_vectors(moved, None, feed.settings, feed.dim)
    with _watcher(db) as watch, db.connection() as hold:
        po.upsert_posts(hold, moved, vecs, 0, feed.settings)
        like = _Worker(lambda: feed.record_events([_like(tag, user)]))
        assert _wait_blocked_or_done(watch, like, by=hold.info.backend_pid)
        hold.commit()
    assert like.outcome().accepted == 1
    vec, _, aff = _profile(db, user)
    np.testing.assert_allclose(vec, 3 * new.astype(np.float64), atol=1e-5)
    assert aff == pytest.approx({"author:new": 3.0, f"community:{tag}-d": 3.0})
    _assert_equals_its_events(db, feed, user)


def test_an_update_and_an_event_batch_of_one_reader_do_not_deadlock(
    db: Database, feed: FeedService, tag: str
) -> None:
    """An event batch holds the reader's profile; the post's update arrives and must wait for it
    without first taking rows the batch goes on to lock (before: the update locked the reader's
    affinity rows, then waited for the profile; the batch then waited for those rows: a deadlock,
    and the post write, never retried, failed)."""
    rng = np.random.default_rng(3)
    v = unit(rng, 3)
    other = PostIn(
        id=f"{tag}-q", community=f"{tag}-c", author="old", title="y", created_at=NOW, embedding=v[1].tolist()
    )
    feed.ingest_posts([_post(tag, v[0], "old"), other])
    user = f"{tag}-u"
    feed.record_events(
        [
            EventIn(user_id=user, post_id=f"{tag}-p", kind="read", at=NOW),
            EventIn(user_id=user, post_id=other.id, kind="read", at=NOW),
        ]
    )
    with _watcher(db) as watch, db.connection() as hold:
        # Stops the batch at its counters, after it has locked the profile, before its affinities.
        hold.execute("SELECT 1 FROM post_stats WHERE post_id = %s FOR UPDATE", (other.id,))
        batch = _Worker(
            lambda: feed.record_events([EventIn(user_id=user, post_id=other.id, kind="like", at=NOW)])
        )
        assert _wait_blocked_or_done(watch, batch, by=hold.info.backend_pid)
        update = _Worker(lambda: feed.ingest_posts([_post(tag, v[2], "new", community="d")]))
        assert _wait_blocked_or_done(watch, update, n=2)
        hold.commit()  # within the deadlock timeout of the update's wait, so a cycle would be found
    assert batch.outcome().accepted == 1
    assert update.outcome().updated == 1
    _, weight, aff = _profile(db, user)
    assert weight == pytest.approx(5.0)
    assert aff == pytest.approx(
        {"author:old": 4.0, "author:new": 1.0, f"community:{tag}-c": 4.0, f"community:{tag}-d": 1.0}
    )
    _assert_equals_its_events(db, feed, user)


def test_a_post_write_rolled_back_by_a_concurrent_one_is_retried(
    feed: FeedService, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = po.upsert_posts, []

    def collide_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        return real(*args, **kwargs)

    monkeypatch.setattr(po, "upsert_posts", collide_once)
    got = feed.ingest_posts([_post(tag, unit(np.random.default_rng(4), 1)[0], "a")])
    assert got.inserted == 1 and len(calls) == 2


def test_two_creates_of_one_id_and_an_event_between_them(db: Database, feed: FeedService, tag: str) -> None:
    """Two ingests create one new post id: B looked for the post (none yet) while A's insert was
    open, then A committed, a first like folded A's vector and author, and only then did B's upsert
    run. B must handle the post as the update it has become (before: its ON CONFLICT silently
    updated the row without locking it or looking for readers, so the profile kept A's vector and
    the affinity `author:a` for good, and B answered "inserted")."""
    va, vb = unit(np.random.default_rng(5), 2)
    user = f"{tag}-u"
    a = [_post(tag, va, "a")]
    vecs, _ = po.post_vectors(a, None, feed.settings, feed.dim)
    with _watcher(db) as watch, db.connection() as hold_a, db.connection() as hold_community:
        po.upsert_posts(hold_a, a, vecs, 0, feed.settings)
        # B's community, new and held uncommitted: B stops after its look for the post, before its upsert.
        hold_community.execute("INSERT INTO communities (id) VALUES (%s)", (f"{tag}-d",))
        b = _Worker(lambda: feed.ingest_posts([_post(tag, vb, "b", community="d")]))
        assert _wait_blocked_or_done(watch, b, by=hold_community.info.backend_pid)
        hold_a.commit()
        assert feed.record_events([_like(tag, user)]).accepted == 1
        hold_community.commit()
    got = b.outcome()
    vec, weight, aff = _profile(db, user)
    np.testing.assert_allclose(vec, 3 * vb.astype(np.float64), atol=1e-5)
    assert weight == pytest.approx(3.0)
    assert aff == pytest.approx({"author:b": 3.0, f"community:{tag}-d": 3.0})
    _assert_equals_its_events(db, feed, user)
    assert got == IngestResult(inserted=0, updated=1, encoded=0)
    feed.delete_post(f"{tag}-p")
    assert _profile(db, user)[1:] == (0.0, {})


def test_two_creates_of_one_id_wait_for_an_open_event_batch(
    db: Database, feed: FeedService, tag: str
) -> None:
    """As above, but the like's batch is still open when B's upsert runs: B must wait for it and
    then carry its event over (before: B's update did not conflict with the batch's KEY SHARE lock,
    committed first, and the batch then stored A's vector and author)."""
    va, vb = unit(np.random.default_rng(6), 2)
    user = f"{tag}-u"
    a = [_post(tag, va, "a")]
    vecs, _ = po.post_vectors(a, None, feed.settings, feed.dim)
    with (
        _watcher(db) as watch,
        db.connection() as hold_a,
        db.connection() as hold_community,
        db.connection() as hold_like,
    ):
        po.upsert_posts(hold_a, a, vecs, 0, feed.settings)
        hold_community.execute("INSERT INTO communities (id) VALUES (%s)", (f"{tag}-d",))
        b = _Worker(lambda: feed.ingest_posts([_post(tag, vb, "b", community="d")]))
        assert _wait_blocked_or_done(watch, b, by=hold_community.info.backend_pid)
        hold_a.commit()
        assert ev.record_events(hold_like, [_like(tag, user)], feed.settings).accepted == 1
        hold_community.commit()
        assert _wait_blocked_or_done(watch, b, by=hold_like.info.backend_pid)
        hold_like.commit()
    got = b.outcome()
    vec, _, aff = _profile(db, user)
    np.testing.assert_allclose(vec, 3 * vb.astype(np.float64), atol=1e-5)
    assert aff == pytest.approx({"author:b": 3.0, f"community:{tag}-d": 3.0})
    _assert_equals_its_events(db, feed, user)
    assert got == IngestResult(inserted=0, updated=1, encoded=0)


def test_two_membership_replaces_at_once_leave_one_of_the_sets(
    db: Database, feed: FeedService, tag: str
) -> None:
    """Each replace deleted only the memberships it could see: the other's uncommitted inserts
    survived it, and the user ended in communities no request had asked for (until session 18)."""
    user = f"{tag}-m"
    feed.set_memberships(user, [f"{tag}-old"], replace=True)
    with _watcher(db) as watch, db.connection() as first:
        ev.set_memberships(first, user, [f"{tag}-a1", f"{tag}-a2"], replace=True)
        second = _Worker(lambda: feed.set_memberships(user, [f"{tag}-b1"], replace=True))
        assert _wait_blocked_or_done(watch, second, by=first.info.backend_pid)
        first.commit()
    second.outcome()
    with db.connection() as conn:
        rows = conn.execute("SELECT community FROM memberships WHERE user_id = %s", (user,)).fetchall()
    assert sorted(r[0] for r in rows) == [f"{tag}-b1"]  # the later replace's set, exactly
