"""Event keys (feed.events): default keys, and keys stored before session 14 recognised as duplicates."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from hanseek.feed.models import EventIn
from hanseek.feed.service import FeedService

from .conftest import NOW, make_posts


def _key_before_session_18(user: str, post: str, kind: str, written: str) -> str:
    """The default key of 937f393 and before: `at` hashed with the offset it was written with."""
    at = datetime.fromisoformat(written)
    raw = "\x1f".join((user, post, kind, at.isoformat()))
    return "h:" + hashlib.sha1(raw.encode("utf-8")).hexdigest()


def test_events_stored_under_the_old_default_key_are_duplicates_when_sent_again(
    feed: FeedService, tag: str
) -> None:
    """5 id-less reads written at +09:00, stored before the key hashed `at` in UTC, sent again (with
    one of them twice) after the upgrade: all 6 are duplicates, none is counted twice."""
    posts, _ = make_posts(tag, 5, 1, 5, seed=18)
    feed.ingest_posts(posts)
    user = f"{tag}-u"
    feed.set_memberships(user, [f"{tag}-c0"])
    written = [f"2024-05-0{i + 1}T09:30:00+09:00" for i in range(5)]
    with feed.db.connection() as conn:
        for p, w in zip(posts, written, strict=True):
            conn.execute(
                "INSERT INTO events (user_id, post_id, kind, at, weight, idempotency_key) "
                "VALUES (%s, %s, 'read', %s, 1, %s)",
                (user, p.id, datetime.fromisoformat(w), _key_before_session_18(user, p.id, "read", w)),
            )
    again = [
        EventIn.model_validate({"user_id": user, "post_id": p.id, "kind": "read", "at": w})
        for p, w in zip(posts, written, strict=True)
    ]
    got = feed.record_events([*again, again[0]])
    assert (got.accepted, got.duplicates) == (0, 6)
    # Written in UTC first and at +09:00 later in one batch: one event, already stored. (Written only
    # in UTC it cannot be matched: the offset the old key hashed is not stored.)
    utc = [
        EventIn(user_id=user, post_id=p.id, kind="read", at=datetime.fromisoformat(w).astimezone(UTC))
        for p, w in zip(posts, written, strict=True)
    ]
    got = feed.record_events([utc[0], again[0]])
    assert (got.accepted, got.duplicates) == (0, 2)
    assert feed.get_user(user).events == 5
    # A new event still counts, and keys are the new formula's (UTC).
    new = EventIn(user_id=user, post_id=posts[0].id, kind="like", at="2024-05-09T09:30:00+09:00")  # type: ignore[arg-type]
    assert feed.record_events([new]).accepted == 1
    assert feed.record_events([new.model_copy()]).duplicates == 1
    with feed.db.connection() as conn:
        keys = {r[0] for r in conn.execute("SELECT idempotency_key FROM events WHERE user_id = %s", (user,))}
    assert _key_before_session_18(user, posts[0].id, "like", "2024-05-09T00:30:00+00:00") in keys
    assert _key_before_session_18(user, posts[0].id, "like", "2024-05-09T09:30:00+09:00") not in keys


def test_events_with_explicit_ids_keep_them(feed: FeedService, tag: str) -> None:
    posts, _ = make_posts(tag, 2, 1, 5, seed=19)
    feed.ingest_posts(posts)
    user = f"{tag}-u"
    w = "2024-05-01T09:30:00+09:00"
    with feed.db.connection() as conn:
        feed.set_memberships(user, [f"{tag}-c0"])
        conn.execute(
            "INSERT INTO events (user_id, post_id, kind, at, weight, idempotency_key) "
            "VALUES (%s, %s, 'read', %s, 1, %s)",
            (
                user,
                posts[0].id,
                datetime.fromisoformat(w),
                _key_before_session_18(user, posts[0].id, "read", w),
            ),
        )
    # An explicit id is its own key: not looked up under the old default key of its fields.
    first = {"id": f"{tag}-e1", "user_id": user, "post_id": posts[0].id, "kind": "read", "at": w}
    got = feed.record_events([EventIn.model_validate(first)])
    assert got.accepted == 1
    other = EventIn.model_validate(first | {"post_id": posts[1].id})
    assert feed.record_events([other]).duplicates == 1
    with feed.db.connection() as conn:
        keys = sorted(
            r[0] for r in conn.execute("SELECT idempotency_key FROM events WHERE user_id = %s", (user,))
        )
    assert keys == sorted([f"{tag}-e1", _key_before_session_18(user, posts[0].id, "read", w)])


def test_the_offset_an_event_was_written_with_is_kept_beside_its_utc_time() -> None:
    e = EventIn(user_id="u", post_id="p", at="2024-05-01T09:30:00+09:00")  # type: ignore[arg-type]
    assert e.at == datetime(2024, 5, 1, 0, 30, tzinfo=UTC) and e.at.tzinfo is UTC
    assert e.at_as_written is not None and e.at_as_written.isoformat() == "2024-05-01T09:30:00+09:00"
    assert e.model_copy(update={"at": NOW}).at_as_written is None
    assert EventIn(user_id="u", post_id="p").at_as_written is None
    naive = EventIn(user_id="u", post_id="p", at=datetime(2024, 5, 1))
    assert naive.at == datetime(2024, 5, 1, tzinfo=UTC) and naive.at_as_written == naive.at
