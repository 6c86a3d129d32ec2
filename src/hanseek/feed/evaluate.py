"""Replay evaluation of feed rankers on an evaluation set, per date window.

For every held-out interaction (each read in a sample of the sessions of the test period) and every
window, each method ranks the posts the user could have been shown at that moment — their
communities, published in the window, not yet read — and is scored against the post the user read
next. With unit "session" a query is asked once per held-out session and scored against all of its
reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from hanseek.feed.evalsets.model import EvalSet
from hanseek.feed.metrics import MetricAccumulator
from hanseek.feed.replay import SECONDS_PER_DAY, Query, QueryUnit, replay
from hanseek.feed.scoring import blend, order_latest, order_popular, popularity
from hanseek.feed.settings import FeedSettings

I64 = npt.NDArray[np.int64]
WINDOWS: dict[str, float | None] = {"7d": 7.0, "30d": 30.0, "180d": 180.0, "none": None}


@dataclass
class Candidates:
    """What a method may rank for one query and window (post indices into the set)."""

    query: Query
    posts: I64
    times: npt.NDArray[np.float64]
    window_days: float | None
    _cos: npt.NDArray[np.float32] | None = None
    recent: I64 = field(default_factory=lambda: np.zeros(0, np.int64))  # last reads, newest first
    recent_cos: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    def cosine(self) -> npt.NDArray[np.float32] | None:
        """Cosine of each candidate to the user's long-term vector (None for a cold-start user)."""
        return self._cos

    def popularity(self, half_life_days: float = 0.0) -> npt.NDArray[np.float64]:
        w = self.query.world
        likes = w.likes_at(self.posts, self.query.t)
        return popularity(likes, w.log_comments[self.posts], self.query.t - self.times, half_life_days)


class Method(Protocol):
    name: str

    def order(self, c: Candidates) -> I64:
        """Candidate positions, best first (may be a prefix; the rest follows newest first)."""
        ...


class Latest:
    name = "latest"

    def order(self, c: Candidates) -> I64:
        return order_latest(c.times, c.posts)


class Popular:
    name = "popular"

    def __init__(self, half_life_days: float = 0.0) -> None:
        self.half_life_days = half_life_days

    def order(self, c: Candidates) -> I64:
        return order_popular(c.popularity(self.half_life_days), c.times, c.posts)


class Personalized:
    """The original system's method: cosine to the weighted mean of read posts (cold start: blend)."""

    name = "personalized"

    def __init__(self, cold_start_popular_share: float = 0.5, k: int = 20) -> None:
        self.share = cold_start_popular_share
        self.k = k

    def order(self, c: Candidates) -> I64:
        cos = c.cosine()
        if cos is None:
            pop = order_popular(c.popularity(), c.times, c.posts).tolist()
            new = order_latest(c.times, c.posts).tolist()
            return np.asarray(blend(pop, new, self.share, self.k), dtype=np.int64)
        return np.lexsort((-c.posts, -c.times, -cos)).astype(np.int64)


class ReaderOracle:
    """Upper-bound reference, not a method: ranks by the simulated reader's own utility (its true
    recency scale, popularity and interest coefficients, board shares and the popularity it saw,
    plus the within-session term when an earlier read of the same session is known, as it is to
    every query but a session's first). Only the simulation knows these; no ranker may use them.

    `interest=False` / `session=False` leave out the terms that live in the readers' hidden lexical
    space: what remains (recency, popularity, board shares) is built from quantities the service
    observes, with the reader's true coefficients. The gap between the variants says how much of
    the oracle's lead comes from taste no method can see."""

    name = "oracle (reader model's utility)"

    def __init__(self, *, interest: bool = True, session: bool = True) -> None:
        self.interest = interest
        self.session = session
        gone = [t for t, kept in (("interest", interest), ("within-session", session)) if not kept]
        if gone:
            self.name = "oracle − " + " − ".join(gone)

    def order(self, c: Candidates) -> I64:
        q = c.query
        es = q.world.es
        rp = es.reader_params
        if rp is None:
            raise ValueError(f"set {es.name} has no recorded reader parameters")
        u = rp.base_utility(
            q.user,
            c.posts,
            q.t - c.times,
            es.popularity_at(q.t, c.posts),
            es.post_community[c.posts],
            interest=self.interest,
        )
        if self.session and q.state.recent and q.state.last_read_session == q.session:
            u = u + rp.within_session(q.user, c.posts, q.state.recent[-1])
        return np.lexsort((-c.times, -u)).astype(np.int64)


@dataclass
class EvalResult:
    set_name: str
    k: int
    windows: dict[str, dict[str, dict[str, float]]]  # window -> method -> metrics
    queries: int
    seconds: float
    unit: QueryUnit = "read"
    extra: dict[str, Any] = field(default_factory=dict)
    # Per query, in replay order (the same queries for every window and method): window -> method
    # -> {"hr": [...], "ndcg": [...]}, and the held-out session each query belongs to.
    per_query: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    groups: list[int] = field(default_factory=list)


def window_candidates(q: Query, window_days: float | None, recent_reads: int = 3) -> Candidates:
    """The user's unread posts of their communities published in the window ending at q.t, with
    their cosines to the user's vector and to the last few reads (one matrix product per slice)."""
    v = q.user_vector()
    recent = np.asarray(list(q.state.recent)[-recent_reads:][::-1], dtype=np.int64)
    cols = ([v] if v is not None else []) + [q.world.vecs[i] for i in recent]
    qmat = np.stack(cols, axis=1) if cols else None
    t_from = None if window_days is None else q.t - window_days * SECONDS_PER_DAY
    cand = q.world.index.candidates(q.communities, t_from, q.t, qmat)
    posts, times = cand.rids, cand.times
    scores = cand.scores.reshape(len(posts), len(cols)) if cols else np.zeros((len(posts), 0), np.float32)
    if q.state.read_arr.size and posts.size:
        keep = ~np.isin(posts, q.state.read_arr)
        posts, times, scores = posts[keep], times[keep], scores[keep]
    cos = scores[:, 0] if v is not None else None
    return Candidates(q, posts, times, window_days, cos, recent, scores[:, 1:] if v is not None else scores)


def _full_order(prefix: I64, c: Candidates) -> I64:
    if len(prefix) == len(c.posts):
        return prefix
    rest = np.setdiff1d(np.arange(len(c.posts)), prefix, assume_unique=False)
    rest = rest[order_latest(c.times[rest], c.posts[rest])]
    return np.concatenate([prefix, rest]).astype(np.int64)


def evaluate(
    es: EvalSet,
    vecs: npt.NDArray[np.float32],
    methods: Sequence[Method],
    *,
    settings: FeedSettings | None = None,
    windows: dict[str, float | None] | None = None,
    k: int = 20,
    max_queries: int | None = 3000,
    seed: int = 0,
    period: tuple[float, float] | None = None,
    on_query: Callable[[Query], None] | None = None,
    unit: QueryUnit = "read",
) -> EvalResult:
    """Metrics per window and method over the test period (sessions after `es.t_val_end`); at most
    `max_queries` sessions are sampled, and with unit "read" each of their reads is a query."""
    settings = settings or FeedSettings()
    windows = windows if windows is not None else WINDOWS
    start, end = period or (es.t_val_end, float("inf"))
    acc = {w: {m.name: MetricAccumulator(k, 0) for m in methods} for w in windows}
    eligible: dict[str, set[int]] = {w: set() for w in windows}
    groups: list[int] = []
    started = time.perf_counter()

    def ask(q: Query) -> None:
        groups.append(q.session)
        for wname, wdays in windows.items():
            c = window_candidates(q, wdays)
            eligible[wname].update(c.posts.tolist())
            for m in methods:
                order = _full_order(m.order(c), c) if len(c.posts) else np.zeros(0, np.int64)
                ranked = c.posts[order].tolist()
                acc[wname][m.name].add(ranked, q.relevant)
        if on_query is not None:
            on_query(q)

    n = replay(
        es,
        vecs,
        settings,
        query_from=start,
        query_to=end,
        on_query=ask,
        max_queries=max_queries,
        seed=seed,
        unit=unit,
    )
    out: dict[str, dict[str, dict[str, float]]] = {}
    per_query: dict[str, dict[str, dict[str, list[float]]]] = {}
    for wname in windows:
        out[wname], per_query[wname] = {}, {}
        for m in methods:
            a = acc[wname][m.name]
            a.catalogue_size = len(eligible[wname])
            out[wname][m.name] = a.result()
            per_query[wname][m.name] = {"hr": a.hits, "ndcg": a.ndcgs}
    return EvalResult(
        es.name, k, out, n, round(time.perf_counter() - started, 1), unit, per_query=per_query, groups=groups
    )


def is_oracle(method: str) -> bool:
    """The oracle reference row or one of its variants (`ReaderOracle` names them all so)."""
    return method.startswith("oracle ")


def markdown_table(result: EvalResult, metrics: Sequence[str] = ("hr", "ndcg", "mrr", "coverage")) -> str:
    k = result.k
    names = {"hr": f"HR@{k}", "recall": f"recall@{k}", "ndcg": f"nDCG@{k}", "mrr": "MRR"}
    keys = {"hr": f"hr@{k}", "recall": f"recall@{k}", "ndcg": f"ndcg@{k}", "mrr": "mrr"}
    names["coverage"] = keys["coverage"] = "coverage"
    lines = [
        "| window | method | " + " | ".join(names[m] for m in metrics) + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for wname, per_method in result.windows.items():
        # Bold the best method; the oracle and its variants are references, not contenders.
        rivals = [v for name, v in per_method.items() if not is_oracle(name)] or list(per_method.values())
        best = {m: max(v[keys[m]] for v in rivals) for m in metrics}
        for method, vals in per_method.items():
            cells = []
            for m in metrics:
                x = vals[keys[m]]
                top = x == best[m] and m != "coverage" and not is_oracle(method)
                cells.append(f"**{x:.3f}**" if top else f"{x:.3f}")
            lines.append(f"| {wname} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
