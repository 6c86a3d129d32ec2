"""Feed fixtures: a FeedService on the session database, and helpers to make unique test data."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from hanseek.feed.evalsets.model import EvalSet
from hanseek.feed.models import PostIn
from hanseek.feed.service import FeedService
from hanseek.feed.settings import FeedSettings
from hanseek.store.db import Database

DIM = 384
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture()
def feed(db: Database) -> Iterator[FeedService]:
    settings = FeedSettings(index_poll_seconds=0.0)
    svc = FeedService(db, settings=settings, load_in_background=False, follow=False)
    yield svc
    svc.close()


@pytest.fixture()
def tag() -> str:
    """A unique prefix so tests sharing the session database never see each other's rows."""
    return uuid.uuid4().hex[:8]


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_posts(
    tag: str, n: int, communities: int, days: float, seed: int = 0
) -> tuple[list[PostIn], np.ndarray]:
    """n posts spread over `communities` communities and the `days` before NOW, random vectors."""
    rng = np.random.default_rng(seed)
    vecs = unit(rng, n)
    posts = []
    for i in range(n):
        posts.append(
            PostIn(
                id=f"{tag}-p{i}",
                community=f"{tag}-c{i % communities}",
                title=f"post {i}",
                created_at=NOW - timedelta(seconds=float(rng.uniform(0, days * 86400))),
                likes=int(rng.integers(0, 100)),
                comments=int(rng.integers(0, 20)),
                embedding=vecs[i].tolist(),
            )
        )
    return posts, vecs


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` every 50 ms until it holds or `timeout` passes; the caller asserts after."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def tiny_eval_set(seed: int = 0, n_posts: int = 400, n_users: int = 30) -> tuple[EvalSet, np.ndarray]:
    """A small synthetic log with users who like one topic and read recent posts."""
    rng = np.random.default_rng(seed)
    vecs = unit(rng, n_posts)
    t0 = 1_700_000_000.0
    created = np.sort(rng.uniform(t0, t0 + 60 * 86400, n_posts))
    community = rng.integers(0, 3, n_posts).astype(np.int32)
    ev: list[tuple[int, int, int, float, int]] = []
    sess = 0
    for u in range(n_users):
        read: set[int] = set()
        for t in np.sort(rng.uniform(t0 + 5 * 86400, t0 + 60 * 86400, 12)):
            avail = [p for p in np.flatnonzero((created <= t) & (created > t - 10 * 86400)) if p not in read]
            for j, p in enumerate(rng.choice(avail, size=min(2, len(avail)), replace=False)):
                read.add(int(p))
                ev.append((u, int(p), 0, float(t) + 60 * j, sess))
                if j == 0:
                    ev.append((u, int(p), 1, float(t) + 60 * j + 10, sess))
            sess += 1
    ev.sort(key=lambda e: (e[3], e[0], e[2]))
    a = np.array(ev, dtype=np.float64)
    es = EvalSet(
        name="tiny",
        post_ids=[f"t{i}" for i in range(n_posts)],
        titles=[f"t{i}" for i in range(n_posts)],
        texts=[""] * n_posts,
        communities=["a", "b", "c"],
        post_community=community,
        created_at=created,
        popularity_final=rng.integers(0, 100, n_posts).astype(np.float64),
        user_communities=[np.array([0, 1, 2], np.int32)] * n_users,
        ev_user=a[:, 0].astype(np.int32),
        ev_post=a[:, 1].astype(np.int32),
        ev_kind=a[:, 2].astype(np.int8),
        ev_at=a[:, 3],
        ev_session=a[:, 4].astype(np.int32),
        t_train_end=t0 + 35 * 86400,
        t_val_end=t0 + 45 * 86400,
        accrual_days=1e-6,
    )
    return es, vecs
