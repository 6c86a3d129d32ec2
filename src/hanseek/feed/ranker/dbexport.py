"""The service's own posts and events as an evaluation set, to train the re-ranker on real traffic.

Popularity: the database keeps only today's like/comment counts on a post, not their history, so the
exported set shows each post's stored counts from the moment it was posted (plus the events' own
likes and comments as the replay reaches them). That leaks a little of the future into the popularity
features; the events-based trend features do not have this problem. Stated, not hidden.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from hanseek.feed.evalsets.model import KINDS, EvalSet
from hanseek.feed.pgvec import to_np

if TYPE_CHECKING:
    from hanseek.store.db import Database


def export(
    db: Database, *, train_end: float = 0.7, val_end: float = 0.85
) -> tuple[EvalSet, npt.NDArray[np.float32]]:
    with db.connection() as conn:
        posts = conn.execute(
            "SELECT id, title, community, extract(epoch FROM created_at)::float8, likes::int8 + comments, "
            "embedding "
            # (created_at, rid): the in-process index's order, so a post's index here sorts as its
            # rid does, and the replay's tie order (offline.build) is the service's.
            "FROM posts ORDER BY created_at, rid"
        ).fetchall()
        events = conn.execute(
            "SELECT user_id, post_id, kind, extract(epoch FROM at)::float8 FROM events ORDER BY at, id"
        ).fetchall()
        members = conn.execute("SELECT user_id, community FROM memberships").fetchall()
    if not events:
        raise ValueError("no events recorded yet: nothing to train on")
    communities = sorted({p[2] for p in posts})
    code = {c: i for i, c in enumerate(communities)}
    pidx = {p[0]: i for i, p in enumerate(posts)}
    users = sorted({e[0] for e in events} | {m[0] for m in members})
    uidx = {u: i for i, u in enumerate(users)}
    user_comms: list[set[int]] = [set() for _ in users]
    for u, c in members:
        if c in code:
            user_comms[uidx[u]].add(code[c])
    # A session: a user's events less than 30 minutes apart.
    ev_session = np.zeros(len(events), np.int32)
    last: dict[str, tuple[float, int]] = {}
    n_sessions = 0
    for i, (u, _, _, at) in enumerate(events):
        prev = last.get(u)
        if prev is None or at - prev[0] > 1800:
            prev = (at, n_sessions)
            n_sessions += 1
        last[u] = (at, prev[1])
        ev_session[i] = prev[1]
    t = np.array([e[3] for e in events])
    t0, t1 = float(t.min()), float(t.max())
    es = EvalSet(
        name="database",
        post_ids=[p[0] for p in posts],
        titles=[p[1] for p in posts],
        texts=[""] * len(posts),
        communities=communities,
        post_community=np.array([code[p[2]] for p in posts], np.int32),
        created_at=np.array([p[3] for p in posts]),
        popularity_final=np.array([p[4] for p in posts], np.float64),
        user_communities=[np.array(sorted(c), np.int32) for c in user_comms],
        ev_user=np.array([uidx[e[0]] for e in events], np.int32),
        ev_post=np.array([pidx[e[1]] for e in events], np.int32),
        ev_kind=np.array([KINDS.index(e[2]) for e in events], np.int8),
        ev_at=t,
        ev_session=ev_session,
        t_train_end=t0 + train_end * (t1 - t0),
        t_val_end=t0 + val_end * (t1 - t0),
        accrual_days=1e-6,  # counts visible from the start (see the module docstring)
        meta={"description": "exported from the service database"},
    )
    vecs = np.stack([to_np(p[5]) for p in posts]).astype(np.float32)
    return es, vecs
