"""Keep a `MemoryIndex` in step with the posts table (and a `PostStats` with post_stats).

Change tracking uses the writing transaction's id (`posts.change_xid`, `post_deletions.change_xid`)
and PostgreSQL snapshots, not a sequence: a sequence number is taken when a row is written, not when
its transaction commits, so a follower that remembered "the highest number seen" would skip a slow
transaction that commits later with a lower number. Instead each sync remembers the xmin of its
snapshot — every transaction below it had finished when the snapshot was taken, so its rows were
seen — and the next sync re-reads rows from transactions at or above it. Applying a row twice is
harmless (upserts by rid).

A follower thread LISTENs on `hanseek_posts` (a statement trigger NOTIFYs on every write to posts)
and `hanseek_post_stats` (every update of post_stats; synced at most every `stats_sync_seconds`)
and syncs when woken; the service also syncs after its own writes
(read-your-writes) and at most every `index_poll_seconds` on the request path, in case a
notification was lost.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from hanseek.feed.memindex import MemoryIndex
from hanseek.feed.poststats import PostStats

log = logging.getLogger(__name__)
CHANNEL = "hanseek_posts"
STATS_CHANNEL = "hanseek_post_stats"
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _posts_table(conn: psycopg.Connection[Any]) -> int:
    """The posts table's oid: a new one after the table is dropped and created again."""
    row = conn.execute("SELECT 'posts'::regclass::oid::int8").fetchone()
    assert row is not None
    return int(row[0])


def _snapshot_xmin(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()
    assert row is not None
    return int(row[0])


def _row_dtype(dim: int) -> np.dtype[Any]:
    # One binary COPY row of (rid int8, community code int4, epoch float8, popularity int4,
    # hashtext(author) int4, hashtext(category) int4, vector):
    # field count, then per field a length and the big-endian value; a vector is (dim, unused, floats).
    return np.dtype(
        [
            ("nf", ">i2"),
            ("l_rid", ">i4"),
            ("rid", ">i8"),
            ("l_c", ">i4"),
            ("c", ">i4"),
            ("l_t", ">i4"),
            ("t", ">f8"),
            ("l_p", ">i4"),
            ("p", ">i4"),
            ("l_a", ">i4"),
            ("a", ">i4"),
            ("l_g", ">i4"),
            ("g", ">i4"),
            ("l_v", ">i4"),
            ("vdim", ">i2"),
            ("vunused", ">i2"),
            ("v", ">f4", (dim,)),
        ]
    )


def _check_post_rows(rows: np.ndarray, dim: int) -> bool:
    return bool(
        (rows["nf"] == 7).all()
        and (rows["l_rid"] == 8).all()
        and (rows["l_c"] == 4).all()
        and (rows["l_t"] == 8).all()
        and (rows["l_p"] == 4).all()
        and (rows["l_a"] == 4).all()
        and (rows["l_g"] == 4).all()
        and (rows["l_v"] == 4 + 4 * dim).all()
        and (rows["vdim"] == dim).all()
    )


# One binary COPY row of post_stats: (rid int8, counted likes + comments int8, trend_1d, trend_7d,
# epoch of trend_at or NaN: float8), every field 8 bytes.
_STATS_FIELDS = ("rid", "counted", "t1", "t7", "at")
_STATS_DTYPE = np.dtype(
    [("nf", ">i2")]
    + [
        x
        for f in _STATS_FIELDS
        for x in ((f"l_{f}", ">i4"), (f, ">i8" if f in ("rid", "counted") else ">f8"))
    ]
)


def _check_stats_rows(rows: np.ndarray) -> bool:
    lengths = all((rows[f"l_{f}"] == 8).all() for f in _STATS_FIELDS)
    return bool((rows["nf"] == len(_STATS_FIELDS)).all() and lengths)


class _CopyParser:
    """Parses binary COPY output of fixed-width rows chunk by chunk into numpy arrays."""

    def __init__(self, dtype: np.dtype[Any], check: Callable[[np.ndarray], bool]) -> None:
        self.dtype = dtype
        self.check = check
        self.buf = bytearray()
        self.header_done = False
        self.parts: list[np.ndarray] = []

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self.buf += data
        if not self.header_done:
            if len(self.buf) < 19:
                return
            if bytes(self.buf[:11]) != _SIGNATURE:
                raise ValueError("not a binary COPY stream")
            (ext,) = struct.unpack(">i", self.buf[15:19])
            if len(self.buf) < 19 + ext:
                return
            del self.buf[: 19 + ext]
            self.header_done = True
        size = self.dtype.itemsize
        n = len(self.buf) // size
        if n:
            # The 2-byte trailer is shorter than a row, so it is never taken for one.
            rows = np.frombuffer(bytes(self.buf[: n * size]), dtype=self.dtype)
            if not self.check(rows):
                raise ValueError("unexpected row layout in binary COPY (column types or vector dimension?)")
            self.parts.append(rows)
            del self.buf[: n * size]

    def finish(self) -> np.ndarray:
        if bytes(self.buf) not in (b"", b"\xff\xff"):
            raise ValueError(f"{len(self.buf)} trailing bytes left in binary COPY stream")
        if not self.parts:
            return np.zeros(0, dtype=self.dtype)
        return np.concatenate(self.parts)


_SELECT_ROWS = """
    SELECT p.rid, c.code, extract(epoch FROM p.created_at)::float8,
           least(p.likes::int8 + p.comments, 2147483647)::int4,
           COALESCE(hashtext(p.author), 0), COALESCE(hashtext(p.category), 0), p.embedding
    FROM posts p JOIN (SELECT id, (row_number() OVER (ORDER BY id))::int4 AS code FROM communities) c
      ON c.id = p.community
"""


@dataclass
class Rows:
    rids: np.ndarray
    communities: list[str]
    times: np.ndarray
    vecs: np.ndarray
    pops: np.ndarray
    authors: np.ndarray
    cats: np.ndarray


def _copy(conn: psycopg.Connection[Any], select: str, parser: _CopyParser) -> np.ndarray:
    with conn.cursor() as cur, cur.copy(f"COPY ({select}) TO STDOUT (FORMAT BINARY)") as copy:
        for chunk in copy:
            parser.feed(chunk)
    return parser.finish()


def _fetch_stats(conn: psycopg.Connection[Any], stats: PostStats, since: int | None) -> int:
    """Apply the post_stats rows changed by transactions at/after xid `since` (all when None)."""
    where = "" if since is None else f" AND change_xid >= '{int(since)}'::xid8"
    select = (
        "SELECT rid, likes::int8 + comments, trend_1d, trend_7d, "
        "COALESCE(extract(epoch FROM trend_at)::float8, 'NaN') "
        f"FROM post_stats WHERE rid IS NOT NULL{where}"
    )
    rows = _copy(conn, select, _CopyParser(_STATS_DTYPE, _check_stats_rows))
    stats.apply(
        rows["rid"].astype(np.int64),
        rows["counted"].astype(np.float64),
        rows["t1"].astype(np.float64),
        rows["t7"].astype(np.float64),
        rows["at"].astype(np.float64),
    )
    return len(rows)


def _fetch(conn: psycopg.Connection[Any], dim: int, since: int | None) -> Rows:
    """Index rows of the posts changed by transactions at/after xid `since` (all when None)."""
    names = [r[0] for r in conn.execute("SELECT id FROM communities ORDER BY id").fetchall()]
    where = "" if since is None else f" WHERE p.change_xid >= '{int(since)}'::xid8"
    parser = _CopyParser(_row_dtype(dim), lambda r: _check_post_rows(r, dim))
    rows = _copy(conn, f"{_SELECT_ROWS}{where}", parser)
    return Rows(
        rows["rid"].astype(np.int64),
        [names[c - 1] for c in rows["c"].tolist()],
        rows["t"].astype(np.float64),
        rows["v"].astype(np.float32),
        rows["p"].astype(np.float32),
        rows["a"].astype(np.int32),
        rows["g"].astype(np.int32),
    )


class IndexSync:
    """Loads and follows the posts table into a MemoryIndex, and post_stats into a PostStats."""

    def __init__(
        self, connect: Callable[[], Any], index: MemoryIndex, stats: PostStats | None = None
    ) -> None:
        # `connect()` is a context manager yielding a connection (Database.connection).
        self._connect = connect
        self.index = index
        self.stats = stats
        self.watermark: int | None = None
        # The posts table the index was loaded from. A restore (`hanseek db restore`) drops and
        # recreates it with rows whose change_xid lie below the watermark and no notification, so
        # an index that only followed changes would keep the old rows: a new table means a reload.
        self._table: int | None = None
        self.last_sync = 0.0
        self.loaded = threading.Event()
        self._lock = threading.Lock()

    def load(self) -> int:
        """Full load (start-up). Returns the number of posts indexed."""
        with self._lock:
            return self._load_locked()

    def _load_locked(self) -> int:
        with self._connect() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            xmin = _snapshot_xmin(conn)
            table = _posts_table(conn)
            rows = _fetch(conn, self.index.dim, None)
            if self.stats is not None:
                self.stats.clear()
                _fetch_stats(conn, self.stats, None)
            conn.rollback()
        self.index.clear()
        self.index.apply(
            rows.rids,
            rows.communities,
            rows.times,
            rows.vecs,
            pops=rows.pops,
            authors=rows.authors,
            cats=rows.cats,
        )
        self.watermark = xmin
        self._table = table
        self.last_sync = time.monotonic()
        self.loaded.set()
        return len(rows.rids)

    def sync(self, *, blocking: bool = True) -> int:
        """Apply changes committed since the last sync; returns how many rows were (re)applied.

        With `blocking=False` (the request path) a sync already running elsewhere is not waited
        for: serving a snapshot a moment old beats stalling a request behind a start-up load."""
        if not self._lock.acquire(blocking=blocking):
            return 0
        try:
            if self.watermark is None:  # nothing loaded yet (or the start-up load failed)
                return self._load_locked()
            with self._connect() as conn:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                if _posts_table(conn) != self._table:
                    conn.rollback()
                    log.info("feed index: the posts table was recreated (a restore?); reloading")
                    return self._load_locked()
                xmin = _snapshot_xmin(conn)
                rows = _fetch(conn, self.index.dim, self.watermark)
                deleted = conn.execute(
                    "SELECT rid FROM post_deletions WHERE change_xid >= %s::text::xid8",
                    (str(self.watermark),),
                ).fetchall()
                n_stats = 0 if self.stats is None else _fetch_stats(conn, self.stats, self.watermark)
                conn.rollback()
            dels = np.array([r[0] for r in deleted], dtype=np.int64)
            if len(rows.rids) or len(dels):
                self.index.apply(
                    rows.rids,
                    rows.communities,
                    rows.times,
                    rows.vecs,
                    deleted=dels,
                    pops=rows.pops,
                    authors=rows.authors,
                    cats=rows.cats,
                )
            self.watermark = xmin
            self.last_sync = time.monotonic()
            return len(rows.rids) + len(dels) + n_stats
        finally:
            self._lock.release()


class Follower:
    """Background thread: LISTEN for post and post_stats changes and sync the index when notified.

    A post change syncs at once. post_stats changes with every events batch, so a notification on
    its channel syncs only when `stats_sync_seconds` have passed since the last sync (otherwise at
    that moment): event counts are ranking features, a second old is fresh enough, and a sync per
    batch in every process cost more than the counts are worth under load."""

    def __init__(
        self, url: str, sync: IndexSync, *, reconnect_s: float = 2.0, stats_sync_seconds: float = 1.0
    ) -> None:
        self.url = url
        self.sync = sync
        self.reconnect_s = reconnect_s
        self.stats_sync_seconds = stats_sync_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feed-index-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {STATS_CHANNEL}")
                    self.sync.sync()  # catch up on anything missed while not listening
                    stats_due: float | None = None  # when a noticed post_stats change gets synced
                    while not self._stop.is_set():
                        now = time.monotonic()
                        wait = 1.0 if stats_due is None else min(1.0, max(stats_due - now, 0.0))
                        posts = False
                        for n in conn.notifies(timeout=wait, stop_after=1):
                            if n.channel == CHANNEL:
                                posts = True
                            elif stats_due is None:
                                stats_due = max(now, self.sync.last_sync + self.stats_sync_seconds)
                        if posts or (stats_due is not None and time.monotonic() >= stats_due):
                            self.sync.sync()  # applies posts and post_stats alike
                            stats_due = None
            except Exception as exc:  # keep following: a restart of PostgreSQL must not kill the index
                if self._stop.is_set():
                    return
                log.warning("feed index follower: %s; retrying in %.0fs", exc, self.reconnect_s)
                self._stop.wait(self.reconnect_s)
