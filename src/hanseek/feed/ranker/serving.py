"""The ranked feed in the service: candidate sources under the feed's filters, features, model."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from hanseek.feed import query as qy
from hanseek.feed.ranker import features as fx
from hanseek.feed.ranker.candidates import CandidateConfig, merge, top_n
from hanseek.feed.ranker.model import RankerModel
from hanseek.feed.replay import TREND_HALF_LIVES_DAYS
from hanseek.feed.scoring import decay_factor, diversify, popularity

if TYPE_CHECKING:
    from hanseek.feed.service import FeedService

F32 = npt.NDArray[np.float32]


@dataclass
class Ranked:
    hits: list[tuple[int, float, str]]  # (rid, score, sources)
    path: str
    n_window: int
    union: int


def rank(
    svc: FeedService,
    conn: qy.Conn,
    user: qy.UserContext,
    model: RankerModel,
    t_from: datetime | None,
    at: datetime,
    k: int,
    *,
    diversity_share: float | None,
    cfg: CandidateConfig | None = None,
) -> Ranked:
    cfg = cfg or CandidateConfig()
    comms = user.communities
    vec = user.profile.vector()
    recent = (user.recent if user.recent is not None else qy.recent_interactions(conn, user.id, 200))[
        : cfg.recent_reads
    ]
    exclude = user.read_rids if user.read_rids is not None else qy.read_rids(conn, user.id, comms, t_from)
    f_epoch = None if t_from is None else t_from.timestamp()
    mem = svc.index if svc.memory_ready else None
    lists: dict[str, list[int]] = {}
    if mem is not None:
        svc._maybe_poll()
        _, rv = mem.vectors([(x.rid, x.community, x.created_at) for x in recent])
        queries = ([vec] if vec is not None else []) + list(rv)
        qmat = np.stack(queries).T if queries else None
        cand = mem.candidates(comms, f_epoch, at.timestamp(), qmat)
        keep = ~np.isin(cand.rids, exclude) if exclude.size else np.ones(len(cand.rids), bool)
        rids, times, pops = cand.rids[keep], cand.times[keep], cand.pops[keep]
        scores = cand.scores[keep].reshape(len(rids), -1) if qmat is not None else np.zeros((len(rids), 0))
        n_window = len(rids)
        cos_long_all = scores[:, 0] if vec is not None else None
        recent_scores = scores[:, 1:] if vec is not None else scores
        if cos_long_all is not None:
            lists["similar"] = rids[top_n(cos_long_all, times, cfg.n_similar)].tolist()
        lists["latest"] = rids[top_n(times, times, cfg.n_latest)].tolist()
        short: list[int] = []
        for j in range(recent_scores.shape[1]):  # recent is newest first
            short.extend(rids[top_n(recent_scores[:, j], times, cfg.n_short)].tolist())
        if short:
            lists["short"] = short
        # Popular recently, from the stored counts kept in the index (event likes are features only).
        decayed = popularity(pops, 0.0, at.timestamp() - times, cfg.popular_half_life_days)
        lists["popular"] = rids[top_n(decayed, times, cfg.n_popular)].tolist()
        path = "exact-memory"
    else:
        filters = qy.feed_filters(comms, t_from, at, user.id)
        n_window = qy.estimate_candidates(conn, filters)
        if vec is not None:
            lists["similar"] = [r for r, _ in qy.sql_exact(conn, vec, filters, cfg.n_similar)]
        lists["latest"] = [
            r for r, _ in qy.baseline(conn, "latest", comms, t_from, at, cfg.n_latest, user.id)
        ]
        rv_map = qy.embeddings(conn, [x.rid for x in recent])
        have = [rv_map[x.rid] for x in recent if x.rid in rv_map]
        rv = np.stack(have) if have else np.zeros((0, svc.dim), np.float32)
        short = []
        for v in rv:
            short.extend(r for r, _ in qy.sql_exact(conn, v, filters, cfg.n_short))
        if short:
            lists["short"] = short
        lists["popular"] = [
            r
            for r, _ in qy.baseline(
                conn, "popular", comms, t_from, at, cfg.n_popular, user.id, cfg.popular_half_life_days
            )
        ]
        path = "exact-sql"
    union = merge(lists)
    rows = qy.post_rows(conn, union.members)
    members = [r for r in union.members if r in rows]
    if not members:
        return Ranked([], path, n_window, 0)
    at_pos = {r: i for i, r in enumerate(union.members)}
    sel = np.array([at_pos[r] for r in members]) if len(members) != len(union.members) else None
    src = union.sources if sel is None else union.sources[sel]
    best = union.best_rank if sel is None else union.best_rank[sel]

    # Cosines of the union: from the window's score matrix (memory) or the stored vectors (SQL).
    if mem is not None:
        pos = {int(r): i for i, r in enumerate(rids.tolist())}
        idx = np.array([pos[r] for r in members])
        cos_long = cos_long_all[idx].astype(np.float64) if cos_long_all is not None else np.zeros(len(idx))
        cos_recent = recent_scores[idx].astype(np.float64)
        rv_arr = np.asarray(rv, dtype=np.float32).reshape(len(rv), svc.dim)
    else:
        emb = qy.embeddings(conn, members)
        m = np.stack([emb[r] for r in members])
        cos_long = (m @ vec).astype(np.float64) if vec is not None else np.zeros(len(members))
        rv_arr = np.asarray(rv, dtype=np.float32).reshape(len(rv), svc.dim)
        cos_recent = (m @ rv_arr.T).astype(np.float64) if len(rv_arr) else np.zeros((len(members), 0))

    now = at.timestamp()
    prow = [rows[r] for r in members]
    h1, h7 = TREND_HALF_LIVES_DAYS

    def trend(r: qy.PostRow, value: float, h: float) -> float:
        return value * decay_factor(now - r.trend_at, h) if r.trend_at is not None else 0.0

    aff = user.affinity if user.affinity is not None else _affinity(conn, user.id)
    arrays = fx.CandidateArrays(
        cos_long=cos_long,
        cos_recent=cos_recent,
        age_s=np.array([now - r.created_at.timestamp() for r in prow]),
        popularity=np.array([r.likes + r.comments for r in prow], dtype=np.float64),
        trend_1d=np.array([trend(r, r.trend_1d, h1) for r in prow]),
        trend_7d=np.array([trend(r, r.trend_7d, h7) for r in prow]),
        community=[r.community for r in prow],
        author=[r.author for r in prow],
        category=[r.category for r in prow],
        sources=src,
        best_rank=best,
        n_window=n_window,
    )
    signals = fx.UserSignals(
        cold=vec is None,
        recent_mean_norm=fx.recent_mean_norm(rv_arr),
        n_events=user.profile.n_events,
        community=aff.get("community", {}),
        author=aff.get("author", {}),
        category=aff.get("category", {}),
    )
    score = model.score(fx.compute(arrays, signals))
    times = arrays.age_s
    order = np.lexsort((times, -score)).tolist()  # ties: newer first
    if diversity_share is not None and diversity_share < 1.0:
        cap = max(1, math.ceil(diversity_share * k))
        order = diversify(order, [(prow[i].community, prow[i].author) for i in order], k, cap)
    names = fx.SOURCES
    hits = [
        (members[i], float(score[i]), "+".join(n for j, n in enumerate(names) if src[i, j]))
        for i in order[:k]
    ]
    return Ranked(hits, path, n_window, len(members))


def _affinity(conn: qy.Conn, user_id: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for dim, key, w in conn.execute(
        "SELECT dim, key, weight FROM user_affinity WHERE user_id = %s", (user_id,)
    ).fetchall():
        out.setdefault(dim, {})[key] = float(w)
    return out
