"""The feed's demo data: 200 real petitions (6 boards, Jun–Jul 2019) and simulated readers.

`load_demo` encodes the posts at load time and shifts every date by the same offset so the newest
post is "now": the 7/30-day windows then show something whenever the demo is loaded. The files are
made by `python -m hanseek.feed.demo build ../shared/data` (see ATTRIBUTION.md).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hanseek.feed.models import EventIn, PostIn

if TYPE_CHECKING:
    from hanseek.config import Settings
    from hanseek.encoders.base import TextEncoder
    from hanseek.store.db import Database

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"
POSTS = DEMO_DIR / "feed_posts.jsonl"
EVENTS = DEMO_DIR / "feed_events.jsonl"
MEMBERS = DEMO_DIR / "feed_memberships.jsonl"
PREFIX = "demo-"
FEATURE = "feed"  # its row in demo_loads
BOARDS = ("육아/교육", "교통/건축/국토", "보건복지", "인권/성평등", "안전/환경", "정치개혁")
USERS = ("minji", "seojun", "haeun", "doyun", "jiwoo", "yerin", "hajun", "soyeon", "eunwoo", "newbie")


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_demo(db: Database, settings: Settings, encoder: TextEncoder) -> dict[str, int]:
    """Load the demo, or finish a load that was interrupted; returns what this call added (all zeros
    when the demo was already complete).

    The load takes several transactions (posts in batches, each user's memberships, then the events
    in one), so a process killed half-way left some of it; the old test "any demo post exists" then
    skipped the rest for good. Complete means the events are in: they are written last and all at
    once. Otherwise every step runs again and adds only what is missing: posts by id (only the
    missing ones are encoded), memberships replaced, events by their `demo-N` keys."""
    from hanseek.feed.service import FeedService
    from hanseek.feed.settings import FeedSettings

    posts = _read(POSTS)
    events = _read(EVENTS)
    members = _read(MEMBERS)
    keys = [f"{PREFIX}{i}" for i in range(len(events))]
    with db.connection() as conn:
        # Recorded once its events are in (`demo_loads`): deleting every demo post takes their
        # events along, and until session 18 the next start then loaded the whole demo again.
        # Any one event: a load that finished before the record existed.
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM demo_loads WHERE feature = %s)"
            " OR EXISTS (SELECT 1 FROM events WHERE idempotency_key = ANY(%s))",
            (FEATURE, keys),
        ).fetchone()
    if row and row[0]:
        _mark_loaded(db)
        return {"posts": 0, "users": 0, "events": 0}
    with db.connection() as conn:
        stored = dict(
            conn.execute(
                "SELECT id, created_at FROM posts WHERE id = ANY(%s)", ([p["id"] for p in posts],)
            ).fetchall()
        )
    if stored:
        # The shift of the interrupted load: the posts it stored and the rest must share their dates.
        some = next(p for p in posts if p["id"] in stored)
        shift = stored[some["id"]] - datetime.fromisoformat(some["created_at"])
    else:
        newest = max(datetime.fromisoformat(p["created_at"]) for p in posts)
        shift = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - newest

    def moved(ts: str) -> datetime:
        return datetime.fromisoformat(ts) + shift

    svc = FeedService(
        db,
        dim=settings.embed_dim,
        settings=FeedSettings(memory_index=False, warm_cache_days=0),
        encoder=lambda: encoder,
    )
    missing = [
        PostIn.model_validate(p | {"created_at": moved(p["created_at"])})
        for p in posts
        if p["id"] not in stored
    ]
    for start in range(0, len(missing), 64):
        svc.ingest_posts(missing[start : start + 64])
    for m in members:
        svc.set_memberships(m["user_id"], m["communities"], replace=True)
    result = svc.record_events(
        [
            EventIn.model_validate(e | {"at": moved(e["at"]), "id": key})
            for key, e in zip(keys, events, strict=True)
        ]
    )
    _mark_loaded(db)
    return {"posts": len(missing), "users": len(members), "events": result.accepted}


def _mark_loaded(db: Database) -> None:
    with db.connection() as conn:
        conn.execute("INSERT INTO demo_loads (feature) VALUES (%s) ON CONFLICT DO NOTHING", (FEATURE,))


def build_files(
    shared_data: Path, out_dir: Path = DEMO_DIR, n_posts: int = 200, seed: int = 7
) -> dict[str, int]:
    """Pick the demo posts from the petitions archive and simulate the demo users' reading."""
    from hanseek.feed.evalsets import reader, sources
    from hanseek.feed.text import post_text

    pool = [
        p
        for p in sources.petitions_archive(shared_data / "petitions_archive", body_chars=200)
        if p.community in BOARDS
        and "2019-06-01" <= datetime.fromtimestamp(p.created_at, UTC).strftime("%F") < "2019-08-01"
    ]
    rng = np.random.default_rng(seed)
    per = n_posts // len(BOARDS)
    chosen: list[Any] = []
    for board in BOARDS:
        mine = [p for p in pool if p.community == board]
        idx = rng.choice(len(mine), size=min(per, len(mine)), replace=False)
        chosen.extend(mine[i] for i in idx)
    chosen.sort(key=lambda p: (p.created_at, p.id))
    comms = sorted({p.community for p in chosen})
    code = {c: i for i, c in enumerate(comms)}
    community = np.array([code[p.community] for p in chosen], dtype=np.int32)
    created = np.array([p.created_at for p in chosen])
    texts = [
        post_text({"title": p.title, "category": p.category, "body": p.body}, ["title", "body"])
        for p in chosen
    ]
    lexical = reader.lexical_vectors(texts, 32, seed)
    model = reader.ReaderModel(
        n_users=len(USERS) - 1,
        communities_min=2,
        communities_max=3,
        sessions_per_week_median=3.0,
        join_until=0.3,
        seed=seed,
    )
    log = reader.simulate(
        community=community,
        created_at=created,
        popularity_final=np.array([p.popularity for p in chosen], float),
        lexical=lexical,
        n_communities=len(comms),
        accrual_days=3.0,
        open_days=30.0,
        model=model,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    with POSTS.open("w", encoding="utf-8") as f:
        for p in chosen:
            row = {
                "id": f"{PREFIX}{p.id}",
                "community": p.community,
                "category": p.category,
                "title": p.title,
                "body": p.body,
                "created_at": datetime.fromtimestamp(p.created_at, UTC).isoformat(),
                "likes": p.popularity,
                "comments": 0,
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    kinds = ("read", "like", "comment")
    with EVENTS.open("w", encoding="utf-8") as f:
        for u, post, kind, at in zip(log.ev_user, log.ev_post, log.ev_kind, log.ev_at, strict=True):
            row = {
                "user_id": f"{PREFIX}{USERS[u]}",
                "post_id": f"{PREFIX}{chosen[post].id}",
                "kind": kinds[kind],
                "at": datetime.fromtimestamp(float(at), UTC).isoformat(),
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    with MEMBERS.open("w", encoding="utf-8") as f:
        for u, cs in enumerate(log.user_communities):
            row = {"user_id": f"{PREFIX}{USERS[u]}", "communities": [comms[c] for c in cs]}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.write(
            json.dumps(
                {"user_id": f"{PREFIX}{USERS[-1]}", "communities": list(BOARDS[:3])}, ensure_ascii=False
            )
            + "\n"
        )
    return {"posts": len(chosen), "events": len(log.ev_user), "users": len(USERS)}


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "build":
        raise SystemExit("usage: python -m hanseek.feed.demo build ../shared/data")
    print(build_files(Path(sys.argv[2])))
