"""Recording interactions: events, the users' incremental profiles and the posts' counters.

A batch is one transaction: either every new event, profile change and counter change is stored,
or none. Events carry an idempotency key; a retried batch inserts nothing new and changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from hanseek.feed.errors import InvalidInput
from hanseek.feed.models import EventIn, EventsResult
from hanseek.feed.pgvec import to_np
from hanseek.feed.posts import ensure_communities, load_profiles_for_update, save_profiles
from hanseek.feed.profile import Profile, add_event, decay_rate, recompute
from hanseek.feed.ranker.features import VOLUME_DAYS, ReadExposure, ReadPrefs
from hanseek.feed.replay import TREND_HALF_LIVES_DAYS
from hanseek.feed.scoring import decay_factor
from hanseek.feed.settings import FeedSettings

Conn = psycopg.Connection[Any]


def _hashed_key(e: EventIn, at: str) -> str:
    raw = "\x1f".join((e.user_id, e.post_id, e.kind, at))
    return "h:" + hashlib.sha1(raw.encode("utf-8")).hexdigest()


def event_key(e: EventIn, at: datetime) -> str:
    if e.id:
        return e.id
    # In UTC: "09:00+09:00" and "00:00Z" are one moment, so a retry written either way is one event.
    return _hashed_key(e, at.astimezone(UTC).isoformat())


def legacy_event_key(e: EventIn) -> str | None:
    """The default key that an event without an id was stored under before session 14 (5a2aeca),
    when it differs from `event_key`'s: `at` hashed with the offset it was written with
    (e.g. +09:00). The offset is not stored, so old keys cannot be rewritten in SQL (nor does
    PostgreSQL have sha1 without pgcrypto): a batch looks them up instead (`_legacy_duplicates`)."""
    written = e.at_as_written
    if e.id or written is None:
        return None
    old = _hashed_key(e, written.isoformat())
    return old if old != event_key(e, written) else None


def _legacy_duplicates(conn: Conn, keyed: dict[str, list[EventIn]]) -> set[str]:
    """The new keys of the batch whose event is already stored under a legacy key (any of the ways
    the batch wrote it), which a re-sent batch from before the upgrade would otherwise count again."""
    legacy: dict[str, str] = {}
    for key, written in keyed.items():
        for e in written:
            if (old := legacy_event_key(e)) is not None:
                legacy.setdefault(old, key)
    if not legacy:
        return set()
    found = conn.execute(
        "SELECT idempotency_key FROM events WHERE idempotency_key = ANY(%s)", (sorted(legacy),)
    ).fetchall()
    return {legacy[r[0]] for r in found}


def ensure_users(conn: Conn, users: Sequence[str]) -> int:
    rows = conn.execute(
        "INSERT INTO users (id) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING RETURNING id",
        (sorted(set(users)),),
    ).fetchall()
    return len(rows)


def record_events(
    conn: Conn, events: Sequence[EventIn], settings: FeedSettings, now: datetime | None = None
) -> EventsResult:
    now = now or datetime.now(UTC)
    keyed: dict[str, tuple[EventIn, datetime]] = {}
    written: dict[str, list[EventIn]] = {}
    for e in events:
        at = e.at or now
        key = event_key(e, at)
        keyed.setdefault(key, (e, at))
        written.setdefault(key, []).append(e)
    post_ids = sorted({e.post_id for e, _ in keyed.values()})
    # Lock order of every feed writer: posts (by id) -> user_profiles (by user) -> user_affinity.
    # KEY SHARE, as the events' foreign keys take anyway, but first: a post update or delete (FOR
    # UPDATE) waits for this batch and then sees its events, or this batch waits for it and then
    # folds the post's new vector and keys. Reading them unlocked let an update commit between the
    # read and this batch's commit without seeing the batch's uncommitted events: the profile and
    # affinities kept the old vector and keys for good. (Not SHARE: that would also conflict with
    # the re-embedding's UPDATE of every post, taken in no particular order.)
    known = {
        r[0]
        for r in conn.execute(
            "SELECT id FROM posts WHERE id = ANY(%s) ORDER BY id FOR KEY SHARE", (post_ids,)
        ).fetchall()
    }
    unknown = [p for p in post_ids if p not in known]
    if unknown:
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise InvalidInput(
            f"unknown post id(s): {', '.join(unknown[:10])}{more}; none of this batch was recorded"
        )
    created = ensure_users(conn, [e.user_id for e, _ in keyed.values()])
    # Sorted: two batches carrying the same keys in different orders would otherwise lock them in
    # opposite orders and deadlock (every other table here is written in sorted order too).
    # Not inserted (counted as duplicates): events stored under their key of before session 14.
    stored = _legacy_duplicates(conn, written)
    keys = sorted(k for k in keyed if k not in stored)
    inserted = conn.execute(
        "INSERT INTO events (user_id, post_id, kind, at, weight, idempotency_key) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::real[], %s::text[]) "
        "ON CONFLICT (idempotency_key) DO NOTHING "
        "RETURNING user_id, post_id, kind, extract(epoch FROM at)::float8, weight",
        (
            [keyed[k][0].user_id for k in keys],
            [keyed[k][0].post_id for k in keys],
            [keyed[k][0].kind for k in keys],
            [keyed[k][1] for k in keys],
            [settings.event_weight(keyed[k][0].kind) for k in keys],
            keys,
        ),
    ).fetchall()
    if inserted:
        _fold_into_profiles(conn, inserted, settings)
        _read_prefs(conn, inserted)  # before the batch's own counts move, as the replay does
        _read_exposure(conn, inserted)
        _count_on_posts(conn, inserted)
        update_affinity(conn, [(r[0], r[1], float(r[4])) for r in inserted])
    return EventsResult(accepted=len(inserted), duplicates=len(events) - len(inserted), users_created=created)


def _fold_into_profiles(conn: Conn, inserted: list[tuple[Any, ...]], settings: FeedSettings) -> None:
    users = sorted({r[0] for r in inserted})
    # Create missing rows first: a concurrent batch for the same new user then waits on this row
    # instead of both inserting and the second overwriting the first's sum.
    conn.execute(
        "INSERT INTO user_profiles (user_id, vec_sum, weight, ref_time, n_events, half_life_days) "
        "SELECT u, array_fill(0::real, ARRAY[384])::vector, 0, now(), 0, %s FROM unnest(%s::text[]) AS u "
        "ON CONFLICT DO NOTHING",
        (settings.decay_half_life_days, users),
    )
    profiles = load_profiles_for_update(conn, users)
    # After the lock: a writer that held it may have rebuilt the profile under another half-life.
    stale = {
        r[0]
        for r in conn.execute(
            "SELECT user_id FROM user_profiles WHERE user_id = ANY(%s) AND half_life_days <> %s",
            (users, settings.decay_half_life_days),
        ).fetchall()
    }
    # Also after the lock, not with the posts' lock above: KEY SHARE does not keep the re-embedding
    # (`models use`) from changing a vector, but it rebuilds every profile under this lock, so a
    # vector read now is the one that profile was (or will be) rebuilt with.
    vecs = {
        r[0]: to_np(r[1])
        for r in conn.execute(
            "SELECT id, embedding FROM posts WHERE id = ANY(%s)", (sorted({r[1] for r in inserted}),)
        ).fetchall()
    }
    lam = decay_rate(settings.decay_half_life_days)
    for user, post, _kind, at, weight in sorted(inserted, key=lambda r: (r[0], r[3])):
        if user in stale:
            continue
        profiles[user] = add_event(profiles[user], vecs[post], float(weight), float(at), lam)
    for user in stale:
        # Built under another half-life: rebuild once from the stored events (which include this batch).
        profiles[user] = recompute_profile(conn, user, settings)
    save_profiles(conn, profiles, settings.decay_half_life_days)


def recompute_profile(conn: Conn, user: str, settings: FeedSettings) -> Profile:
    rows = conn.execute(
        "SELECT p.embedding, e.weight, extract(epoch FROM e.at)::float8 FROM events e "
        "JOIN posts p ON p.id = e.post_id WHERE e.user_id = %s ORDER BY e.at, e.id",
        (user,),
    ).fetchall()
    if not rows:
        return Profile.empty(384)
    vecs = np.stack([to_np(r[0], np.float64) for r in rows])
    return recompute(
        vecs,
        [float(r[1]) for r in rows],
        [float(r[2]) for r in rows],
        decay_rate(settings.decay_half_life_days),
    )


def rebuild_profiles(conn: Conn, settings: FeedSettings) -> int:
    """Recompute every user's profile from the stored events and the posts' current vectors, in the
    caller's transaction (profiles locked in one order). Returns the number of users."""
    users = [r[0] for r in conn.execute("SELECT id FROM users ORDER BY id").fetchall()]
    load_profiles_for_update(conn, users)
    profiles = {u: recompute_profile(conn, u, settings) for u in users}
    save_profiles(conn, profiles, settings.decay_half_life_days)
    return len(users)


def _read_prefs(conn: Conn, inserted: list[tuple[Any, ...]]) -> None:
    """Fold the batch's reads into feed_user_prefs: each read's post age and the likes + comments the
    post showed at that moment (stored counts + counted events, plus this batch's earlier ones)."""
    if not any(r[2] == "read" for r in inserted):
        return
    posts = sorted({r[1] for r in inserted})
    info = {
        r[0]: (float(r[1]), float(r[2]))
        for r in conn.execute(
            "SELECT p.id, extract(epoch FROM p.created_at)::float8, "
            "p.likes::float8 + p.comments + COALESCE(s.likes, 0) + COALESCE(s.comments, 0) "
            "FROM posts p LEFT JOIN post_stats s ON s.post_id = p.id WHERE p.id = ANY(%s)",
            (posts,),
        ).fetchall()
    }
    pop = {p: info[p][1] for p in info}
    acc: dict[str, ReadPrefs] = {}
    order = {"read": 0, "like": 1, "comment": 2}
    for user, post, kind, at, _w in sorted(inserted, key=lambda r: (r[3], r[0], order[r[2]])):
        if kind == "read":
            acc.setdefault(user, ReadPrefs()).add(float(at) - info[post][0], pop[post])
        else:
            pop[post] += 1.0
    conn.cursor().executemany(
        "INSERT INTO feed_user_prefs AS f (user_id, reads, sum_log_age, sum_age_h, sum_log_pop) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (user_id) DO UPDATE SET "
        "reads = f.reads + EXCLUDED.reads, sum_log_age = f.sum_log_age + EXCLUDED.sum_log_age, "
        "sum_age_h = f.sum_age_h + EXCLUDED.sum_age_h, sum_log_pop = f.sum_log_pop + EXCLUDED.sum_log_pop",
        [(u, p.n, p.sum_log_age, p.sum_age_h, p.sum_log_pop) for u, p in sorted(acc.items())],
    )


def _read_exposure(conn: Conn, inserted: list[tuple[Any, ...]]) -> None:
    """Fold the batch's reads into feed_user_exposure (ReadExposure per read): the volume of each of
    the user's communities in the VOLUME_DAYS before the read, from one statement for the batch."""
    reads = [(r[0], r[1], float(r[3])) for r in inserted if r[2] == "read"]
    if not reads:
        return
    # Per read: the read post's community, and each of the user's communities with its post count.
    volume: dict[int, tuple[str, str, dict[str, float]]] = {}
    for i, user, read_community, community, n in conn.execute(
        # LATERAL: one index-only range count per (read, community); as a join the planner read
        # every post of the community and filtered by time (370 ms against 5 ms for 10 reads at 1M).
        "SELECT r.i, r.u, rp.community, m.community, c.n "
        "FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) WITH ORDINALITY AS r(u, p, at, i) "
        "JOIN posts rp ON rp.id = r.p JOIN memberships m ON m.user_id = r.u "
        "CROSS JOIN LATERAL (SELECT count(*) AS n FROM posts q WHERE q.community = m.community "
        "AND q.created_at >= r.at - %s AND q.created_at <= r.at) c",
        (
            [u for u, _, _ in reads],
            [p for _, p, _ in reads],
            [datetime.fromtimestamp(at, UTC) for _, _, at in reads],
            timedelta(days=VOLUME_DAYS),  # as serving and the replay count the volumes
        ),
    ).fetchall():
        volume.setdefault(int(i), (user, read_community, {}))[2][community] = float(n)
    acc: dict[str, ReadExposure] = {}
    for user, read_community, counts in volume.values():
        acc.setdefault(user, ReadExposure()).add(read_community, counts)
    rows = sorted(
        (user, k, e.reads.get(k, 0.0), e.exposure.get(k, 0.0))
        for user, e in acc.items()
        for k in e.reads.keys() | e.exposure.keys()
    )  # one lock order for concurrent writers
    conn.cursor().executemany(
        "INSERT INTO feed_user_exposure AS f (user_id, community, reads, exposure) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (user_id, community) DO UPDATE SET "
        "reads = f.reads + EXCLUDED.reads, exposure = f.exposure + EXCLUDED.exposure",
        rows,
    )


def _count_on_posts(conn: Conn, inserted: list[tuple[Any, ...]]) -> None:
    posts = sorted({r[1] for r in inserted})
    conn.execute(
        "INSERT INTO post_stats (post_id, rid) SELECT id, rid FROM posts WHERE id = ANY(%s) "
        "ON CONFLICT DO NOTHING",
        (posts,),
    )
    rows = conn.execute(
        "SELECT post_id, reads, likes, comments, trend_1d, trend_7d, extract(epoch FROM trend_at)::float8 "
        "FROM post_stats WHERE post_id = ANY(%s) ORDER BY post_id FOR UPDATE",
        (posts,),
    ).fetchall()
    stats = {r[0]: list(r[1:]) for r in rows}
    h1, h7 = TREND_HALF_LIVES_DAYS
    for _user, post, kind, at, _w in sorted(inserted, key=lambda r: r[3]):
        s = stats[post]
        s[{"read": 0, "like": 1, "comment": 2}[kind]] += 1
        at_prev = s[5]
        if at_prev is None or at >= at_prev:
            dt = 0.0 if at_prev is None else at - at_prev
            s[3] = s[3] * decay_factor(dt, h1) + 1.0
            s[4] = s[4] * decay_factor(dt, h7) + 1.0
            s[5] = at
        else:  # an older event arriving late counts at its decayed weight
            s[3] += decay_factor(at_prev - at, h1)
            s[4] += decay_factor(at_prev - at, h7)
    conn.cursor().executemany(
        "UPDATE post_stats SET reads = %s, likes = %s, comments = %s, trend_1d = %s, trend_7d = %s, "
        "trend_at = to_timestamp(%s) WHERE post_id = %s",
        [(s[0], s[1], s[2], s[3], s[4], s[5], post) for post, s in stats.items()],
    )


def update_affinity(conn: Conn, items: Sequence[tuple[str, str, float]]) -> None:
    """Add (user, post, weight) to the user's per-community/author/category weight sums; a negative
    weight takes an event back out, and a sum it leaves at zero is dropped."""
    if not items:
        return
    rows = conn.execute(
        "SELECT id, community, author, category FROM posts WHERE id = ANY(%s)",
        (sorted({p for _, p, _ in items}),),
    ).fetchall()
    keys = {r[0]: (("community", r[1]), ("author", r[2]), ("category", r[3])) for r in rows}
    acc: dict[tuple[str, str, str], float] = {}
    for user, post, w in items:
        for dim, key in keys.get(post, ()):
            if key is not None:
                acc[(user, dim, key)] = acc.get((user, dim, key), 0.0) + w
    ordered = sorted(acc.items())  # one lock order for concurrent writers
    conn.cursor().executemany(
        "INSERT INTO user_affinity (user_id, dim, key, weight) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (user_id, dim, key) DO UPDATE SET weight = user_affinity.weight + EXCLUDED.weight",
        [(u, d, k, w) for (u, d, k), w in ordered],
    )
    if lowered := sorted({u for (u, _, _), w in ordered if w < 0}):
        conn.execute("DELETE FROM user_affinity WHERE user_id = ANY(%s) AND weight <= 1e-9", (lowered,))


def set_memberships(conn: Conn, user: str, communities: Sequence[str], *, replace: bool) -> int:
    """Add (or with `replace`, set exactly) the user's communities; creates the user if needed."""
    created = ensure_users(conn, [user])
    ensure_communities(conn, communities)
    if replace:
        # One replace of a user's set at a time: two at once each deleted only the rows it could
        # see, so the other's uncommitted ones survived, and the user ended in the union of both
        # sets (until session 18). NO KEY UPDATE: event and membership inserts (KEY SHARE through
        # their foreign keys) do not wait for it.
        conn.execute("SELECT 1 FROM users WHERE id = %s FOR NO KEY UPDATE", (user,))
        conn.execute(
            "DELETE FROM memberships WHERE user_id = %s AND NOT (community = ANY(%s))",
            (user, list(communities)),
        )
    conn.execute(
        "INSERT INTO memberships (user_id, community) SELECT %s, unnest(%s::text[]) ON CONFLICT DO NOTHING",
        (user, sorted(set(communities))),
    )
    return created
