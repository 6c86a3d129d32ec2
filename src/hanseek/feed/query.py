"""Reading the feed from PostgreSQL: users, candidates via SQL (exact / HNSW), baselines, details."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from hanseek.feed.errors import NotFoundError
from hanseek.feed.pgvec import to_np
from hanseek.feed.profile import Profile
from hanseek.feed.ranker.features import ReadExposure, ReadPrefs
from hanseek.store import vectors as sv

Conn = psycopg.Connection[Any]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Interaction:
    rid: int
    id: str
    title: str
    community: str
    created_at: float


@dataclass(frozen=True)
class UserContext:
    id: str
    communities: list[str]
    profile: Profile
    created_at: datetime
    # Filled by load_context (one round trip for everything a feed request needs about the user):
    read_rids: npt.NDArray[np.int64] | None = None  # interacted posts inside the feed's filter
    recent: list[Interaction] | None = None  # most recently touched posts, newest first
    recent_reads: list[Interaction] | None = None  # the last read events' posts, newest first
    affinity: dict[str, dict[str, float]] | None = None  # dim -> key -> summed event weight
    affinity_codes: dict[str, dict[int, float]] | None = None  # the same keyed by hashtext(key)
    prefs: ReadPrefs | None = None  # running sums over the user's reads (feed_user_prefs)
    exposure: ReadExposure | None = None  # reads and exposure per community (feed_user_exposure)


_USER = """
    SELECT u.id, u.created_at,
      COALESCE((SELECT array_agg(community ORDER BY community) FROM memberships m
                WHERE m.user_id = u.id), '{}'::text[]),
      p.vec_sum, p.weight, extract(epoch FROM p.ref_time)::float8, p.n_events
"""


def _profile(vec: Any, weight: Any, ref: Any, n: Any) -> Profile:
    if vec is None:
        return Profile.empty(0)
    return Profile(to_np(vec, np.float64), float(weight), float(ref), int(n))


def load_user(conn: Conn, user_id: str) -> UserContext:
    row = conn.execute(
        _USER + "FROM users u LEFT JOIN user_profiles p ON p.user_id = u.id WHERE u.id = %s", (user_id,)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"unknown user {user_id!r}")
    _, created, comms, vec, weight, ref, n = row
    return UserContext(user_id, list(comms), _profile(vec, weight, ref, n), created)


# The posts of the user's last `reads` read events, newest first: a post read twice is there twice.
# The ranker's short-term source and features take these, as the replay that trained it does (it
# keeps the reads in log order: likes and comments do not move a post, re-reads repeat it).
_READS = """
    SELECT po.rid, po.id, po.title, po.community, extract(epoch FROM po.created_at)::float8 AS t,
           e.at, e.id AS seq
    FROM (SELECT post_id, at, id FROM events WHERE user_id = %(user)s AND kind = 'read'
          ORDER BY at DESC, id DESC LIMIT %(reads)s) e
    JOIN posts po ON po.id = e.post_id
"""
RECENT_READS = 10  # loaded with the context; the ranker's config takes its first few


def load_context(
    conn: Conn, user_id: str, t_from: datetime | None, recent: int, *, affinity: bool = False
) -> UserContext:
    """The user, their profile, the posts they already read where the feed looks, their most recent
    interactions and reads, and (optionally) affinities, in one statement: under load every round
    trip costs."""
    row = conn.execute(
        _USER
        + """,
      ARRAY(SELECT DISTINCT po.rid FROM events e JOIN posts po ON po.id = e.post_id
            WHERE e.user_id = u.id
              AND po.community IN (SELECT m2.community FROM memberships m2 WHERE m2.user_id = u.id)
              AND (%(t_from)s::timestamptz IS NULL OR po.created_at >= %(t_from)s)),
      (SELECT json_agg(json_build_array(r.rid, r.id, r.title, r.community, r.t)
                       ORDER BY r.last DESC, r.seq DESC)
       FROM (SELECT po.rid, po.id, po.title, po.community,
                    extract(epoch FROM po.created_at)::float8 AS t, x.last, x.seq
             FROM (SELECT post_id, max(at) AS last, max(id) AS seq FROM events WHERE user_id = u.id
                   GROUP BY post_id ORDER BY last DESC, seq DESC LIMIT %(recent)s) x
             JOIN posts po ON po.id = x.post_id) r),
      (SELECT json_agg(json_build_array(r.rid, r.id, r.title, r.community, r.t)
                       ORDER BY r.at DESC, r.seq DESC)
       FROM ("""
        + _READS  # its %(user)s is the user this statement reads
        + """) r),
      CASE WHEN %(affinity)s THEN
        (SELECT json_agg(json_build_array(a.dim, a.key, a.weight,
                                          COALESCE(hashtext(a.key), 0)))
         FROM user_affinity a WHERE a.user_id = u.id)
      END,
      CASE WHEN %(affinity)s THEN
        (SELECT json_build_array(f.reads, f.sum_log_age, f.sum_age_h, f.sum_log_pop)
         FROM feed_user_prefs f WHERE f.user_id = u.id)
      END,
      CASE WHEN %(affinity)s THEN
        (SELECT json_agg(json_build_array(x.community, x.reads, x.exposure))
         FROM feed_user_exposure x WHERE x.user_id = u.id)
      END
    FROM users u LEFT JOIN user_profiles p ON p.user_id = u.id WHERE u.id = %(user)s""",
        {"user": user_id, "t_from": t_from, "recent": recent, "reads": RECENT_READS, "affinity": affinity},
    ).fetchone()
    if row is None:
        raise NotFoundError(f"unknown user {user_id!r}")
    _, created, comms, vec, weight, ref, n, read, rec, rec_reads, aff, prefs, exposure = row
    aff_map: dict[str, dict[str, float]] = {}
    aff_codes: dict[str, dict[int, float]] = {}
    for dim, key, w, code in aff or []:
        aff_map.setdefault(dim, {})[key] = float(w)
        aff_codes.setdefault(dim, {})[int(code)] = float(w)
    return UserContext(
        user_id,
        list(comms),
        _profile(vec, weight, ref, n),
        created,
        read_rids=np.array(read or [], dtype=np.int64),
        recent=[Interaction(int(r[0]), r[1], r[2], r[3], float(r[4])) for r in rec or []],
        recent_reads=[Interaction(int(r[0]), r[1], r[2], r[3], float(r[4])) for r in rec_reads or []],
        affinity=aff_map if affinity else None,
        affinity_codes=aff_codes if affinity else None,
        prefs=_prefs(prefs) if affinity else None,
        exposure=_exposure(exposure) if affinity else None,
    )


def _prefs(row: Any) -> ReadPrefs:
    if not row:
        return ReadPrefs()
    return ReadPrefs(int(row[0]), float(row[1]), float(row[2]), float(row[3]))


def user_prefs(conn: Conn, user_id: str) -> ReadPrefs:
    row = conn.execute(
        "SELECT reads, sum_log_age, sum_age_h, sum_log_pop FROM feed_user_prefs WHERE user_id = %s",
        (user_id,),
    ).fetchone()
    return _prefs(row)


def _exposure(rows: Any) -> ReadExposure:
    out = ReadExposure()
    for community, reads, exposure in rows or []:
        if reads:  # a row may hold only exposure, as ReadExposure keeps it
            out.reads[community] = float(reads)
        out.exposure[community] = float(exposure)
    return out


def user_exposure(conn: Conn, user_id: str) -> ReadExposure:
    rows = conn.execute(
        "SELECT community, reads, exposure FROM feed_user_exposure WHERE user_id = %s", (user_id,)
    ).fetchall()
    return _exposure(rows)


def _not_read(user_id: str | None) -> sql.Composable | None:
    if user_id is None:
        return None
    return sql.SQL("NOT EXISTS (SELECT 1 FROM events e WHERE e.user_id = %s AND e.post_id = posts.id)")


def feed_filters(
    communities: Sequence[str], t_from: datetime | None, t_to: datetime, exclude_user: str | None
) -> sv.Filters:
    f = sv.Filters().any("community", list(communities)).range("created_at", gte=t_from, lte=t_to)
    clause = _not_read(exclude_user)
    if clause is not None:
        f.raw(clause, exclude_user)
    return f


def read_rids(conn: Conn, user_id: str, communities: Sequence[str], t_from: datetime | None) -> I64:
    """rids of the posts the user interacted with, restricted to where the feed looks."""
    rows = conn.execute(
        "SELECT DISTINCT p.rid FROM events e JOIN posts p ON p.id = e.post_id "
        "WHERE e.user_id = %s AND p.community = ANY(%s) AND (%s::timestamptz IS NULL OR p.created_at >= %s)",
        (user_id, list(communities), t_from, t_from),
    ).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64)


def recent_interactions(conn: Conn, user_id: str, limit: int) -> list[Interaction]:
    """The user's most recently touched posts (distinct), newest first: what explains a feed item."""
    rows = conn.execute(
        "SELECT p.rid, p.id, p.title, p.community, extract(epoch FROM p.created_at)::float8 FROM posts p "
        "JOIN (SELECT post_id, max(at) AS last, max(id) AS seq FROM events WHERE user_id = %s "
        "      GROUP BY post_id ORDER BY last DESC, seq DESC LIMIT %s) r ON r.post_id = p.id "
        "ORDER BY r.last DESC, r.seq DESC",
        (user_id, limit),
    ).fetchall()
    return [Interaction(int(r[0]), r[1], r[2], r[3], float(r[4])) for r in rows]


def recent_reads(conn: Conn, user_id: str, limit: int) -> list[Interaction]:
    """The posts of the user's last `limit` read events, newest first (see `_READS`)."""
    rows = conn.execute(
        f"SELECT rid, id, title, community, t FROM ({_READS}) r ORDER BY at DESC, seq DESC",
        {"user": user_id, "reads": limit},
    ).fetchall()
    return [Interaction(int(r[0]), r[1], r[2], r[3], float(r[4])) for r in rows]


def embeddings(conn: Conn, rids: Sequence[int]) -> dict[int, npt.NDArray[np.float32]]:
    rows = conn.execute("SELECT rid, embedding FROM posts WHERE rid = ANY(%s)", (list(rids),)).fetchall()
    return {int(r[0]): to_np(r[1]) for r in rows}


# Equal similarities: newer post first, then the later-ingested one (larger rid), as the in-process
# index orders them (memindex.MemoryIndex.search), so both exact paths give one page.
TIES = ("created_at", "rid")


def sql_exact(conn: Conn, q: npt.NDArray[np.float32], filters: sv.Filters, k: int) -> list[tuple[int, float]]:
    hits = sv.exact_search(conn, "posts", q, k=k, filters=filters, id_column="rid", ties=TIES)
    return [(int(h.id), h.similarity) for h in hits]


def sql_approx(
    conn: Conn, q: npt.NDArray[np.float32], filters: sv.Filters, k: int, ef_search: int, max_scan_tuples: int
) -> list[tuple[int, float]]:
    hits = sv.hnsw_search(
        conn,
        "posts",
        q,
        k=k,
        filters=filters,
        id_column="rid",
        ties=TIES,
        ef_search=ef_search,
        max_scan_tuples=max_scan_tuples,
    )
    return [(int(h.id), h.similarity) for h in hits]


def community_volume(
    conn: Conn, communities: Sequence[str], t_from: datetime, t_to: datetime
) -> dict[str, int]:
    """Posts per community published in [t_from, t_to] (0 for a community with none)."""
    rows = conn.execute(
        "SELECT community, count(*) FROM posts WHERE community = ANY(%s) AND created_at >= %s "
        "AND created_at <= %s GROUP BY community",
        (list(communities), t_from, t_to),
    ).fetchall()
    got = {str(r[0]): int(r[1]) for r in rows}
    return {c: got.get(c, 0) for c in dict.fromkeys(communities)}


def estimate_candidates(conn: Conn, filters: sv.Filters) -> int:
    return sv.estimate_count(conn, "posts", filters)


# float8 before adding: two int4 counts near their 2e9 limit overflow int4 ("integer out of range").
_POP = "(p.likes::float8 + p.comments + COALESCE(s.likes, 0) + COALESCE(s.comments, 0))"
# float8's smallest (subnormal) value is 2^-1074; 2^-x rounds to 0 from x = 1075 on.
_LEAST_EXP2 = 1074


def decay_sql(age_s: str, half_life_days: float) -> str:
    """SQL for scoring.decay_factor: 2^(-age / half-life) of the elapsed seconds `age_s` (an SQL
    expression, used twice), as the in-process paths compute it. PostgreSQL's power() raises "value
    out of range: underflow" where the result rounds to 0 (a post 1075 half-lives old, 8.8 years at
    3 days), which math.exp2 and numpy return: 0 there, and 2^-1074 just before, as they round."""
    x = f"(greatest(({age_s})::float8, 0) / {float(half_life_days) * 86400.0!r})"
    return (
        f"(CASE WHEN {x} < {_LEAST_EXP2 + 1} THEN power(2.0::float8, -least({x}, {_LEAST_EXP2})) ELSE 0 END)"
    )


def baseline(
    conn: Conn,
    kind: str,
    communities: Sequence[str],
    t_from: datetime | None,
    t_to: datetime,
    k: int,
    exclude_user: str | None,
    half_life_days: float = 0.0,
) -> list[tuple[int, float]]:
    """latest (newest first) or popular (likes + comments, optionally decayed by age), same filters."""
    params: list[Any] = [list(communities), t_to]
    where = "p.community = ANY(%s) AND p.created_at <= %s"
    if t_from is not None:
        where += " AND p.created_at >= %s"
        params.append(t_from)
    if exclude_user is not None:
        where += " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.user_id = %s AND e.post_id = p.id)"
        params.append(exclude_user)
    if kind == "latest":
        score = "extract(epoch FROM p.created_at)::float8"
        order = "p.created_at DESC, p.rid DESC"
    elif kind == "popular":
        score = _POP
        if half_life_days > 0:
            score = f"{_POP} * {decay_sql('extract(epoch FROM (%s - p.created_at))', half_life_days)}"
            params[:0] = [t_to, t_to]  # the age appears twice in the decay
        order = "score DESC, p.created_at DESC, p.rid DESC"
    else:
        raise ValueError(f"unknown baseline {kind!r}")
    stmt = (
        f"SELECT p.rid, {score} AS score FROM posts p LEFT JOIN post_stats s ON s.post_id = p.id "
        f"WHERE {where} ORDER BY {order} LIMIT %s"
    )
    params.append(k)
    return [(int(r[0]), float(r[1])) for r in conn.execute(stmt, params).fetchall()]


@dataclass(frozen=True)
class PostRow:
    rid: int
    id: str
    community: str
    author: str | None
    title: str
    snippet: str
    category: str | None
    created_at: datetime
    likes: int
    comments: int
    trend_1d: float = 0.0  # decayed interaction counts at trend_at (see post_stats)
    trend_7d: float = 0.0
    trend_at: float | None = None


def post_rows(conn: Conn, rids: Sequence[int], snippet_chars: int = 160) -> dict[int, PostRow]:
    rows = conn.execute(
        "SELECT p.rid, p.id, p.community, p.author, p.title, left(p.body, %s), p.category, p.created_at, "
        "  p.likes::int8 + COALESCE(s.likes, 0), p.comments::int8 + COALESCE(s.comments, 0), "
        "  COALESCE(s.trend_1d, 0), COALESCE(s.trend_7d, 0), extract(epoch FROM s.trend_at)::float8 "
        "FROM posts p LEFT JOIN post_stats s ON s.post_id = p.id WHERE p.rid = ANY(%s)",
        (snippet_chars, list(rids)),
    ).fetchall()
    return {int(r[0]): PostRow(int(r[0]), *r[1:]) for r in rows}
