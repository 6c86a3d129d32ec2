"""Start-up cache warming (hanseek.feed.warm)."""

from __future__ import annotations

from hanseek.feed.service import FeedService
from hanseek.feed.settings import FeedSettings
from hanseek.feed.warm import warm_feed_cache
from hanseek.store.db import Database

from .conftest import make_posts


def test_warming_reads_the_window_and_prewarms_indexes(db: Database, feed: FeedService, tag: str) -> None:
    posts, _ = make_posts(tag, 40, communities=2, days=60)
    feed.ingest_posts(posts)
    with db.connection() as conn:
        got = warm_feed_cache(conn, days=30)
        row = conn.execute(
            "SELECT count(*) FROM posts "
            "WHERE created_at >= (SELECT max(created_at) FROM posts) - interval '30 days'"
        ).fetchone()
        ext = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_prewarm'").fetchone()
    assert row is not None and got.recent_posts == row[0] > 0
    # The embedded server ships pg_prewarm: the feed tables' B-tree indexes were read.
    assert ext is not None and got.prewarmed_blocks > 0


def test_a_tiny_budget_prewarms_nothing_but_still_reads_the_window(db: Database) -> None:
    with db.connection() as conn:
        got = warm_feed_cache(conn, days=3650, budget_share=0.0)
    assert got.prewarmed_blocks == 0 and got.recent_posts >= 0


def test_the_service_warms_at_start_up_unless_turned_off(db: Database) -> None:
    on = FeedService(db, settings=FeedSettings(warm_cache_days=30), load_in_background=False, follow=False)
    off = FeedService(db, settings=FeedSettings(warm_cache_days=0), load_in_background=False, follow=False)
    try:
        assert on.warmed is not None and on.warmed.seconds >= 0
        assert off.warmed is None
    finally:
        on.close()
        off.close()
