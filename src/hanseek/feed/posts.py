"""Writing posts: encode, upsert in one transaction, delete (taking deleted posts out of profiles)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from hanseek.encoders.base import TextEncoder
from hanseek.feed.errors import InvalidInput
from hanseek.feed.models import IngestResult, PostIn
from hanseek.feed.pgvec import to_np
from hanseek.feed.profile import Profile, decay_rate, remove_event
from hanseek.feed.settings import FeedSettings
from hanseek.feed.text import post_text
from hanseek.store.bulk import copy_rows, upsert_rows

Conn = psycopg.Connection[Any]
POST_COLUMNS = (
    "id",
    "community",
    "author",
    "title",
    "body",
    "category",
    "created_at",
    "likes",
    "comments",
    "embedding",
)


class CreatedConcurrently(psycopg.errors.SerializationFailure):
    """A post this transaction found missing was created meanwhile by a concurrent ingest. Nothing was
    locked or read for it as the existing post it now is, so the whole transaction is run again
    (`FeedService._retried`, a 409 if that keeps failing), as PostgreSQL itself does under repeatable
    read when ON CONFLICT meets a row its snapshot cannot see."""


def post_vectors(
    posts: Sequence[PostIn], encoder: TextEncoder | None, settings: FeedSettings, dim: int
) -> tuple[npt.NDArray[np.float32], int]:
    """Vectors for the posts: the given embedding, else the encoder over the configured fields."""
    out = np.zeros((len(posts), dim), dtype=np.float32)
    todo: list[int] = []
    for i, p in enumerate(posts):
        if p.embedding is not None:
            if len(p.embedding) != dim:
                raise InvalidInput(f"post {p.id}: embedding has {len(p.embedding)} values, expected {dim}")
            # Scale in float64 first: finite values beyond float32's range (or whose squares overflow)
            # would otherwise become inf/NaN; only the direction matters.
            v = np.asarray(p.embedding, dtype=np.float64)
            v = v / np.abs(v).max()
            out[i] = v / np.linalg.norm(v)
        else:
            todo.append(i)
    if todo:
        if encoder is None:
            raise InvalidInput("posts without an embedding need a text encoder")
        texts = [
            post_text(posts[i].model_dump(), settings.text_fields, settings.max_body_chars) for i in todo
        ]
        vecs = encoder.encode(texts, kind="passage")
        if vecs.shape[1] != dim:
            raise InvalidInput(f"the encoder makes {vecs.shape[1]}-d vectors; the feed holds {dim}-d")
        out[todo] = vecs
    return out, len(todo)


def _rows(posts: Sequence[PostIn], vecs: npt.NDArray[np.float32]) -> list[tuple[Any, ...]]:
    return [
        (p.id, p.community, p.author, p.title, p.body, p.category, p.created_at, p.likes, p.comments, vecs[i])
        for i, p in enumerate(posts)
    ]


def ensure_communities(conn: Conn, names: Sequence[str]) -> None:
    conn.execute(
        "INSERT INTO communities (id) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING", (sorted(set(names)),)
    )


def upsert_posts(
    conn: Conn,
    posts: Sequence[PostIn],
    vecs: npt.NDArray[np.float32],
    encoded: int,
    settings: FeedSettings | None = None,
) -> IngestResult:
    """Insert or update the posts (by id) in the caller's transaction. An update that changes a read
    post's vector, community, author or category carries over to what was built from its events:
    the readers' profiles are recomputed and their affinities move to the new keys, so both keep
    equalling what the remaining events give (and a later delete takes out what was put in)."""
    ids = [p.id for p in posts]
    before = {
        r[0]: (to_np(r[1]), (r[2], r[3], r[4]))
        for r in conn.execute(
            # The lock order of every feed writer: posts (by id) -> user_profiles (by user) ->
            # user_affinity. FOR UPDATE conflicts with the KEY SHARE that an event batch takes on its
            # posts before anything else: a batch still open finishes first, and the readers query
            # below then sees its events; a batch arriving now waits, then folds the new vector.
            "SELECT id, embedding, community, author, category FROM posts WHERE id = ANY(%s) "
            "ORDER BY id FOR UPDATE",
            (ids,),
        ).fetchall()
    }
    ensure_communities(conn, [p.community for p in posts])
    fresh = [i for i, p in enumerate(posts) if p.id not in before]
    fresh_ids = {posts[i].id for i in fresh}
    # DO NOTHING, not DO UPDATE: a post that a concurrent ingest created after the lookup above (this
    # insert waits for that one's commit) is neither locked FOR UPDATE here nor searched for readers,
    # and DO UPDATE's NO KEY UPDATE lock does not wait for an event batch's KEY SHARE: a first event
    # that folded the other ingest's vector and author would keep them for good. Such a post is a
    # serialization failure instead, and the rerun finds it above. Inserted before any profile is
    # locked: new posts belong to the posts step of the lock order.
    if fresh and upsert_rows(
        conn,
        "posts",
        POST_COLUMNS,
        _rows([posts[i] for i in fresh], vecs[fresh]),
        key_columns=("id",),
        update_columns=(),
    ) < len(fresh_ids):
        raise CreatedConcurrently("a post of this batch was created by a concurrent request")
    after = {p.id: (vecs[i], (p.community, p.author, p.category)) for i, p in enumerate(posts)}  # last wins
    moved = sorted(pid for pid, (_, keys) in before.items() if after[pid][1] != keys)
    revec = {pid for pid, (vec, _) in before.items() if not np.allclose(vec, after[pid][0], atol=1e-6)}
    readers: list[tuple[str, str, float]] = []
    if moved or revec:
        readers = [
            (str(r[0]), str(r[1]), float(r[2]))
            for r in conn.execute(
                "SELECT user_id, post_id, weight FROM events WHERE post_id = ANY(%s) ORDER BY user_id",
                (sorted(set(moved) | revec),),
            ).fetchall()
        ]
    from hanseek.feed.events import update_affinity

    # Every reader's profile before any affinity row (an event batch holds them in that order);
    # also those whose profile stays: the profile lock is what serialises each user's affinities.
    if readers:
        load_profiles_for_update(conn, sorted({u for u, _, _ in readers}))
    moved_set = set(moved)
    shifted = [(u, pid, w) for u, pid, w in readers if pid in moved_set]
    update_affinity(conn, [(u, pid, -w) for u, pid, w in shifted])  # under the old keys
    if stored := [i for i, p in enumerate(posts) if p.id in before]:
        rows = _rows([posts[i] for i in stored], vecs[stored])
        upsert_rows(conn, "posts", POST_COLUMNS, rows, key_columns=("id",))
    update_affinity(conn, shifted)  # under the new ones
    users = sorted({u for u, pid, _ in readers if pid in revec})
    if users:
        from hanseek.feed.events import recompute_profile

        # Under the profile locks: every event of these users is committed or waits behind them.
        cfg = settings or FeedSettings()
        save_profiles(conn, {u: recompute_profile(conn, u, cfg) for u in users}, cfg.decay_half_life_days)
    return IngestResult(inserted=len(fresh_ids), updated=len(set(ids) - fresh_ids), encoded=encoded)


def bulk_insert_posts(conn: Conn, posts: Sequence[PostIn], vecs: npt.NDArray[np.float32]) -> int:
    """Append new posts with one binary COPY (no upsert: ids must be new). For large loads."""
    ensure_communities(conn, [p.community for p in posts])
    return copy_rows(conn, "posts", POST_COLUMNS, _rows(posts, vecs))


def delete_posts(conn: Conn, ids: Sequence[str], settings: FeedSettings) -> list[str]:
    """Delete posts; first take their events back out of the users' profiles, so a profile always
    equals the weighted mean over the events that remain. Returns the ids that existed."""
    found = [
        r[0]
        for r in conn.execute(
            # Posts -> profiles -> affinities, as every feed writer (see upsert_posts): FOR UPDATE
            # waits for the event batches holding these posts, so the events read below are all.
            "SELECT id FROM posts WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            (list(ids),),
        ).fetchall()
    ]
    if not found:
        return []
    touched = conn.execute(
        "SELECT e.user_id, e.weight, extract(epoch FROM e.at)::float8, p.embedding "
        "FROM events e JOIN posts p ON p.id = e.post_id WHERE e.post_id = ANY(%s) ORDER BY e.user_id, e.at",
        (found,),
    ).fetchall()
    by_user: dict[str, list[tuple[float, float, npt.NDArray[np.float32]]]] = {}
    for user, w, at, vec in touched:
        by_user.setdefault(user, []).append((float(w), float(at), to_np(vec)))
    stale: list[str] = []
    if by_user:
        profiles = load_profiles_for_update(conn, sorted(by_user))
        # Profiles built under another half-life cannot have events taken out at this one: they are
        # rebuilt from the remaining events once the posts are gone (as the events writer does).
        stale = [
            r[0]
            for r in conn.execute(
                "SELECT user_id FROM user_profiles WHERE user_id = ANY(%s) AND half_life_days <> %s "
                "ORDER BY user_id",
                (sorted(by_user), settings.decay_half_life_days),
            ).fetchall()
        ]
        lam = decay_rate(settings.decay_half_life_days)
        for user, evs in by_user.items():
            if user in stale:
                continue
            prof = profiles[user]
            for w, at, vec in evs:
                prof = remove_event(prof, vec, w, at, lam)
            profiles[user] = prof
        save_profiles(
            conn, {u: p for u, p in profiles.items() if u not in stale}, settings.decay_half_life_days
        )
        from hanseek.feed.events import update_affinity

        weights = conn.execute(
            "SELECT user_id, post_id, weight FROM events WHERE post_id = ANY(%s)", (found,)
        ).fetchall()
        update_affinity(conn, [(u, p, -float(w)) for u, p, w in weights])
    conn.execute("DELETE FROM posts WHERE id = ANY(%s)", (found,))
    if stale:
        from hanseek.feed.events import recompute_profile

        rebuilt = {u: recompute_profile(conn, u, settings) for u in stale}
        save_profiles(conn, rebuilt, settings.decay_half_life_days)
    return found


def load_profiles_for_update(conn: Conn, users: Sequence[str]) -> dict[str, Profile]:
    """Lock and read the profiles of `users` (sorted, so concurrent writers lock in one order)."""
    rows = conn.execute(
        "SELECT user_id, vec_sum, weight, extract(epoch FROM ref_time)::float8, n_events "
        "FROM user_profiles WHERE user_id = ANY(%s) ORDER BY user_id FOR UPDATE",
        (sorted(users),),
    ).fetchall()
    out = {r[0]: Profile(to_np(r[1], np.float64), float(r[2]), float(r[3]), int(r[4])) for r in rows}
    return out


def save_profiles(conn: Conn, profiles: dict[str, Profile], half_life_days: float) -> None:
    rows = []
    for user, p in profiles.items():
        rows.append(
            (
                user,
                p.vec_sum.astype(np.float32),
                p.weight,
                datetime.fromtimestamp(p.ref_time, tz=UTC),
                p.n_events,
                half_life_days,
            )
        )
    conn.cursor().executemany(
        "INSERT INTO user_profiles "
        "(user_id, vec_sum, weight, ref_time, n_events, half_life_days, updated_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, now()) ON CONFLICT (user_id) DO UPDATE SET "
        "vec_sum = EXCLUDED.vec_sum, weight = EXCLUDED.weight, ref_time = EXCLUDED.ref_time, "
        "n_events = EXCLUDED.n_events, half_life_days = EXCLUDED.half_life_days, updated_at = now()",
        rows,
    )
