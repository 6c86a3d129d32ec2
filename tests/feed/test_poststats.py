"""The in-process copy of post_stats: lookups against a reference, and following other writers."""

from __future__ import annotations

import math
import time
from datetime import timedelta

import numpy as np

from hanseek.feed.models import EventIn
from hanseek.feed.poststats import PostStats
from hanseek.feed.replay import TREND_HALF_LIVES_DAYS
from hanseek.feed.scoring import decay_factor
from hanseek.feed.service import FeedService
from hanseek.feed.settings import FeedSettings
from hanseek.store.db import Database

from .conftest import NOW, make_posts, wait_until


def _reference(rows: dict[int, tuple[float, float, float, float]], rids: list[int], now: float) -> np.ndarray:
    h1, h7 = TREND_HALF_LIVES_DAYS
    out = []
    for r in rids:
        counted, t1, t7, at = rows.get(r, (0.0, 0.0, 0.0, math.nan))
        if math.isnan(at):
            out.append((counted, 0.0, 0.0))
        else:
            out.append((counted, t1 * decay_factor(now - at, h1), t7 * decay_factor(now - at, h7)))
    return np.array(out)


def test_lookup_matches_a_reference_through_growth_and_updates() -> None:
    rng = np.random.default_rng(3)
    stats = PostStats()
    rows: dict[int, tuple[float, float, float, float]] = {}
    now = 1.7e9
    for step in range(6):
        # Batches with growing rids (the arrays grow), repeats of earlier rids and duplicates within a
        # batch (the later one wins), and rows that have no event yet (trend_at NULL -> NaN).
        rids = rng.integers(0, 3000 * (step + 1), 400)
        counted = rng.integers(0, 50, 400).astype(np.float64)
        t1, t7 = rng.uniform(0, 9, 400), rng.uniform(0, 20, 400)
        at = now - rng.uniform(-3600, 20 * 86400, 400)  # some trends stamped after `now`
        at[rng.random(400) < 0.1] = np.nan
        stats.apply(rids, counted, t1, t7, at)
        for i, r in enumerate(rids.tolist()):
            rows[r] = (counted[i], t1[i], t7[i], at[i])
        ask = rng.integers(0, 40_000, 300)  # includes rids never seen and past the arrays' end
        got = stats.lookup(ask, now, TREND_HALF_LIVES_DAYS)
        np.testing.assert_allclose(
            np.stack([got.counted, got.trend_1d, got.trend_7d], axis=1),
            _reference(rows, ask.tolist(), now),
            rtol=1e-12,
        )
    assert len(stats) == sum(1 for v in rows.values() if not math.isnan(v[3]))
    empty = PostStats().lookup(np.array([0, 5], dtype=np.int64), now, TREND_HALF_LIVES_DAYS)
    assert empty.counted.tolist() == [0.0, 0.0] and empty.trend_7d.tolist() == [0.0, 0.0]


def test_another_process_follows_event_counts(db: Database, feed: FeedService, tag: str) -> None:
    """Events recorded through one service reach a second one's copy (LISTEN/NOTIFY), and a fresh
    load reads the same numbers as the followed copy."""
    other = FeedService(db, settings=FeedSettings(index_poll_seconds=3600), load_in_background=False)
    try:
        posts, _ = make_posts(tag, 3, 1, 2, seed=11)
        feed.ingest_posts(posts)
        feed.set_memberships(f"{tag}-u", [f"{tag}-c0"])
        at = NOW - timedelta(hours=1)
        feed.record_events(
            [
                EventIn(user_id=f"{tag}-u", post_id=posts[0].id, kind=kind, at=at)  # type: ignore[arg-type]
                for kind in ("read", "like", "comment")
            ]
            + [EventIn(user_id=f"{tag}-u", post_id=posts[1].id, kind="read", at=at)]
        )
        with db.connection() as conn:
            rids = [
                int(r[0])
                for r in conn.execute(
                    "SELECT rid FROM posts WHERE id = ANY(%s) ORDER BY id", ([p.id for p in posts],)
                ).fetchall()
            ]
        assert other.stats is not None
        ask = np.array(rids, dtype=np.int64)
        stats = other.stats
        wait_until(lambda: stats.lookup(ask, 0.0, TREND_HALF_LIVES_DAYS).counted[0] >= 2)
        now = NOW.timestamp()
        followed = other.stats.lookup(ask, now, TREND_HALF_LIVES_DAYS)
        assert followed.counted.tolist() == [2.0, 0.0, 0.0]  # a like and a comment; reads are not counted
        h1, h7 = TREND_HALF_LIVES_DAYS
        assert followed.trend_1d[0] == np.float64(3 * decay_factor(3600, h1))
        assert followed.trend_7d[1] == np.float64(decay_factor(3600, h7))
        assert followed.trend_1d[2] == 0.0
        fresh = FeedService(db, settings=FeedSettings(), load_in_background=False, follow=False)
        try:
            assert fresh.stats is not None
            again = fresh.stats.lookup(ask, now, TREND_HALF_LIVES_DAYS)
            np.testing.assert_array_equal(again.counted, followed.counted)
            np.testing.assert_allclose(again.trend_1d, followed.trend_1d, rtol=1e-12)
        finally:
            fresh.close()
    finally:
        other.close()


def test_event_batches_wake_other_processes_at_most_every_stats_sync_seconds(
    db: Database, feed: FeedService, tag: str
) -> None:
    """Each events batch notifies post_stats' channel; a follower syncs for them once per
    `stats_sync_seconds`, not once per batch, and still ends with every count."""
    other = FeedService(
        db, settings=FeedSettings(index_poll_seconds=3600, stats_sync_seconds=1.0), load_in_background=False
    )
    try:
        posts, _ = make_posts(tag, 1, 1, 2, seed=12)
        feed.ingest_posts(posts)
        feed.set_memberships(f"{tag}-u", [f"{tag}-c0"])
        assert other.sync is not None and other.stats is not None
        time.sleep(0.5)  # let the post's own notification be handled first
        syncs = 0
        orig = other.sync.sync

        def counting(*, blocking: bool = True) -> int:
            nonlocal syncs
            syncs += 1
            return orig(blocking=blocking)

        other.sync.sync = counting  # type: ignore[method-assign]
        started = time.monotonic()
        for i in range(30):
            feed.record_events(
                [EventIn(user_id=f"{tag}-u", post_id=posts[0].id, kind="like", at=NOW, id=f"{tag}-e{i}")]
            )
        elapsed = time.monotonic() - started
        with db.connection() as conn:
            row = conn.execute("SELECT rid FROM posts WHERE id = %s", (posts[0].id,)).fetchone()
        assert row is not None
        ask = np.array([row[0]], dtype=np.int64)
        stats = other.stats

        def likes() -> float:
            return float(stats.lookup(ask, 0.0, TREND_HALF_LIVES_DAYS).counted[0])

        wait_until(lambda: likes() >= 30)
        assert likes() == 30
        # One sync per started second of batches, plus the one that catches the last of them.
        assert 1 <= syncs <= math.ceil(elapsed) + 2, (syncs, elapsed)
    finally:
        other.close()
