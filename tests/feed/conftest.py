"""Feed fixtures: a FeedService on the session database, and helpers to make unique test data."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

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
