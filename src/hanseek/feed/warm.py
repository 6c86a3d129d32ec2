"""Start-up cache warming: read what a feed request touches into PostgreSQL's shared buffers once.

A feed request reads a few dozen scattered pages: the details of its top posts, the posts the user
already read, the user's events. Right after a (re)start the buffers are empty and each of those is a
disk read. On the 1M-post benchmark (docs/feed.md, "first requests after a database restart") the
service call's p50 / p99 were 5.8 / 26.7 ms without warming and 2.9 / 11.1 ms with it. Warming costs
one pass over the posts of the default window at start-up, in the index-loading thread, so requests
are served meanwhile (just slower, as before).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import psycopg

from hanseek.feed.query import Conn

log = logging.getLogger(__name__)

# Tables whose B-tree indexes and (when small enough) heaps a feed request reads.
_TABLES = (
    "posts",
    "events",
    "memberships",
    "users",
    "user_profiles",
    "post_stats",
    "user_affinity",
    "feed_user_prefs",
    "feed_user_exposure",
)


@dataclass(frozen=True)
class WarmResult:
    recent_posts: int
    prewarmed_blocks: int
    seconds: float


def warm_feed_cache(conn: Conn, days: int, *, budget_share: float = 0.5) -> WarmResult:
    """Read the posts of the last `days` (counted back from the newest post) and, where the
    pg_prewarm extension is available, the feed tables' B-tree indexes and small heaps.

    `budget_share` bounds what pg_prewarm loads to that share of shared_buffers, so warming never
    evicts more than it brings in. Failures are logged, never raised: warming is an optimisation."""
    started = time.perf_counter()
    blocks = _prewarm_indexes(conn, budget_share)
    recent = 0
    try:
        with conn.transaction():
            # A bitmap heap scan reads through shared buffers; a sequential scan of a table larger
            # than a quarter of them would use a small ring buffer and leave nothing cached.
            conn.execute("SET LOCAL enable_seqscan = off")
            row = conn.execute(
                "SELECT count(length(p.title) + length(p.body)) FROM posts p "
                "WHERE p.created_at >= (SELECT max(created_at) FROM posts) - make_interval(days => %s)",
                (days,),
            ).fetchone()
            recent = int(row[0]) if row and row[0] is not None else 0
    except psycopg.Error as exc:
        log.warning("feed cache warming skipped the recent posts: %s", exc)
    return WarmResult(recent, blocks, round(time.perf_counter() - started, 2))


def _prewarm_indexes(conn: Conn, budget_share: float) -> int:
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    except psycopg.Error as exc:  # an external server without the extension, or no right to add it
        log.info("pg_prewarm unavailable (%s); warming the recent posts only", exc)
        return 0
    try:
        with conn.transaction():
            row = conn.execute(
                "SELECT setting::bigint FROM pg_settings WHERE name = 'shared_buffers'"
            ).fetchone()
            budget = int((row[0] if row else 16384) * budget_share)
            # Indexes first (every request uses them), then small heaps; largest last, within budget.
            rels = conn.execute(
                """SELECT c.oid::regclass::text, pg_relation_size(c.oid) / 8192
                   FROM pg_class c
                   LEFT JOIN pg_index i ON i.indexrelid = c.oid
                   LEFT JOIN pg_am am ON am.oid = c.relam
                   WHERE (i.indrelid = ANY(%(t)s::regclass[]) AND am.amname = 'btree')
                      OR (c.oid = ANY(%(t)s::regclass[]) AND c.relname <> 'posts')
                   ORDER BY (i.indexrelid IS NULL), pg_relation_size(c.oid)""",
                {"t": list(_TABLES)},
            ).fetchall()
            done = 0
            for name, size in rels:
                if done + int(size) > budget:
                    continue
                got = conn.execute("SELECT pg_prewarm(%s::regclass)", (name,)).fetchone()
                done += int(got[0]) if got else 0
            return done
    except psycopg.Error as exc:
        log.warning("pg_prewarm failed: %s", exc)
        return 0
