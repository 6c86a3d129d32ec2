"""HNSW graph parameters against query difficulty, without filters: recall@20 of pgvector's HNSW on
the first N of bench.feed's synthetic posts, for "random reader" queries (the mean of 20 posts of
unrelated topics: a nearly flat vector) and "focused" ones (the mean of 20 posts from 2 topics).

    python -m bench.hnsw_graph [--posts 200000] [--queries 40] [--data-dir DIR] [--data clustered|real]

`--data real`: the encoder's vectors of real texts (bench/_realvecs.py; at most ~275k) instead, with
k-means clusters as the topics; the two kinds behave very differently under a graph search.

Prints JSON: per (m, ef_construction) the build seconds and recall@20 at ef_search 200 and 1000.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from pgvector.psycopg import register_vector

from bench._util import close_db, emit
from bench.feed import TOPICS, Data
from hanseek.config import Settings
from hanseek.store.db import Database

GRAPHS = ((16, 64), (32, 64), (16, 200))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--data-dir", type=Path, default=None, help="embedded database here (default: temp)")
    ap.add_argument("--data", choices=["clustered", "real"], default="clustered")
    ap.add_argument("--shared-data", type=Path, default=Path("../shared/data"))
    args = ap.parse_args()
    n = args.posts
    # bench.feed's posts: the first `n` of them
    data = Data(1_000_000 if args.data == "clustered" else n, args.data, shared=args.shared_data)
    data.materialize()
    vecs, topic = data.vecs[:n], data.topic[:n]
    rng = np.random.default_rng(1)

    def mean_of(idx: np.ndarray) -> np.ndarray:
        v = vecs[idx].sum(0)
        return v / np.linalg.norm(v)

    def focused() -> np.ndarray:
        pool = np.zeros(0, dtype=np.int64)
        while len(pool) < 2:  # a small --posts can leave a topic empty
            pool = np.flatnonzero(np.isin(topic, rng.choice(TOPICS, 2, replace=False)))
        return mean_of(rng.choice(pool, min(20, len(pool)), replace=False))

    queries = {
        "random": [mean_of(rng.choice(n, 20, replace=False)) for _ in range(args.queries)],
        "focused": [focused() for _ in range(args.queries)],
    }
    truth = {k: [set(np.argsort(-(vecs @ q))[:20].tolist()) for q in qs] for k, qs in queries.items()}
    root = args.data_dir or Path(tempfile.mkdtemp(prefix="hanseek-bench-hnsw-"))
    settings = Settings(data_dir=root, database_url=None, pool_min_size=1, pool_max_size=2)
    db = Database.open(settings)
    sample = vecs[rng.choice(n, 2000)] @ vecs[rng.choice(n, 2000)].T
    out: dict[str, Any] = {
        "bench": "hnsw_graph",
        "data": args.data,
        "posts": n,
        "cosine_between_random_posts": {
            "mean": round(float(sample.mean()), 4),
            "std": round(float(sample.std()), 4),
        },
        "queries_per_kind": args.queries,
        "graphs": [],
    }
    try:
        db.migrate()
        with db.connection() as conn:
            register_vector(conn)
            conn.execute("DROP TABLE IF EXISTS bench_hnsw")
            conn.execute("CREATE TABLE bench_hnsw (i int, e vector(384))")
            with conn.cursor().copy("COPY bench_hnsw (i, e) FROM STDIN WITH (FORMAT BINARY)") as cp:
                cp.set_types(["int4", "vector"])
                for i in range(n):
                    cp.write_row((i, vecs[i]))
            conn.commit()
            for m, efc in GRAPHS:
                conn.execute("DROP INDEX IF EXISTS bench_hnsw_idx")
                conn.execute("SET maintenance_work_mem = '3GB'")
                conn.execute("SET max_parallel_maintenance_workers = 2")
                t = time.perf_counter()
                conn.execute(
                    f"CREATE INDEX bench_hnsw_idx ON bench_hnsw USING hnsw (e vector_cosine_ops) "
                    f"WITH (m = {m}, ef_construction = {efc})"
                )
                conn.commit()
                row: dict[str, Any] = {
                    "m": m,
                    "ef_construction": efc,
                    "build_s": round(time.perf_counter() - t, 1),
                }
                for ef in (200, 1000):
                    conn.execute(f"SET hnsw.ef_search = {ef}")
                    for kind, qs in queries.items():
                        hits = [
                            len(
                                {
                                    r[0]
                                    for r in conn.execute(
                                        "SELECT i FROM bench_hnsw ORDER BY e <=> %s LIMIT 20", (q,)
                                    )
                                }
                                & tr
                            )
                            / 20
                            for q, tr in zip(qs, truth[kind], strict=True)
                        ]
                        row[f"recall@20_{kind}_ef{ef}"] = round(float(np.mean(hits)), 3)
                out["graphs"].append(row)
            conn.execute("DROP TABLE bench_hnsw")
            conn.commit()
    finally:
        close_db(db, settings, discard=args.data_dir is None)
    emit(out)


if __name__ == "__main__":
    main()
