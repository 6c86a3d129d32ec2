"""The reader model: simulated users reading real posts.

No available data set links users to what they read, so users and their events are simulated from
the real catalogue. To keep the evaluation from being circular, the simulated readers' taste lives
in a *lexical* space (character n-gram TF-IDF reduced by SVD) that none of the ranking methods see —
they use the e5 sentence vectors — and the popularity they respond to is the real agree count as it
grew over the petition's 30 days.

A user joins 2–5 boards, has a stable interest (the mean lexical vector of a few seed posts from
those boards) and visits in sessions (Poisson arrivals). In a session at time t they pick posts one
at a time, without replacement, from the posts of their boards published in the last 120 days and not
yet read, with probability ∝ exp(utility):

    utility = -age_days / τ_u                       recency: most reading is of new posts
              + b_pop_u · log1p(visible agrees at t)   popularity as shown on the board
              + b_int_u · cos(interest_u, post)        long-term interest
              + b_st_u  · cos(last read post, post)    short-term interest within the session
              + log(board share_u)                     how much of their time goes to that board

Per-user coefficients are drawn once from the ranges in `ReaderModel`. A read becomes a like or a
comment with small probabilities that grow with interest. The parameters were fixed from these
behavioural assumptions before any ranking method was evaluated on the sets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hanseek.feed.evalsets.model import SECONDS_PER_DAY, ReaderParams, accrued_popularity


@dataclass(frozen=True)
class ReaderModel:
    n_users: int = 500
    communities_min: int = 2
    communities_max: int = 5
    seeds_per_user: int = 3
    sessions_per_week_median: float = 1.0
    sessions_sigma: float = 0.7
    extra_reads_mean: float = 2.0  # reads per session = 1 + Poisson(this)
    recency_days_median: float = 3.0
    recency_sigma: float = 0.5
    pop_coef: tuple[float, float] = (0.1, 0.5)
    interest_coef: tuple[float, float] = (4.0, 12.0)
    short_term_coef: tuple[float, float] = (0.0, 6.0)
    max_age_days: float = 120.0
    like_prob: float = 0.12
    comment_prob: float = 0.04
    join_until: float = 0.5  # users join uniformly within the first half of the period
    lexical_dims: int = 128
    seed: int = 20240601

    def describe(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SimulatedLog:
    user_communities: list[npt.NDArray[np.int32]]
    ev_user: npt.NDArray[np.int32]
    ev_post: npt.NDArray[np.int32]
    ev_kind: npt.NDArray[np.int8]
    ev_at: npt.NDArray[np.float64]
    ev_session: npt.NDArray[np.int32]
    params: ReaderParams | None = None


def lexical_vectors(texts: list[str], dims: int, seed: int) -> npt.NDArray[np.float32]:
    """Character 2–3-gram TF-IDF reduced to `dims` by truncated SVD, rows L2-normalised."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), min_df=2, sublinear_tf=True)
    x = tfidf.fit_transform(texts)
    k = max(2, min(dims, x.shape[1] - 1, x.shape[0] - 1))
    z = TruncatedSVD(n_components=k, random_state=seed).fit_transform(x)
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return z.astype(np.float32)


def simulate(
    *,
    community: npt.NDArray[np.int32],
    created_at: npt.NDArray[np.float64],
    popularity_final: npt.NDArray[np.float64],
    lexical: npt.NDArray[np.float32],
    n_communities: int,
    accrual_days: float,
    open_days: float,
    model: ReaderModel,
) -> SimulatedLog:
    rng = np.random.default_rng(model.seed)
    order = np.argsort(created_at, kind="stable")
    if not np.array_equal(order, np.arange(len(order))):
        raise ValueError("posts must be sorted by created_at")
    t0, t1 = float(created_at.min()), float(created_at.max())
    span = t1 - t0
    sizes = np.bincount(community, minlength=n_communities).astype(np.float64)
    board_p = np.sqrt(sizes) / np.sqrt(sizes).sum()

    users: list[npt.NDArray[np.int32]] = []
    n_users = model.n_users
    params = ReaderParams(
        tau_days=np.full(n_users, np.nan),
        b_pop=np.full(n_users, np.nan),
        b_int=np.full(n_users, np.nan),
        b_st=np.full(n_users, np.nan),
        log_share=np.full((n_users, n_communities), -np.inf),
        interest=np.zeros((n_users, lexical.shape[1]), np.float32),
        lexical=lexical,
        max_age_days=model.max_age_days,
    )
    ev: list[tuple[int, int, int, float, int]] = []
    session_id = 0
    for u in range(model.n_users):
        m = int(rng.integers(model.communities_min, model.communities_max + 1))
        m = min(m, int((sizes > 0).sum()))
        comms = np.sort(rng.choice(n_communities, size=m, replace=False, p=board_p)).astype(np.int32)
        users.append(comms)
        share = rng.dirichlet(np.ones(m))
        log_share = np.full(n_communities, -np.inf)
        log_share[comms] = np.log(share)
        params.log_share[u] = log_share
        mine = np.flatnonzero(np.isin(community, comms))
        if len(mine) == 0:
            continue
        seeds = rng.choice(mine, size=min(model.seeds_per_user, len(mine)), replace=False)
        interest = lexical[seeds].mean(axis=0)
        interest /= max(float(np.linalg.norm(interest)), 1e-12)
        lex_mine = lexical[mine]  # contiguous copy: sessions slice it without fancy indexing
        created_mine = created_at[mine]
        int_sim = lex_mine @ interest
        tau = model.recency_days_median * float(np.exp(rng.normal(0.0, model.recency_sigma)))
        b_pop = float(rng.uniform(*model.pop_coef))
        b_int = float(rng.uniform(*model.interest_coef))
        b_st = float(rng.uniform(*model.short_term_coef))
        # Recorded only: no extra draws, so the events are those of the unrecorded simulation.
        params.interest[u] = interest
        params.tau_days[u], params.b_pop[u], params.b_int[u], params.b_st[u] = tau, b_pop, b_int, b_st
        rate = model.sessions_per_week_median * float(np.exp(rng.normal(0.0, model.sessions_sigma)))
        join = t0 + float(rng.uniform(0.0, model.join_until)) * span
        n_sessions = int(rng.poisson(rate * (t1 - join) / (7 * SECONDS_PER_DAY)))
        times = np.sort(rng.uniform(join, t1, size=n_sessions))
        unread = np.ones(len(mine), dtype=bool)
        for t in times:
            lo = int(np.searchsorted(created_mine, t - model.max_age_days * SECONDS_PER_DAY))
            hi = int(np.searchsorted(created_mine, t, side="right"))
            if hi <= lo:
                continue
            cand = mine[lo:hi]
            age = t - created_at[cand]
            base = (
                -age / (tau * SECONDS_PER_DAY)
                + b_pop * np.log1p(accrued_popularity(popularity_final[cand], age, accrual_days, open_days))
                + b_int * int_sim[lo:hi]
                + log_share[community[cand]]
            )
            alive = unread[lo:hi].copy()
            last: npt.NDArray[np.float32] | None = None
            n_reads = 1 + int(rng.poisson(model.extra_reads_mean))
            for j in range(n_reads):
                if not alive.any():
                    break
                util = base + (b_st * (lex_mine[lo:hi] @ last) if last is not None else 0.0)
                util = np.where(alive, util, -np.inf)
                p = np.exp(util - util.max())
                p /= p.sum()
                i = int(rng.choice(len(cand), p=p))
                alive[i] = False
                post = int(cand[i])
                unread[lo + i] = False
                last = lexical[post]
                at = float(t) + 60.0 * j
                ev.append((u, post, 0, at, session_id))
                affinity = max(0.0, float(int_sim[lo + i]))
                if rng.random() < model.like_prob * (1.0 + 2.0 * affinity):
                    ev.append((u, post, 1, at + 20.0, session_id))
                if rng.random() < model.comment_prob * (1.0 + 2.0 * affinity):
                    ev.append((u, post, 2, at + 40.0, session_id))
            session_id += 1

    ev.sort(key=lambda e: (e[3], e[0], e[2]))
    arr = np.array(ev, dtype=np.float64).reshape(-1, 5)
    return SimulatedLog(
        user_communities=users,
        ev_user=arr[:, 0].astype(np.int32),
        ev_post=arr[:, 1].astype(np.int32),
        ev_kind=arr[:, 2].astype(np.int8),
        ev_at=arr[:, 3],
        ev_session=arr[:, 4].astype(np.int32),
        params=params,
    )
