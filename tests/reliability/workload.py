"""A concurrent ingest workload against a served hanseek, and the checks that must hold afterwards.

Writers send batches of posts and of events back to back and record which batches the server
acknowledged; `verify` checks a (restarted or restored) database against that ledger.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from bench._serve import ServeProcess

from hanseek.config import Settings
from hanseek.feed.events import recompute_profile
from hanseek.feed.pgvec import to_np
from hanseek.feed.settings import FeedSettings
from hanseek.store.db import Database

from .conftest import API_KEY

DIM = 384
POST_BATCH = 40
EVENT_BATCH = 60
USERS = [f"user-{i}" for i in range(12)]
SEED_POSTS = 80
HALF_LIFE_DAYS = 7.0
BASE_TIME = datetime(2024, 3, 1, tzinfo=UTC)
ENV = {"HANSEEK_API_KEY": API_KEY, "HANSEEK_FEED_DECAY_HALF_LIFE_DAYS": str(HALF_LIFE_DAYS)}


def unit_vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@dataclass
class Ledger:
    """What the clients sent, and which batches the server acknowledged."""

    sent_posts: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # batch -> id -> vector
    acked_posts: set[str] = field(default_factory=set)
    sent_events: dict[str, list[str]] = field(default_factory=dict)  # batch -> idempotency keys
    acked_events: set[str] = field(default_factory=set)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)  # batch -> request body, for retries
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=60.0, headers={"X-API-Key": API_KEY})


def post_writer(base_url: str, ledger: Ledger, writer: int, stop: threading.Event) -> None:
    with client(base_url) as c:
        for b in range(10_000):
            if stop.is_set():
                return
            batch = f"pb{writer}-{b}"
            vecs = unit_vectors(POST_BATCH, hash(batch) % 2**32)
            ids = [f"{batch}-{i}" for i in range(POST_BATCH)]
            posts = [
                {
                    "id": pid,
                    "community": f"c{i % 3}",
                    "title": f"글 {pid}",
                    "created_at": (BASE_TIME + timedelta(minutes=b * POST_BATCH + i)).isoformat(),
                    "embedding": vecs[i].tolist(),
                }
                for i, pid in enumerate(ids)
            ]
            with ledger.lock:
                ledger.sent_posts[batch] = dict(zip(ids, vecs, strict=True))
                ledger.bodies[batch] = {"posts": posts}
            try:
                r = c.post("/posts", json={"posts": posts})
            except httpx.HTTPError:
                return  # the server is gone: this batch is in flight, status unknown
            if r.status_code != 200:
                ledger.errors.append(f"{batch}: {r.status_code} {r.text[:300]}")
                return
            with ledger.lock:
                ledger.acked_posts.add(batch)


def event_writer(base_url: str, ledger: Ledger, writer: int, stop: threading.Event) -> None:
    rng = random.Random(writer)
    with client(base_url) as c:
        for b in range(10_000):
            if stop.is_set():
                return
            batch = f"eb{writer}-{b}"
            events = [
                {
                    "id": f"{batch}-{i}",
                    "user_id": rng.choice(USERS),
                    "post_id": f"seed-{rng.randrange(SEED_POSTS)}",
                    "kind": rng.choice(["read", "read", "like", "comment"]),
                    # Spread over 60 days and out of order: decay folds must commute with arrival order.
                    "at": (BASE_TIME + timedelta(hours=rng.uniform(0, 24 * 60))).isoformat(),
                }
                for i in range(EVENT_BATCH)
            ]
            with ledger.lock:
                ledger.sent_events[batch] = [e["id"] for e in events]
                ledger.bodies[batch] = {"events": events}
            try:
                r = c.post("/events", json={"events": events})
            except httpx.HTTPError:
                return
            if r.status_code != 200:
                ledger.errors.append(f"{batch}: {r.status_code} {r.text[:300]}")
                return
            with ledger.lock:
                ledger.acked_events.add(batch)


def seed(base_url: str) -> dict[str, np.ndarray]:
    vecs = unit_vectors(SEED_POSTS, 12345)
    posts = [
        {
            "id": f"seed-{i}",
            "community": "c0",
            "title": f"씨앗 {i}",
            "created_at": (BASE_TIME + timedelta(hours=i)).isoformat(),
            "embedding": vecs[i].tolist(),
        }
        for i in range(SEED_POSTS)
    ]
    with client(base_url) as c:
        assert c.post("/posts", json={"posts": posts}).status_code == 200
        for u in USERS:
            assert (
                c.put(f"/users/{u}/memberships", json={"communities": ["c0", "c1", "c2"]}).status_code == 200
            )
    return {p["id"]: vecs[i] for i, p in enumerate(posts)}


def verify(srv: ServeProcess, ledger: Ledger, seeds: dict[str, np.ndarray]) -> dict[str, int]:
    settings = Settings(data_dir=srv.data_dir)
    feed_settings = FeedSettings(decay_half_life_days=HALF_LIFE_DAYS)
    db = Database.open(settings)  # a second handle on the restarted server
    try:
        with db.connection() as conn:
            stored_posts = {r[0]: to_np(r[1]) for r in conn.execute("SELECT id, embedding FROM posts")}
            stored_events = {r[0] for r in conn.execute("SELECT idempotency_key FROM events")}
            # Posts: acknowledged batches complete and intact; every batch all-or-nothing.
            partial = []
            for batch, sent in ledger.sent_posts.items():
                present = [pid for pid in sent if pid in stored_posts]
                if batch in ledger.acked_posts:
                    assert len(present) == len(sent), f"acknowledged batch {batch} lost posts"
                if present and len(present) != len(sent):
                    partial.append(batch)
                for pid in present:
                    assert float(stored_posts[pid] @ sent[pid]) > 0.9999, pid
            assert not partial, f"half-written post batches: {partial}"
            for pid, v in seeds.items():
                assert float(stored_posts[pid] @ v) > 0.9999
            # Events: the same two properties, and nothing stored twice under another key.
            total_present = 0
            for batch, keys in ledger.sent_events.items():
                present_n = sum(k in stored_events for k in keys)
                total_present += present_n
                if batch in ledger.acked_events:
                    assert present_n == len(keys), f"acknowledged event batch {batch} lost events"
                assert present_n in (0, len(keys)), f"half-written event batch {batch}: {present_n}"
            assert len(stored_events) == total_present
            # Profiles: the incrementally maintained vectors equal a recomputation from the events.
            rows = conn.execute(
                "SELECT user_id, vec_sum, weight, n_events FROM user_profiles ORDER BY user_id"
            ).fetchall()
            assert rows, "no profiles"
            for user, vec_sum, weight, n_events in rows:
                ref = recompute_profile(conn, user, feed_settings)
                assert n_events == ref.n_events, user
                got = to_np(vec_sum, np.float64)
                # Stored sums are scaled to the profile's reference time; compare the directions and
                # the weights relative to the same reference (recompute uses the newest event's time).
                assert ref.weight == pytest.approx(float(weight), rel=1e-4), user
                np.testing.assert_allclose(got, ref.vec_sum, rtol=1e-3, atol=1e-4, err_msg=user)
            # Counters: post_stats agree with the stored events.
            mismatched = conn.execute(
                "SELECT count(*) FROM post_stats s FULL JOIN ("
                "  SELECT post_id, count(*) FILTER (WHERE kind = 'read') AS r,"
                "         count(*) FILTER (WHERE kind = 'like') AS l,"
                "         count(*) FILTER (WHERE kind = 'comment') AS c FROM events GROUP BY post_id) e"
                " ON e.post_id = s.post_id "
                "WHERE coalesce(s.reads, 0) <> coalesce(e.r, 0) OR coalesce(s.likes, 0) <> coalesce(e.l, 0) "
                "   OR coalesce(s.comments, 0) <> coalesce(e.c, 0)"
            ).fetchone()
            assert mismatched == (0,)
            total = conn.execute("SELECT count(*) FROM posts").fetchone()
    finally:
        db.close()
    # The served view agrees: the feed index holds every stored post, and feeds are served.
    with client(srv.base_url) as c:
        deadline = time.monotonic() + 60
        while True:
            c.get(f"/users/{USERS[0]}/feed", params={"days": "all"}).raise_for_status()
            status = c.get("/feeds-index").json()
            if status.get("loaded"):
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert total is not None and status["posts"] == total[0]
        feed = c.get(f"/users/{USERS[0]}/feed", params={"days": "all", "k": 5}).json()
        assert not feed["cold_start"] and len(feed["items"]) == 5, feed
    return {
        "post_batches_sent": len(ledger.sent_posts),
        "post_batches_acked": len(ledger.acked_posts),
        "event_batches_sent": len(ledger.sent_events),
        "event_batches_acked": len(ledger.acked_events),
    }


def retry_unacknowledged(base_url: str, ledger: Ledger) -> int:
    """What a client does after a crash: send again every batch it got no answer for. Safe because
    posts are upserts by id and events carry idempotency keys."""
    retried = 0
    with client(base_url) as c:
        for batch, body in ledger.bodies.items():
            if batch in ledger.acked_posts or batch in ledger.acked_events:
                continue
            r = c.post("/posts" if "posts" in body else "/events", json=body)
            assert r.status_code == 200, r.text
            (ledger.acked_posts if "posts" in body else ledger.acked_events).add(batch)
            retried += 1
    return retried


class Writers:
    """Two post writers and two event writers running until `stop()`."""

    def __init__(self, base_url: str) -> None:
        self.ledger = Ledger()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=fn, args=(base_url, self.ledger, w, self._stop), daemon=True)
            for fn in (post_writer, event_writer)
            for w in range(2)
        ]

    def start(self) -> Writers:
        for t in self._threads:
            t.start()
        return self

    def wait_for(self, batches: int, timeout: float = 90.0) -> None:
        """Until at least `batches` batches of posts and of events are acknowledged."""
        deadline = time.monotonic() + timeout
        while len(self.ledger.acked_posts) < batches or len(self.ledger.acked_events) < batches:
            assert not self.ledger.errors, self.ledger.errors
            assert time.monotonic() < deadline, "writers made no progress"
            time.sleep(0.05)

    def stop(self) -> Ledger:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)
        assert not self.ledger.errors, self.ledger.errors
        return self.ledger
