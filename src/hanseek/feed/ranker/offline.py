"""The re-ranker inside the offline replay: candidate unions, features, training data, evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hanseek.feed.evaluate import Candidates
from hanseek.feed.ranker import features as fx
from hanseek.feed.ranker.candidates import CandidateConfig, Union, merge, top_n
from hanseek.feed.ranker.model import RankerModel
from hanseek.feed.replay import SECONDS_PER_DAY
from hanseek.feed.scoring import popularity

I64 = npt.NDArray[np.int64]


@dataclass
class Built:
    union: Union
    positions: I64  # positions in the window's candidate arrays
    x: npt.NDArray[np.float32]


def user_signals(c: Candidates, recent: npt.NDArray[np.float32]) -> fx.UserSignals:
    q = c.query
    es = q.world.es
    comm = {es.communities[k]: float(v) for k, v in q.state.community_counts.items()}
    since = q.t - fx.VOLUME_DAYS * SECONDS_PER_DAY
    return fx.UserSignals(
        cold=q.user_vector() is None,
        recent_mean_norm=fx.recent_mean_norm(recent),
        n_events=q.state.events,
        community=comm,
        author={},
        category=comm,  # in the petition sets a post's category is its board
        prefs=q.state.prefs,
        community_volume={k: float(v) for k, v in q.world.index.counts(q.communities, since, q.t).items()},
        exposure=q.state.exposure,
    )


def build(c: Candidates, cfg: CandidateConfig) -> Built | None:
    """The candidate union for one query/window and its feature matrix (None: nothing to rank)."""
    n = len(c.posts)
    if n == 0:
        return None
    recent = c.query.world.vecs[c.recent[: cfg.recent_reads]]  # newest first
    u = user_signals(c, recent)
    sims = c.recent_cos[:, : cfg.recent_reads]
    lists: dict[str, list[int]] = {}
    cos = c.cosine()
    if cos is not None:
        # Ties as the service's nearest lists (serving.rank): newer, then the later post.
        lists["similar"] = top_n(cos, c.times, cfg.n_similar, c.posts).tolist()
    lists["latest"] = top_n(c.times, c.times, cfg.n_latest).tolist()
    # The popular source sees the counts stored on the posts (the service keeps those in its index);
    # likes and comments from the events log enter as features only.
    q = c.query
    pop_recent = popularity(
        q.world.es.popularity_at(q.t, c.posts), 0.0, q.t - c.times, cfg.popular_half_life_days
    )
    lists["popular"] = top_n(pop_recent, c.times, cfg.n_popular).tolist()
    if sims.shape[1]:
        short: list[int] = []
        for j in range(sims.shape[1]):  # most recent read first
            short.extend(top_n(sims[:, j], c.times, cfg.n_short, c.posts).tolist())
        lists["short"] = short
    union = merge(lists)
    pos = np.asarray(union.members, dtype=np.int64)
    w = c.query.world
    posts = c.posts[pos]
    es = w.es
    comm_names = [es.communities[k] for k in es.post_community[posts]]
    arrays = fx.CandidateArrays(
        cos_long=cos[pos].astype(np.float64) if cos is not None else np.zeros(len(pos)),
        cos_recent=sims[pos].astype(np.float64),
        age_s=c.query.t - c.times[pos],
        popularity=w.likes_at(posts, c.query.t) + w.log_comments[posts],
        trend_1d=w.trends[1.0].at_time(posts, c.query.t),
        trend_7d=w.trends[7.0].at_time(posts, c.query.t),
        community=comm_names,
        author=[None] * len(posts),
        category=comm_names,
        sources=union.sources,
        best_rank=union.best_rank,
        n_window=n,
        source_ranks=union.ranks,
    )
    return Built(union, pos, fx.compute(arrays, u))


class RankerMethod:
    """Evaluation adapter: rank the union by the model; the rest of the window follows newest first."""

    def __init__(self, model: RankerModel, cfg: CandidateConfig | None = None, name: str = "ranker") -> None:
        self.model = model
        self.cfg = cfg or CandidateConfig()
        self.name = name

    def order(self, c: Candidates) -> I64:
        b = build(c, self.cfg)
        if b is None:
            return np.zeros(0, np.int64)
        s = self.model.score(b.x)
        order = np.lexsort((-c.times[b.positions], -s))
        return b.positions[order]


class BuildCache:
    """Shares one candidate union + feature matrix among the ranker variants scoring the same
    query and window (the ablations only drop columns)."""

    def __init__(self, cfg: CandidateConfig) -> None:
        self.cfg = cfg
        self._built: Built | None = None
        self._ref: Candidates | None = None

    def get(self, c: Candidates) -> Built | None:
        if self._ref is not c:
            self._ref = c  # holding the object keeps its id from being reused while cached
            self._built = build(c, self.cfg)
        return self._built


class CachedRankerMethod(RankerMethod):
    def __init__(
        self,
        model: RankerModel,
        cache: BuildCache,
        name: str,
        diversity_share: float | None = None,
        k: int = 20,
    ) -> None:
        super().__init__(model, cache.cfg, name)
        self.cache = cache
        self.diversity_share = diversity_share
        self.k = k

    def order(self, c: Candidates) -> I64:
        b = self.cache.get(c)
        if b is None:
            return np.zeros(0, np.int64)
        s = self.model.score(b.x)
        order = b.positions[np.lexsort((-c.times[b.positions], -s))]
        if self.diversity_share is not None:
            import math

            from hanseek.feed.scoring import diversify

            es = c.query.world.es
            keys = [(int(es.post_community[c.posts[p]]),) for p in order]
            cap = max(1, math.ceil(self.diversity_share * self.k))
            page = diversify(order.tolist(), keys, self.k, cap)
            # The rest of the union in the model's order, as the uncapped row has it: MRR reads
            # past the page. Until session 19 the evaluation put the rest newest first, so the
            # capped row's MRR differed from the uncapped one's even where the cap never bound.
            on_page = set(page)
            order = np.asarray(page + [p for p in order.tolist() if p not in on_page], dtype=np.int64)
        return order
