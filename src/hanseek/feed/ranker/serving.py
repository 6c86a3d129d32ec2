"""The ranked feed in the service: candidate sources under the feed's filters, features, model."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from hanseek.feed import query as qy
from hanseek.feed.ranker import features as fx
from hanseek.feed.ranker.candidates import CandidateConfig, merge, top_n
from hanseek.feed.ranker.model import RankerModel
from hanseek.feed.replay import TREND_HALF_LIVES_DAYS
from hanseek.feed.scoring import decay_factor, diversify, popularity

if TYPE_CHECKING:
    from hanseek.feed.memindex import MemoryIndex
    from hanseek.feed.service import FeedService

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass
class Ranked:
    hits: list[tuple[int, float, str]]  # (rid, score, sources)
    path: str
    n_window: int
    union: int
    rows: dict[int, qy.PostRow] = field(default_factory=dict)  # details of the union (no second query)


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
    path: str = "auto",
) -> Ranked:
    """The ranked top-k. Candidate sources run on the in-process index when it is loaded and `path`
    is auto or exact; otherwise in SQL, where the nearest-neighbour sources are exact (`exact-sql`)
    or HNSW (`approx`, or `auto` on a window above `exact_max_candidates`), as in the similar feed."""
    cfg = cfg or CandidateConfig()
    if cfg.n_latest < k + 5:
        # The ranker orders only the union, so a page longer than it would come back short while the
        # window still holds unread posts; the newest list grows with k (pages up to 55 are as trained).
        cfg = replace(cfg, n_latest=k + 5)
    comms = user.communities
    vec = user.profile.vector()
    # The last reads, re-reads repeated, as the replay that trained the model has them (until
    # session 19 the distinct posts of any event kind: a comment on an older post moved it in).
    if user.recent_reads is not None and cfg.recent_reads <= qy.RECENT_READS:
        recent = user.recent_reads[: cfg.recent_reads]
    else:
        recent = qy.recent_reads(conn, user.id, cfg.recent_reads)
    exclude = user.read_rids if user.read_rids is not None else qy.read_rids(conn, user.id, comms, t_from)
    f_epoch = None if t_from is None else t_from.timestamp()
    mem = svc.index if path in ("auto", "exact") and svc.memory_ready else None
    lists: dict[str, list[int]] = {}
    if mem is not None:
        svc._maybe_poll()
        _, rv = mem.vectors([(x.rid, x.community, x.created_at) for x in recent])
        queries = ([vec] if vec is not None else []) + list(rv)
        # [d, m] in C order: with one BLAS thread a transposed (Fortran-order) query matrix made the
        # window's product 2.4x slower (274 against 116 us for 2800 x 384 x 4, session 21).
        qmat = np.stack(queries, axis=1) if queries else None
        cand = mem.candidates(comms, f_epoch, at.timestamp(), qmat)
        keep = ~np.isin(cand.rids, exclude) if exclude.size else np.ones(len(cand.rids), bool)
        rids, times, pops = cand.rids[keep], cand.times[keep], cand.pops[keep]
        comm_of, authors_of, cats_of = cand.comm[keep], cand.authors[keep], cand.cats[keep]
        # Explicit width: reshape(0, -1) fails on an empty window.
        width = qmat.shape[1] if qmat is not None else 0
        scores = cand.scores[keep].reshape(len(rids), width) if width else np.zeros((len(rids), 0))
        n_window = len(rids)
        cos_long_all = scores[:, 0] if vec is not None else None
        recent_scores = scores[:, 1:] if vec is not None else scores
        # The sources list positions in the window, so the union's rows are its keys (mapping
        # rids back to rows took a sort of the window's rids, ~0.1 ms a request).
        if cos_long_all is not None:
            # Ties as the SQL path's nearest rows (query.TIES): newer, then the larger rid.
            lists["similar"] = top_n(cos_long_all, times, cfg.n_similar, rids).tolist()
        short: list[int] = []
        for j in range(recent_scores.shape[1]):  # recent is newest first
            short.extend(top_n(recent_scores[:, j], times, cfg.n_short, rids).tolist())
        if short:
            lists["short"] = short
        lists.update({name: pos.tolist() for name, pos in _window_sources(times, pops, at, cfg).items()})
        path = "exact-memory"
    else:
        filters = qy.feed_filters(comms, t_from, at, user.id)
        s = svc.settings
        # The planner's estimate only picks the path, as in the similar feed; the model's
        # `log_candidates` reads the exact count of unread posts in the window, as the index and the
        # offline replay give it.
        approx = path == "approx" or (
            path == "auto" and qy.estimate_candidates(conn, filters) > s.exact_max_candidates
        )

        def nearest(q: F32, n: int) -> list[int]:
            if approx:
                return [
                    r for r, _ in qy.sql_approx(conn, q, filters, n, s.hnsw_ef_search, s.hnsw_max_scan_tuples)
                ]
            return [r for r, _ in qy.sql_exact(conn, q, filters, n)]

        if vec is not None:
            lists["similar"] = nearest(vec, cfg.n_similar)
        if approx:
            # A broad window: counted and ranked in PostgreSQL rather than read out.
            n_window = _window_count(conn, comms, t_from, at, user.id)
            lists["latest"], lists["popular"] = _sources_sql(conn, comms, t_from, at, user.id, cfg)
        else:
            # At most `exact_max_candidates` rows under `auto`: three columns of each, in the index's
            # order, so latest and popular come out of the same code as on the in-process index.
            w_rids, w_times, w_pops = _window_rows(conn, comms, t_from, at, user.id)
            n_window = len(w_rids)
            sources = _window_sources(w_times, w_pops, at, cfg)
            lists.update({name: w_rids[pos].tolist() for name, pos in sources.items()})
        rv_map = qy.embeddings(conn, [x.rid for x in recent])
        have = [rv_map[x.rid] for x in recent if x.rid in rv_map]
        rv = np.stack(have) if have else np.zeros((0, svc.dim), np.float32)
        short = []
        for v in rv:
            short.extend(nearest(v, cfg.n_short))
        if short:
            lists["short"] = short
        path = "approx-hnsw" if approx else "exact-sql"
    union = merge(lists)
    if not union.members:
        return Ranked([], path, n_window, 0)
    now = at.timestamp()
    h1, h7 = TREND_HALF_LIVES_DAYS
    rows: dict[int, qy.PostRow] = {}
    if mem is not None:
        # Everything but the event counts comes from the index: no wide post rows are read for
        # the ~200 candidates, only for the k that are shown.
        idx = np.asarray(union.members, dtype=np.intp)  # rows of the window
        member_rids = rids[idx]
        members = member_rids.tolist()
        assert svc.stats is not None  # loaded with the index
        stats = svc.stats.lookup(member_rids, now, TREND_HALF_LIVES_DAYS)
        cos_long = cos_long_all[idx].astype(np.float64) if cos_long_all is not None else np.zeros(len(idx))
        cos_recent = recent_scores[idx].astype(np.float64)
        rv_arr = np.asarray(rv, dtype=np.float32).reshape(len(rv), svc.dim)
        names = list(dict.fromkeys(comms))
        community = [names[c] for c in comm_of[idx].tolist()]
        authors: list[object] = [a or None for a in authors_of[idx].tolist()]
        categories: list[object] = [g or None for g in cats_of[idx].tolist()]
        age_s = now - times[idx]
        popular = pops[idx].astype(np.float64) + stats.counted
        t1, t7 = stats.trend_1d, stats.trend_7d
        by_key, by_code = (
            (user.affinity, user.affinity_codes)
            if user.affinity is not None and user.affinity_codes is not None
            else _affinity(conn, user.id)
        )
        aff_author: dict[Any, float] = dict(by_code.get("author", {}))
        aff_category: dict[Any, float] = dict(by_code.get("category", {}))
        aff_community = by_key.get("community", {})
        src, best, ranks = union.sources, union.best_rank, union.ranks
    else:
        rows = qy.post_rows(conn, union.members)
        members = [r for r in union.members if r in rows]
        if not members:
            return Ranked([], path, n_window, 0)
        at_pos = {r: i for i, r in enumerate(union.members)}
        sel = np.array([at_pos[r] for r in members])
        src, best = union.sources[sel], union.best_rank[sel]
        ranks = union.ranks[sel] if union.ranks is not None else None
        emb = qy.embeddings(conn, members)
        m = np.stack([emb[r] for r in members])
        cos_long = (m @ vec).astype(np.float64) if vec is not None else np.zeros(len(members))
        rv_arr = np.asarray(rv, dtype=np.float32).reshape(len(rv), svc.dim)
        cos_recent = (m @ rv_arr.T).astype(np.float64) if len(rv_arr) else np.zeros((len(members), 0))
        prow = [rows[r] for r in members]
        community = [r.community for r in prow]
        authors = [r.author for r in prow]
        categories = [r.category for r in prow]
        age_s = np.array([now - r.created_at.timestamp() for r in prow])
        popular = np.array([r.likes + r.comments for r in prow], dtype=np.float64)
        t1 = np.array([_decayed(r.trend_1d, r.trend_at, now, h1) for r in prow])
        t7 = np.array([_decayed(r.trend_7d, r.trend_at, now, h7) for r in prow])
        aff = user.affinity if user.affinity is not None else _affinity(conn, user.id)[0]
        aff_author, aff_category = dict(aff.get("author", {})), dict(aff.get("category", {}))
        aff_community = aff.get("community", {})

    arrays = fx.CandidateArrays(
        cos_long=cos_long,
        cos_recent=cos_recent,
        age_s=age_s,
        popularity=popular,
        trend_1d=t1,
        trend_7d=t7,
        community=community,
        author=authors,  # type: ignore[arg-type]
        category=categories,  # type: ignore[arg-type]
        sources=src,
        best_rank=best,
        n_window=n_window,
        source_ranks=ranks,
    )
    signals = fx.UserSignals(
        cold=vec is None,
        recent_mean_norm=fx.recent_mean_norm(rv_arr),
        n_events=user.profile.n_events,
        community=aff_community,
        author=aff_author,
        category=aff_category,
        prefs=user.prefs if user.prefs is not None else qy.user_prefs(conn, user.id),
        # The volumes cost a GROUP BY on the SQL path; only the lift column reads them.
        community_volume=_volume(mem, conn, comms, at) if model.uses("community_lift") else {},
        exposure=(
            (user.exposure if user.exposure is not None else qy.user_exposure(conn, user.id))
            if model.uses("exposure_lift")
            else fx.ReadExposure()
        ),
    )
    score = model.score(fx.compute(arrays, signals))
    order = np.lexsort((age_s, -score)).tolist()  # ties: newer first
    if diversity_share is not None and diversity_share < 1.0:
        cap = max(1, math.ceil(diversity_share * k))
        order = diversify(order, [(community[i], authors[i]) for i in order], k + 5, cap)
    src_names = fx.SOURCES
    hits = [
        (members[i], float(score[i]), "+".join(n for j, n in enumerate(src_names) if src[i, j]))
        for i in order[: k + 5]  # a few spare: a post deleted a moment ago is dropped when shown
    ]
    if mem is not None:
        rows = qy.post_rows(conn, [h[0] for h in hits])
    hits = [h for h in hits if h[0] in rows][:k]
    return Ranked(hits, path, n_window, len(members), rows)


def _window_sources(times: F64, pops: F32, at: datetime, cfg: CandidateConfig) -> dict[str, I64]:
    """The latest and popular sources, as positions in the window's unread posts (times, stored
    likes + comments), ordered as the in-process index holds them: the user's communities in turn,
    each by (created_at, rid). The exact paths (index and SQL) both build them here, so ties and
    ranks agree. Popular reads the counts stored on the posts, as the offline replay's source does;
    likes and comments from the events log enter as features only."""
    decayed = popularity(pops, 0.0, at.timestamp() - times, cfg.popular_half_life_days)
    return {"latest": top_n(times, times, cfg.n_latest), "popular": top_n(decayed, times, cfg.n_popular)}


# The window of the feed (the user's communities, [t_from, at]) less the posts the user interacted
# with: the in-process index's window with the read rids left out.
_WINDOW = """p.community = ANY(%(comms)s) AND p.created_at <= %(at)s
      AND (%(t_from)s::timestamptz IS NULL OR p.created_at >= %(t_from)s)"""
_UNREAD = "NOT EXISTS (SELECT 1 FROM events e WHERE e.user_id = %(user)s AND e.post_id = p.id)"
# Stored likes + comments, clipped as the index stores them (indexsync._SELECT_ROWS).
_STORED_POP = "least(p.likes::int8 + p.comments, 2147483647)"


def _params(comms: list[str], t_from: datetime | None, at: datetime, user_id: str) -> dict[str, Any]:
    return {"comms": list(dict.fromkeys(comms)), "t_from": t_from, "at": at, "user": user_id}


def _window_rows(
    conn: qy.Conn, comms: list[str], t_from: datetime | None, at: datetime, user_id: str
) -> tuple[I64, F64, F32]:
    """rid, created_at (epoch seconds) and stored likes + comments of every unread post in the
    window, in the in-process index's order (communities as listed, then created_at, rid)."""
    rows = conn.execute(
        f"SELECT p.rid, extract(epoch FROM p.created_at)::float8, {_STORED_POP} FROM posts p "
        f"WHERE {_WINDOW} AND {_UNREAD} "
        "ORDER BY array_position(%(comms)s::text[], p.community), p.created_at, p.rid",
        _params(comms, t_from, at, user_id),
    ).fetchall()
    return (
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.float64),
        np.array([r[2] for r in rows], dtype=np.float32),
    )


def _window_count(
    conn: qy.Conn, comms: list[str], t_from: datetime | None, at: datetime, user_id: str
) -> int:
    """The exact number of unread posts in the window: the window's rows (an index-only count on
    posts (community, created_at)) less the user's interacted posts among them."""
    row = conn.execute(
        f"SELECT (SELECT count(*) FROM posts p WHERE {_WINDOW}) - (SELECT count(DISTINCT p.rid) "
        f"FROM events e JOIN posts p ON p.id = e.post_id WHERE e.user_id = %(user)s AND {_WINDOW})",
        _params(comms, t_from, at, user_id),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _sources_sql(
    conn: qy.Conn, comms: list[str], t_from: datetime | None, at: datetime, user_id: str, cfg: CandidateConfig
) -> tuple[list[int], list[int]]:
    """The latest and popular sources in PostgreSQL, for a window too broad to read out: the same
    stored counts, decay and ties (newer first, then the index's order) as `_window_sources`."""
    score = f"{_STORED_POP}::float8"
    if cfg.popular_half_life_days > 0:
        # 0 past 1075 half-lives, as decay_factors gives it (power() alone raised an underflow).
        score += " * " + qy.decay_sql(
            "extract(epoch FROM (%(at)s - p.created_at))", cfg.popular_half_life_days
        )
    ties = "p.created_at DESC, array_position(%(comms)s::text[], p.community), p.rid"
    params = _params(comms, t_from, at, user_id)
    out: list[list[int]] = []
    for order, n in ((ties, cfg.n_latest), (f"{score} DESC, {ties}", cfg.n_popular)):
        rows = conn.execute(
            f"SELECT p.rid FROM posts p WHERE {_WINDOW} AND {_UNREAD} ORDER BY {order} LIMIT %(n)s",
            {**params, "n": n},
        ).fetchall()
        out.append([int(r[0]) for r in rows])
    return out[0], out[1]


def _volume(mem: MemoryIndex | None, conn: qy.Conn, comms: list[str], at: datetime) -> dict[str, float]:
    """Posts per community of the user in the VOLUME_DAYS before `at`: index or SQL, as the sources."""
    since = at - timedelta(days=fx.VOLUME_DAYS)
    got = (
        mem.counts(comms, since.timestamp(), at.timestamp())
        if mem is not None
        else qy.community_volume(conn, comms, since, at)
    )
    return {c: float(n) for c, n in got.items()}


def _decayed(value: float, at: float | None, now: float, half_life_days: float) -> float:
    return value * decay_factor(now - at, half_life_days) if at is not None else 0.0


def _affinity(conn: qy.Conn, user_id: str) -> tuple[dict[str, dict[str, float]], dict[str, dict[int, float]]]:
    """The user's affinities keyed by name and by hashtext code (how the index stores keys)."""
    by_key: dict[str, dict[str, float]] = {}
    by_code: dict[str, dict[int, float]] = {}
    for dim, key, w, code in conn.execute(
        "SELECT dim, key, weight, COALESCE(hashtext(key), 0) FROM user_affinity WHERE user_id = %s",
        (user_id,),
    ).fetchall():
        by_key.setdefault(dim, {})[key] = float(w)
        by_code.setdefault(dim, {})[int(code)] = float(w)
    return by_key, by_code
