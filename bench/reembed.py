"""Re-embedding benchmark (issue 4 item 2): what a text-model switch costs.

Loads N posts (real petition titles, random 384-d starting vectors standing in for the previous
model's), U users with E read events each, then runs the re-embedding to a real model and reports:
staging throughput (posts encoded and committed per second, i.e. the encoder's rate plus the
staging writes), the swap transaction's duration (post and image writers wait that long; readers
don't), and the sizes of the posts table and its HNSW index before and after (the swap rewrites
every row).

    python -m bench.reembed [--posts 2000] [--users 200] [--events 20] [--model e5-small]
                            [--batch-size 64] [--models-dir data/models]

The model is looked up in --models-dir (linked into a temporary data dir; nothing is converted).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench._util import emit
from hanseek.config import Settings
from hanseek.encoders.model_registry import register_dir
from hanseek.encoders.reembed import run
from hanseek.encoders.registry import load_text_encoder
from hanseek.feed.models import EventIn, PostIn
from hanseek.feed.service import FeedService
from hanseek.feed.settings import FeedSettings
from hanseek.store.db import Database

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def log(msg: str) -> None:
    print(f"[bench.reembed] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def titles(shared: Path, n: int) -> list[tuple[str, str | None]]:
    from hanseek.feed.evalsets.sources import petitions_titles

    rows = petitions_titles(shared / "petitions_titles" / "petition_data.csv")
    if len(rows) < n:
        raise SystemExit(f"only {len(rows)} petition titles available, asked for {n} posts")
    return [(p.title, p.category) for p in rows[:n]]


def sizes(db: Database) -> dict[str, Any]:
    with db.connection() as conn:
        row = conn.execute(
            "SELECT pg_total_relation_size('posts'), pg_relation_size('posts_embedding_hnsw_idx')"
        ).fetchone()
    assert row is not None
    return {"posts_total_mb": round(row[0] / 2**20, 1), "hnsw_mb": round(row[1] / 2**20, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=2000)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--events", type=int, default=20, help="read events per user")
    ap.add_argument("--model", default="e5-small", help="target model (a directory under --models-dir)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--models-dir", type=Path, default=Path("data/models"))
    ap.add_argument("--shared-data", type=Path, default=Path("../shared/data"))
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="hanseek-bench-reembed-"))
    settings = Settings(data_dir=root, database_url=None, pool_min_size=1, pool_max_size=4)
    settings.ensure_dirs()
    src = (args.models_dir / args.model).resolve()
    if not (src / "config.json").is_file():
        raise SystemExit(f"no model at {src}")
    (settings.models_dir / args.model).symlink_to(src, target_is_directory=True)

    rng = np.random.default_rng(0)
    db = Database.open(settings)
    result: dict[str, Any] = {
        "bench": "reembed",
        "model": args.model,
        "posts": args.posts,
        "users": args.users,
        "events": args.users * args.events,
        "batch_size": args.batch_size,
        "backend": settings.text_backend,
    }
    try:
        db.migrate()
        register_dir(db, args.model, settings.models_dir / args.model)
        fs = FeedSettings(memory_index=False)
        svc = FeedService(db, settings=fs, follow=False)
        vecs = rng.standard_normal((args.posts, 384)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        posts = [
            PostIn(
                id=f"p{i}",
                community=f"c{i % 20}",
                author=f"a{i % 300}",
                title=title,
                category=category,
                created_at=NOW - timedelta(minutes=7 * i),
                embedding=vecs[i].tolist(),
            )
            for i, (title, category) in enumerate(titles(args.shared_data, args.posts))
        ]
        log(f"loading {args.posts} posts, {args.users} users x {args.events} events")
        svc.bulk_insert_posts(posts, vecs)
        for u in range(args.users):
            svc.set_memberships(f"u{u}", [f"c{c}" for c in rng.choice(20, 3, replace=False)])
            picks = rng.choice(args.posts, args.events, replace=False)
            svc.record_events(
                [
                    EventIn(user_id=f"u{u}", post_id=f"p{p}", kind="read", at=NOW + timedelta(seconds=j))
                    for j, p in enumerate(picks)
                ]
            )
        result["before"] = sizes(db)
        t = time.perf_counter()
        encoder = load_text_encoder(settings, args.model)
        result["model_load_s"] = round(time.perf_counter() - t, 2)
        log(f"re-embedding with {args.model}")
        t_cpu = time.process_time()
        res = run(db, settings, args.model, encoder=encoder, batch_size=args.batch_size, feed_settings=fs)
        cpu = time.process_time() - t_cpu
        stage_s = res.seconds - res.swap_seconds
        result["run"] = {
            "seconds": res.seconds,
            "staging_seconds": round(stage_s, 2),
            "staging_posts_per_s": round(res.posts_encoded / stage_s, 1) if stage_s > 0 else None,
            "swap_seconds": res.swap_seconds,
            "swap_phases_seconds": res.swap_phases,
            "posts_swapped": res.posts_swapped,
            "profiles_recomputed": res.profiles,
            "process_cpu_seconds": round(cpu, 1),
            # robust to other jobs on the cores (the swap's share of it runs in PostgreSQL, not here)
            "posts_per_process_cpu_s": round(res.posts_encoded / cpu, 1) if cpu > 0 else None,
        }
        result["after"] = sizes(db)
    finally:
        db.close()  # the last handle: stops the embedded server
        shutil.rmtree(root, ignore_errors=True)
    emit(result)


if __name__ == "__main__":
    main()
