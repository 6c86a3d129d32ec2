"""`FeedService`: posts, users, events and the personalised feed over one database.

Routers and CLI commands are thin shells over this object. It owns the in-process index (and the
thread that follows PostgreSQL's changes into it); everything else is stateless SQL.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt

from hanseek.feed import events as ev
from hanseek.feed import posts as po
from hanseek.feed import query as qy
from hanseek.feed.blas import single_threaded_blas
from hanseek.feed.errors import InvalidInput, NotFoundError
from hanseek.feed.indexsync import Follower, IndexSync
from hanseek.feed.memindex import MemoryIndex
from hanseek.feed.models import (
    EventIn,
    EventsResult,
    FeedItem,
    FeedOut,
    IngestResult,
    MethodName,
    PathName,
    PostIn,
    UserOut,
    Why,
    as_utc,
)
from hanseek.feed.poststats import PostStats
from hanseek.feed.ranker.registry import ActiveRanker
from hanseek.feed.scoring import blend
from hanseek.feed.settings import FeedSettings
from hanseek.feed.warm import WarmResult, warm_feed_cache
from hanseek.store.db import ROLLED_BACK

if TYPE_CHECKING:
    from hanseek.encoders.base import TextEncoder
    from hanseek.store.db import Database

log = logging.getLogger(__name__)

NO_COMMUNITY = "the user belongs to no community"
F32 = npt.NDArray[np.float32]
T = TypeVar("T")


class FeedService:
    def __init__(
        self,
        db: Database,
        *,
        dim: int = 384,
        settings: FeedSettings | None = None,
        encoder: Callable[[], TextEncoder] | None = None,
        encoder_is_active: Callable[[qy.Conn, TextEncoder], bool] | None = None,
        follow: bool = True,
        load_in_background: bool = True,
    ) -> None:
        self.db = db
        self.dim = dim
        self.settings = settings or FeedSettings()
        self._encoder = encoder
        # Checked in the ingest transaction (see AppState.text_encoder_is_active): False when the
        # active text model changed since `encoder()` was loaded, and the batch is encoded again.
        self._encoder_is_active = encoder_is_active
        if self.settings.single_thread_blas:
            single_threaded_blas()
        self.ranker = ActiveRanker(db, self.settings.ranker_poll_seconds)
        self.index: MemoryIndex | None = None
        self.stats: PostStats | None = None
        self.sync: IndexSync | None = None
        self._follower: Follower | None = None
        if self.settings.memory_index:
            self.index = MemoryIndex(dim)
            self.stats = PostStats()
            self.sync = IndexSync(db.connection, self.index, self.stats)
        self.warmed: WarmResult | None = None
        if self.settings.memory_index or self.settings.warm_cache_days:
            if load_in_background:
                threading.Thread(target=self._start_up, name="feed-start-up", daemon=True).start()
            else:
                self._start_up()
        if self.sync is not None and follow:
            self._follower = Follower(db.url, self.sync, stats_sync_seconds=self.settings.stats_sync_seconds)
            self._follower.start()

    def _start_up(self) -> None:
        if self.sync is not None:
            self._load_index()
        if self.settings.warm_cache_days:
            try:
                with self.db.connection() as conn:
                    self.warmed = warm_feed_cache(conn, self.settings.warm_cache_days)
            except Exception as exc:  # warming only saves disk reads; serving goes on without it
                log.warning("feed cache warming failed: %s", exc)
                return
            w = self.warmed
            log.info(
                "feed cache warmed: %d recent posts, %d index blocks in %.1fs",
                w.recent_posts,
                w.prewarmed_blocks,
                w.seconds,
            )

    def _load_index(self) -> None:
        assert self.sync is not None
        t = time.perf_counter()
        try:
            n = self.sync.load()
        except Exception:  # the SQL paths still serve; the poll on the request path retries
            log.exception("feed index load failed")
            return
        log.info("feed index: %d posts loaded in %.1fs", n, time.perf_counter() - t)

    def close(self) -> None:
        if self._follower is not None:
            self._follower.stop()
            self._follower = None

    @property
    def memory_ready(self) -> bool:
        return self.sync is not None and self.sync.loaded.is_set()

    def refresh_index(self) -> None:
        """Apply committed changes now (after this process's own writes: read-your-writes)."""
        if self.sync is not None and self.sync.loaded.is_set():
            self.sync.sync()

    def _maybe_poll(self) -> None:
        s = self.sync
        if (
            s is not None
            and s.loaded.is_set()
            and time.monotonic() - s.last_sync > self.settings.index_poll_seconds
        ):
            s.sync(blocking=False)

    # --- writes ------------------------------------------------------------------------------------
    def ingest_posts(self, posts: Sequence[PostIn]) -> IngestResult:
        for _attempt in range(3):
            encoder = None
            if any(p.embedding is None for p in posts):
                if self._encoder is None:
                    raise InvalidInput("posts without an embedding need a text encoder")
                encoder = self._encoder()
            vecs, encoded = po.post_vectors(posts, encoder, self.settings, self.dim)
            result = self._retried(functools.partial(self._upsert, posts, vecs, encoded, encoder))
            if result is not None:
                self.refresh_index()
                return result
        from hanseek.encoders.base import EncoderError

        raise EncoderError("the active text model kept changing while the posts were encoded; retry")

    def _upsert(
        self, posts: Sequence[PostIn], vecs: F32, encoded: int, encoder: TextEncoder | None, conn: qy.Conn
    ) -> IngestResult | None:
        check = self._encoder_is_active
        if encoder is not None and check is not None and not check(conn, encoder):
            return None  # the text model was switched meanwhile: encode with the new one
        return po.upsert_posts(conn, posts, vecs, encoded, self.settings)

    def bulk_insert_posts(self, posts: Sequence[PostIn], vecs: F32) -> int:
        with self.db.connection() as conn:
            n = po.bulk_insert_posts(conn, posts, vecs)
        self.refresh_index()
        return n

    def delete_posts(self, ids: Sequence[str]) -> list[str]:
        found = self._retried(lambda conn: po.delete_posts(conn, ids, self.settings))
        self.refresh_index()
        return found

    def delete_post(self, post_id: str) -> None:
        if not self.delete_posts([post_id]):
            raise NotFoundError(f"unknown post {post_id!r}")

    def record_events(self, events: Sequence[EventIn], now: datetime | None = None) -> EventsResult:
        # The same batch again is safe: its keys make it idempotent.
        return self._retried(lambda conn: ev.record_events(conn, events, self.settings, now))

    def _retried(self, work: Callable[[qy.Conn], T]) -> T:
        """`work` in one transaction, run again (up to 3 times in all) when a deadlock or serialization
        failure with a concurrent writer rolled it back whole. The feed writers lock in one order
        (posts -> user_profiles -> user_affinity) and should not deadlock one another; this covers
        the rest (the API answers 409 when the last try fails too)."""
        for attempt in range(3):
            try:
                with self.db.connection() as conn:
                    return work(conn)
            except ROLLED_BACK:
                if attempt == 2:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def set_memberships(self, user_id: str, communities: Sequence[str], *, replace: bool = True) -> UserOut:
        with self.db.connection() as conn:
            ev.set_memberships(conn, user_id, communities, replace=replace)
        return self.get_user(user_id)

    def add_memberships(self, by_user: Mapping[str, Sequence[str]]) -> int:
        """Join each user to their communities, all in one transaction (a file of memberships is
        stored whole or not at all); returns the number of users."""
        with self.db.connection() as conn:
            for user in sorted(by_user):  # one lock order for concurrent writers
                ev.set_memberships(conn, user, by_user[user], replace=False)
        return len(by_user)

    def remove_membership(self, user_id: str, community: str) -> UserOut:
        with self.db.connection() as conn:
            qy.load_user(conn, user_id)
            conn.execute(
                "DELETE FROM memberships WHERE user_id = %s AND community = %s", (user_id, community)
            )
        return self.get_user(user_id)

    def rebuild_profiles(self) -> int:
        """Recompute every profile from its events (after changing weights' half-life)."""
        with self.db.connection() as conn:
            return ev.rebuild_profiles(conn, self.settings)

    # --- reads -------------------------------------------------------------------------------------
    def get_user(self, user_id: str) -> UserOut:
        with self.db.connection() as conn:
            u = qy.load_user(conn, user_id)
            row = conn.execute("SELECT count(*) FROM events WHERE user_id = %s", (user_id,)).fetchone()
        return UserOut(
            id=u.id,
            communities=u.communities,
            events=int(row[0]) if row else 0,
            profile_weight=u.profile.weight,
            created_at=u.created_at,
        )

    def list_users(self, limit: int = 100) -> list[str]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT id FROM users ORDER BY id LIMIT %s", (limit,)).fetchall()
        return [r[0] for r in rows]

    def _check(self, k: int, days: int | None) -> None:
        if not 1 <= k <= self.settings.max_k:
            raise InvalidInput(f"k must be between 1 and {self.settings.max_k}, got {k}")
        if days is not None and not 1 <= days <= self.settings.max_days:
            raise InvalidInput(
                f"days must be between 1 and {self.settings.max_days} (or 'all' for no window), got {days}"
            )

    def feed(
        self,
        user_id: str,
        *,
        k: int = 20,
        days: int | None = 30,
        path: PathName = "auto",
        at: datetime | None = None,
        method: MethodName = "ranked",
    ) -> FeedOut:
        """The user's top-k. `ranked` (default): candidates from several sources re-ranked by the
        active model (or the hand-tuned blend); `similar`: cosine to the user's vector only (cold
        start: popular + latest)."""
        self._check(k, days)
        if path not in ("auto", "exact", "exact-sql", "approx"):
            raise InvalidInput(f"path must be auto, exact, exact-sql or approx, got {path!r}")
        if method not in ("ranked", "similar"):
            raise InvalidInput(f"method must be ranked or similar, got {method!r}")
        started = time.perf_counter()
        at = _moment(at)
        t_from = _window_start(at, days)
        with self.db.connection() as conn:
            user = qy.load_context(
                conn, user_id, t_from, self.settings.explain_history, affinity=method == "ranked"
            )
            out = FeedOut(
                user_id=user_id,
                kind="personalized",
                communities=user.communities,
                k=k,
                days=days,
                at=at,
                items=[],
                took_ms=0.0,
            )
            if not user.communities:
                out.note = NO_COMMUNITY
            elif method == "ranked":
                self._ranked(conn, user, out, t_from, at, k, path)
            elif (vec := user.profile.vector()) is None:
                out.kind, out.cold_start = "cold-start", True
                out.items = self._cold_start(conn, user_id, user.communities, t_from, at, k)
                out.note = "no interactions yet: popular and latest posts, interleaved"
            else:
                hits, out.path, out.estimated_candidates = self._similar(
                    conn, user_id, vec, user.communities, t_from, at, k, path, user.read_rids
                )
                pairs = self._items(conn, hits, "similar", k)
                self._explain(conn, user, pairs, out.path == "exact-memory")
                out.items = [it for it, _ in pairs]
        out.took_ms = _ms(started)
        return out

    def _ranked(
        self,
        conn: qy.Conn,
        user: qy.UserContext,
        out: FeedOut,
        t_from: datetime | None,
        at: datetime,
        k: int,
        path: str = "auto",
    ) -> None:
        from hanseek.feed.ranker.serving import rank

        model = self.ranker.get()
        r = rank(
            self,
            conn,
            user,
            model,
            t_from,
            at,
            k,
            diversity_share=self.settings.diversity_share,
            path=path,
        )
        out.kind, out.path, out.estimated_candidates = "ranked", r.path, r.n_window
        out.ranker = str(model.meta.get("name", model.kind))
        if user.profile.vector() is None:
            out.cold_start = True
            out.note = "no interactions yet: latest and popular posts, ordered by the ranker"
        pairs = self._items(
            conn, [(rid, score) for rid, score, _ in r.hits], [s for _, _, s in r.hits], k, rows=r.rows
        )
        self._explain(conn, user, pairs, r.path == "exact-memory")
        out.items = [it for it, _ in pairs]

    def _similar(
        self,
        conn: qy.Conn,
        user_id: str,
        vec: F32,
        comms: list[str],
        t_from: datetime | None,
        at: datetime,
        k: int,
        path: str,
        read: npt.NDArray[np.int64] | None = None,
    ) -> tuple[list[tuple[int, float]], str, int]:
        s = self.settings
        mem = self.index if self.memory_ready else None
        filters = qy.feed_filters(comms, t_from, at, user_id)
        f_epoch = None if t_from is None else t_from.timestamp()
        if mem is not None:
            self._maybe_poll()
            estimated = mem.count(comms, f_epoch, at.timestamp())
        else:
            estimated = qy.estimate_candidates(conn, filters)
        if path == "auto":
            if mem is not None:
                path = "exact" if estimated <= s.memory_max_rows else "approx"
            else:
                path = "exact-sql" if estimated <= s.exact_max_candidates else "approx"
        if path == "exact" and mem is None:
            path = "exact-sql"
        if path == "exact":
            assert mem is not None
            exclude = read if read is not None else qy.read_rids(conn, user_id, comms, t_from)
            # A few spare rows: a post deleted by another process a moment ago may still be indexed.
            rids, scores = mem.search(vec, comms, f_epoch, at.timestamp(), k + 5, exclude)
            return list(zip(rids.tolist(), scores.tolist(), strict=True)), "exact-memory", estimated
        if path == "exact-sql":
            return qy.sql_exact(conn, vec, filters, k), "exact-sql", estimated
        hits = qy.sql_approx(conn, vec, filters, k, s.hnsw_ef_search, s.hnsw_max_scan_tuples)
        return hits, "approx-hnsw", estimated

    def _items(
        self,
        conn: qy.Conn,
        hits: list[tuple[int, float]],
        source: str | list[str],
        k: int | None = None,
        rows: dict[int, qy.PostRow] | None = None,
    ) -> list[tuple[FeedItem, qy.PostRow]]:
        if rows is None:
            rows = qy.post_rows(conn, [r for r, _ in hits])
        out: list[tuple[FeedItem, qy.PostRow]] = []
        for i, (rid, score) in enumerate(hits):
            row = rows.get(rid)
            if row is None:
                continue  # deleted since the index last synced
            item = FeedItem(
                id=row.id,
                community=row.community,
                author=row.author,
                title=row.title,
                snippet=row.snippet,
                category=row.category,
                created_at=row.created_at,
                likes=row.likes,
                comments=row.comments,
                score=round(float(score), 6),
                source=source if isinstance(source, str) else source[i],
            )
            out.append((item, row))
        return out[:k] if k is not None else out

    def _explain(
        self, conn: qy.Conn, user: qy.UserContext, pairs: list[tuple[FeedItem, qy.PostRow]], memory: bool
    ) -> None:
        """Attach to each item the user's past interaction most similar to it."""
        recent = user.recent
        if recent is None:
            recent = qy.recent_interactions(conn, user.id, self.settings.explain_history)
        if not recent or not pairs:
            return
        if memory and self.index is not None:
            hr, hv = self.index.vectors([(x.rid, x.community, x.created_at) for x in recent])
            ir, iv = self.index.vectors([(r.rid, r.community, r.created_at.timestamp()) for _, r in pairs])
            hist = dict(zip(hr.tolist(), hv, strict=True))
            vecs = dict(zip(ir.tolist(), iv, strict=True))
        else:
            emb = qy.embeddings(conn, [x.rid for x in recent] + [r.rid for _, r in pairs])
            hist = vecs = emb
        known = [x for x in recent if x.rid in hist]
        if not known:
            return
        h = np.stack([hist[x.rid] for x in known])
        for item, row in pairs:
            v = vecs.get(row.rid)
            if v is None:
                continue
            sims = h @ v
            j = int(np.argmax(sims))
            item.why = Why(post_id=known[j].id, title=known[j].title, similarity=round(float(sims[j]), 4))

    def _cold_start(
        self,
        conn: qy.Conn,
        user_id: str | None,
        comms: list[str],
        t_from: datetime | None,
        at: datetime,
        k: int,
    ) -> list[FeedItem]:
        s = self.settings
        pop = qy.baseline(conn, "popular", comms, t_from, at, k, user_id, s.popular_half_life_days)
        new = qy.baseline(conn, "latest", comms, t_from, at, k, user_id)
        # A post both lists hold is named by both, joined as the ranked feed joins its sources.
        in_new = {r for r, _ in new}
        src = {r: "latest+popular" if r in in_new else "popular" for r, _ in pop}
        for r, _ in new:
            src.setdefault(r, "latest")
        score = dict(pop) | {r: sc for r, sc in new if r not in dict(pop)}
        order = blend([r for r, _ in pop], [r for r, _ in new], s.cold_start_popular_share, k)
        return [it for it, _ in self._items(conn, [(r, score[r]) for r in order], [src[r] for r in order])]

    def baseline_feed(
        self,
        kind: str,
        *,
        user_id: str | None = None,
        communities: Sequence[str] | None = None,
        k: int = 20,
        days: int | None = 30,
        at: datetime | None = None,
    ) -> FeedOut:
        """latest or popular with the feed's filters: a user's communities (minus what they read), or
        explicit communities."""
        if kind not in ("latest", "popular"):
            raise InvalidInput(f"kind must be latest or popular, got {kind!r}")
        self._check(k, days)
        if user_id is None and not communities:
            raise InvalidInput("give a user_id or at least one community")
        started = time.perf_counter()
        at = _moment(at)
        t_from = _window_start(at, days)
        with self.db.connection() as conn:
            comms = list(communities or [])
            if user_id is not None:
                user = qy.load_user(conn, user_id)
                comms = comms or user.communities
            hits = qy.baseline(
                conn,
                kind,
                comms,
                t_from,
                at,
                k,
                user_id,
                self.settings.popular_half_life_days if kind == "popular" else 0.0,
            )
            items = [it for it, _ in self._items(conn, hits, kind)]
        return FeedOut(
            user_id=user_id,
            kind="latest" if kind == "latest" else "popular",
            communities=comms,
            k=k,
            days=days,
            at=at,
            items=items,
            # Said as the personalized feed says it: an empty page is otherwise read as "nothing new".
            note=NO_COMMUNITY if user_id is not None and not comms else None,
            took_ms=_ms(started),
        )

    def index_status(self) -> dict[str, object]:
        if self.index is None or self.sync is None:
            return {"enabled": False}
        return {
            "enabled": True,
            "pid": os.getpid(),  # each serving process has its own index
            "loaded": self.sync.loaded.is_set(),
            "posts": len(self.index),
            "communities": len(self.index.communities()),
            "seconds_since_sync": round(time.monotonic() - self.sync.last_sync, 3)
            if self.sync.last_sync
            else None,
        }


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _moment(at: datetime | None) -> datetime:
    """The feed's `at` in UTC (now when not given). Without a zone it is UTC, as for posts and events:
    the in-process index and PostgreSQL would otherwise read it in two different local zones."""
    if at is None:
        return datetime.now(UTC)
    try:
        return as_utc(at)
    except ValueError as e:
        raise InvalidInput(f"at: {e}") from None


def _window_start(at: datetime, days: int | None) -> datetime | None:
    try:
        return None if days is None else at - timedelta(days=days)
    except OverflowError:  # `at` near year 1: the window would start before datetime's range
        raise InvalidInput(f"at={at.isoformat()} minus {days} days is out of range") from None
