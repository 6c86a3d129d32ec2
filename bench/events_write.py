"""What keeping the read exposure (re-ranker feature `exposure_lift`, migration 0014) costs the
events writer.

Each read now also counts, in one statement per batch, the posts of the reader's communities in the
30 days before it (`events._read_exposure`). Measured on a feed benchmark database (bench.feed's
shape: 200 communities over one year), interleaved: batches of reads recorded as the service does,
against the same kind of batch with that step left out. Also times migration 0014 (its backfill
over the reads already stored) when the database does not have it yet.

    python -m bench.events_write [--keep DIR] [--posts 100000] [--batches 30] [--batch 50]

`--keep DIR`: a database kept by `python -m bench.feed --keep DIR` (its users read here, as new
users `ew…` in the same communities; the batches' reads stay in it). Without it, a fresh database
with `--posts` synthetic posts. Prints JSON: medians in milliseconds per batch.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench._util import close_db, emit
from bench.feed import COMMUNITIES, NOW, WINDOW, Data, load_posts, log
from hanseek.config import Settings
from hanseek.feed import events as ev
from hanseek.feed.models import EventIn
from hanseek.feed.service import FeedService
from hanseek.feed.settings import FeedSettings
from hanseek.store.db import Database


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", type=Path, default=None, help="a database kept by bench.feed --keep")
    ap.add_argument("--posts", type=int, default=100_000, help="posts of a fresh database")
    ap.add_argument("--batches", type=int, default=30, help="timed batches per variant")
    ap.add_argument("--batch", type=int, default=50, help="reads per batch (5 per user)")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="hanseek-bench-events-"))
    settings = Settings(data_dir=root, database_url=None, pool_min_size=1, pool_max_size=4)
    settings.ensure_dirs()
    db = Database.open(settings)
    out: dict[str, Any] = {"bench": "events_write", "batch_reads": args.batch, "batches": args.batches}
    try:
        t = time.perf_counter()
        out["migrations_applied"] = db.migrate()
        out["migrate_seconds"] = round(time.perf_counter() - t, 2)
        with db.connection() as conn:
            n_posts = conn.execute("SELECT count(*) FROM posts").fetchone()
        if not n_posts or n_posts[0] == 0:  # outside that transaction: the load drops an index
            log(f"loading {args.posts:,} synthetic posts")
            data = Data(args.posts, "clustered")
            data.materialize()
            load_posts(db, data)
        with db.connection() as conn:
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM posts), (SELECT count(*) FROM events WHERE kind = 'read'), "
                "(SELECT count(*) FROM feed_user_exposure)"
            ).fetchone()
        assert counts is not None
        out["posts"], out["stored_reads"], out["exposure_rows"] = (int(c) for c in counts)
        svc = FeedService(db, settings=FeedSettings(memory_index=False), follow=False)
        rng = np.random.default_rng(11)
        with db.connection() as conn:
            recent = conn.execute(
                "SELECT id, community FROM posts WHERE created_at >= %s AND created_at <= %s",
                (NOW - timedelta(days=WINDOW), NOW),
            ).fetchall()
        by_comm: dict[str, list[str]] = {}
        for pid, comm in recent:
            by_comm.setdefault(comm, []).append(pid)
        names = sorted(by_comm)

        def batch(tag: str) -> list[EventIn]:
            events: list[EventIn] = []
            for u in range(args.batch // 5):
                user = f"ew{tag}-{u}"
                picked = rng.choice(len(names), size=int(rng.integers(3, 11)), replace=False)
                comms = [names[i] for i in picked]
                svc.set_memberships(user, comms)
                for j in range(5):
                    pool = by_comm[comms[int(rng.integers(len(comms)))]]
                    post = pool[int(rng.integers(len(pool)))]
                    at = NOW - timedelta(hours=j)
                    events.append(EventIn(user_id=user, post_id=post, kind="read", at=at))
            return events

        real = ev._read_exposure
        with_exposure: list[float] = []
        without: list[float] = []
        svc.record_events(batch("warm"))
        run = int(time.time())
        for i in range(args.batches):  # interleaved, so both variants see the same machine state
            for variant, times in ((True, with_exposure), (False, without)):
                events = batch(f"{run}-{i}-{int(variant)}")
                ev._read_exposure = real if variant else (lambda conn, inserted: None)
                try:
                    t = time.perf_counter()
                    svc.record_events(events)
                    times.append(time.perf_counter() - t)
                finally:
                    ev._read_exposure = real
        svc.close()

        def ms(xs: list[float]) -> float:
            return round(float(np.median(xs)) * 1e3, 2)

        out |= {
            "communities": COMMUNITIES,
            "batch_with_exposure_p50_ms": ms(with_exposure),
            "batch_without_exposure_p50_ms": ms(without),
            "exposure_step_p50_ms": round(ms(with_exposure) - ms(without), 2),
            "ratio_with_over_without": round(float(np.median(with_exposure) / np.median(without)), 3),
            "reads_per_s_with_exposure": round(args.batch / float(np.median(with_exposure)), 1),
        }
    finally:
        close_db(db, settings, discard=args.keep is None)
    emit(out)


if __name__ == "__main__":
    main()
