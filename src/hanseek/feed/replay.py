"""Offline replay: walk an events log in time order and ask rankers what they would have shown.

A query is asked either at each read of the chosen sessions (unit "read": the read post is the one
relevant item, and the session's earlier reads are already known, as they would be to a feed
requested between two reads) or once at each chosen session's first event (unit "session": all of
the session's reads are relevant). Everything known *before* that moment — the user's profile built
incrementally from earlier events, their read posts, post counters — is handed to a callback; only
then is the event applied. Nothing from that moment or later can leak into what a ranker sees.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from hanseek.feed.evalsets.model import KINDS, EvalSet
from hanseek.feed.memindex import MemoryIndex
from hanseek.feed.profile import Profile, add_event, decay_rate
from hanseek.feed.ranker.features import VOLUME_DAYS, ReadExposure, ReadPrefs
from hanseek.feed.settings import FeedSettings

SECONDS_PER_DAY = 86_400.0
QueryUnit = Literal["read", "session"]
QUERY_UNITS: tuple[QueryUnit, ...] = ("read", "session")
TREND_HALF_LIVES_DAYS = (1.0, 7.0)


class DecayedCounters:
    """Per-post exponentially decayed event counts, updated in O(1) per event."""

    def __init__(self, n: int, half_life_days: float) -> None:
        self.value = np.zeros(n)
        self.at = np.zeros(n)
        self.h = half_life_days * SECONDS_PER_DAY

    def add(self, post: int, t: float, w: float = 1.0) -> None:
        self.value[post] = self.value[post] * np.exp2(-(t - self.at[post]) / self.h) + w
        self.at[post] = t

    def at_time(self, posts: npt.NDArray[np.int64], t: float) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = self.value[posts] * np.exp2(
            -np.maximum(t - self.at[posts], 0) / self.h
        )
        return out


@dataclass
class UserState:
    profile: Profile
    read: set[int] = field(default_factory=set)
    read_arr: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=5))
    community_counts: dict[int, float] = field(default_factory=dict)
    events: int = 0
    prefs: ReadPrefs = field(default_factory=ReadPrefs)
    last_read_session: int = -1  # session of the newest read in `recent`
    exposure: ReadExposure = field(default_factory=ReadExposure)


@dataclass
class World:
    """Post-side state at a moment of the replay."""

    es: EvalSet
    vecs: npt.NDArray[np.float32]
    index: MemoryIndex
    log_likes: npt.NDArray[np.float64]
    log_comments: npt.NDArray[np.float64]
    log_reads: npt.NDArray[np.float64]
    trends: dict[float, DecayedCounters]

    def likes_at(self, posts: npt.NDArray[np.int64], t: float) -> npt.NDArray[np.float64]:
        """What a board shows as likes at time t: the agrees accrued so far plus likes in the log."""
        out: npt.NDArray[np.float64] = self.es.popularity_at(t, posts) + self.log_likes[posts]
        return out


@dataclass
class Query:
    user: int
    t: float
    session: int
    communities: list[str]
    relevant: set[int]
    state: UserState
    world: World

    def user_vector(self) -> npt.NDArray[np.float32] | None:
        return self.state.profile.vector()

    def candidates(self, window_days: float | None) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Posts of the user's communities in the window ending now, minus what they already read."""
        t_from = None if window_days is None else self.t - window_days * SECONDS_PER_DAY
        c = self.world.index.candidates(self.communities, t_from, self.t)
        rids, times = c.rids, c.times
        if self.state.read_arr.size:
            keep = ~np.isin(rids, self.state.read_arr)
            rids, times = rids[keep], times[keep]
        return rids, times


def build_world(es: EvalSet, vecs: npt.NDArray[np.float32]) -> World:
    index = MemoryIndex(vecs.shape[1])
    index.apply(np.arange(es.n_posts), [es.communities[c] for c in es.post_community], es.created_at, vecs)
    n = es.n_posts
    return World(
        es,
        vecs,
        index,
        np.zeros(n),
        np.zeros(n),
        np.zeros(n),
        {h: DecayedCounters(n, h) for h in TREND_HALF_LIVES_DAYS},
    )


def replay(
    es: EvalSet,
    vecs: npt.NDArray[np.float32],
    settings: FeedSettings,
    *,
    query_from: float,
    query_to: float,
    on_query: Callable[[Query], None],
    max_queries: int | None = None,
    seed: int = 0,
    unit: QueryUnit = "read",
) -> int:
    """Replay the whole log; call `on_query` for sessions starting in [query_from, query_to) (a
    sample of `max_queries` of them): before each of their reads (unit "read") or before their first
    event ("session"). Returns the number of queries asked."""
    if unit not in QUERY_UNITS:
        raise ValueError(f"unknown query unit {unit!r}; known: {', '.join(QUERY_UNITS)}")
    world = build_world(es, vecs)
    lam = decay_rate(settings.decay_half_life_days)
    weights = np.array([settings.event_weight(k) for k in KINDS])
    first_at: dict[int, float] = {}
    for s, t in zip(es.ev_session.tolist(), es.ev_at.tolist(), strict=True):
        first_at.setdefault(s, t)
    chosen = [s for s, t in first_at.items() if query_from <= t < query_to]
    if max_queries is not None and len(chosen) > max_queries:
        rng = np.random.default_rng(seed)
        chosen = rng.choice(np.array(chosen), size=max_queries, replace=False).tolist()
    ask = set(chosen)
    reads_of: dict[int, set[int]] = {}  # a session query's relevant posts (a read query has its own)
    if unit == "session":
        for s, p, k in zip(es.ev_session.tolist(), es.ev_post.tolist(), es.ev_kind.tolist(), strict=True):
            if s in ask and k == 0:
                reads_of.setdefault(s, set()).add(p)

    users = [UserState(Profile.empty(vecs.shape[1])) for _ in range(es.n_users)]
    # Each user's communities by name, once: queries and every read's exposure need them.
    names_of = [[es.communities[c] for c in cs] for cs in es.user_communities]
    log = list(
        zip(
            es.ev_user.tolist(),
            es.ev_post.tolist(),
            es.ev_kind.tolist(),
            es.ev_at.tolist(),
            es.ev_session.tolist(),
            strict=True,
        )
    )
    asked = 0
    start = 0
    while start < len(log):
        # Events stamped with one time (a batch sent without `at`) are one moment: every query of it
        # is asked before any of its events is applied. Until session 19 each query saw the events
        # logged before it at that very time (another user's like, the user's own other reads).
        end = start + 1
        while end < len(log) and log[end][3] == log[start][3]:
            end += 1
        read_queries: set[tuple[int, int]] = set()  # (user, post): one query per read of the moment
        for u, p, k, t, s in log[start:end]:
            st = users[u]
            if s in ask and (unit == "session" or k == 0):
                if unit == "session":
                    ask.discard(s)
                    on_query(Query(u, t, s, names_of[u], reads_of.get(s, set()), st, world))
                    asked += 1
                # A re-read of a post already read is nothing a feed could show.
                elif p not in st.read and (u, p) not in read_queries:
                    read_queries.add((u, p))
                    on_query(Query(u, t, s, names_of[u], {p}, st, world))
                    asked += 1
        for u, p, k, t, s in log[start:end]:
            _apply(world, users[u], names_of[u], es, vecs, weights, lam, p, k, t, s)
        start = end
    return asked


def _apply(
    world: World,
    st: UserState,
    names: list[str],
    es: EvalSet,
    vecs: npt.NDArray[np.float32],
    weights: npt.NDArray[np.float64],
    lam: float,
    p: int,
    k: int,
    t: float,
    s: int,
) -> None:
    """One event into the user's and the posts' state."""
    st.profile = add_event(st.profile, vecs[p], float(weights[k]), t, lam)
    st.events += 1
    c = int(es.post_community[p])
    # Summed event weights per community: what the service keeps in user_affinity.
    st.community_counts[c] = st.community_counts.get(c, 0.0) + float(weights[k])
    if p not in st.read:
        st.read.add(p)
        st.read_arr = np.append(st.read_arr, p)
    if k == 0:
        volume = world.index.counts(names, t - VOLUME_DAYS * SECONDS_PER_DAY, t)
        st.exposure.add(es.communities[c], volume)
        # Age and shown popularity at read time, before this read's own counters move.
        one = np.array([p], dtype=np.int64)
        st.prefs.add(t - float(es.created_at[p]), float(world.likes_at(one, t)[0] + world.log_comments[p]))
        st.recent.append(p)
        st.last_read_session = s
        world.log_reads[p] += 1
    elif k == 1:
        world.log_likes[p] += 1
    else:
        world.log_comments[p] += 1
    for counter in world.trends.values():
        counter.add(p, t)
